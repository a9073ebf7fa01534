"""Ordered-set members as tokens, and the prompts the OV scores read them from.

The paper (Lan, Torr & Barez 2024, OV_scores notebooks) ran prompts of four consecutive
members, "m_i m_i+1 m_i+2 m_i+3", and read the residual stream at each member's
position. `member_contexts` builds those prompts straight from token ids (BOS first when
the model uses one, every member in its leading-space form, the form the task prompts
use), so each member is the same token wherever it stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from seqcirc.errors import InputError, did_you_mean
from seqcirc.language.vocab import OV_CONTEXTS as CONTEXTS
from seqcirc.language.vocab import OV_WINDOW
from seqcirc.tasks.sets import DEFAULT_RANGE, ORDERED_SETS

Context = Literal["prompts", "alone"]
WINDOW = OV_WINDOW  # members per prompt, as in the paper's OV-score prompts (one table)


@dataclass(frozen=True)
class MemberTokens:
    """The members of one ordered set in scope, as token ids.

    ids[i]: the id of " " + members[i] (the form prompts use).
    spellings[i]: every single-token spelling of members[i] (with and without the
      leading space) that counts as predicting it, as the paper's decoded-string check did.
    """

    set_name: str
    members: tuple[str, ...]
    ids: tuple[int, ...]
    spellings: tuple[frozenset[int], ...]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return [int(t) for t in tokenizer.encode(text, add_special_tokens=False)]


def resolve_members(set_name: str, members: int | Sequence[str] | None = None) -> tuple[str, ...]:
    """The members in scope: the set's default task range, the first `members`, or a list."""
    if set_name not in ORDERED_SETS:
        raise InputError(
            f"unknown ordered set {set_name!r}",
            code="E801",
            hint=did_you_mean(set_name, ORDERED_SETS, quote=True)
            + f"known sets: {', '.join(ORDERED_SETS)}",
        )
    full = ORDERED_SETS[set_name]
    if members is None:
        chosen = full[: DEFAULT_RANGE.get(set_name, len(full))]
    elif isinstance(members, int):
        if not 2 <= members <= len(full):
            raise InputError(
                f"members={members} is out of range for {set_name!r}",
                code="E802",
                hint=f"{set_name!r} has {len(full)} members; give 2..{len(full)}",
            )
        chosen = full[:members]
    else:
        chosen = tuple(members)
        unknown = [m for m in chosen if m not in full]
        if unknown:
            raise InputError(
                f"{', '.join(map(repr, unknown))} not in ordered set {set_name!r}",
                code="E802",
                hint=f"members of {set_name!r}: {' '.join(full)}",
            )
        order = [full.index(m) for m in chosen]
        if order != list(range(order[0], order[0] + len(order))):
            raise InputError(
                f"members of {set_name!r} must be consecutive and in order",
                code="E802",
                hint="give a run such as ['March', 'April', 'May']",
            )
    return chosen


def member_tokens(
    tokenizer: Any, set_name: str, members: int | Sequence[str] | None = None
) -> MemberTokens:
    """Token ids of the set's members; every member must be one token with its space."""
    chosen = resolve_members(set_name, members)
    ids: list[int] = []
    spellings: list[frozenset[int]] = []
    bad: list[str] = []
    for word in chosen:
        spaced = _encode(tokenizer, " " + word)
        if len(spaced) != 1:
            pieces = [tokenizer.decode([t]) for t in spaced]
            bad.append(f"{word!r} -> {len(spaced)} tokens {pieces}")
            continue
        unk = getattr(tokenizer, "unk_token_id", None)
        if unk is not None and spaced[0] == unk:
            bad.append(f"{word!r} -> the unknown token")
            continue
        forms = {spaced[0]}
        bare = _encode(tokenizer, word)
        if len(bare) == 1 and bare[0] != unk:
            forms.add(bare[0])
        ids.append(spaced[0])
        spellings.append(frozenset(forms))
    if bad:
        raise InputError(
            f"members of {set_name!r} that are not single tokens of this tokenizer: "
            + "; ".join(bad),
            code="E803",
            hint="OV scores read one position per member; choose fewer members "
            "(members=N) or a set this tokenizer keeps whole",
        )
    if len(set(ids)) != len(ids):
        raise InputError(
            f"two members of {set_name!r} share a token id in this tokenizer",
            code="E803",
            hint="the successor of a member must be a distinct token",
        )
    return MemberTokens(set_name, chosen, tuple(ids), tuple(spellings))


def bos_id(bridge: Any, tokenizer: Any) -> int | None:
    """The BOS id to put first, or None when the model does not prepend one."""
    if not getattr(bridge.cfg, "default_prepend_bos", False):
        return None
    bos = getattr(tokenizer, "bos_token_id", None)
    return None if bos is None else int(bos)


@dataclass(frozen=True)
class MemberContexts:
    """Prompts of member tokens and where each scored member stands.

    tokens: [n_prompts, seq]; prompt, pos, member: [n_scored] (member = index into
    MemberTokens.members). Only members with a successor in scope are scored, so the
    successor and copy scores read the same positions.
    """

    tokens: npt.NDArray[np.int64]
    prompt: npt.NDArray[np.int64]
    pos: npt.NDArray[np.int64]
    member: npt.NDArray[np.int64]


def member_contexts(
    members: MemberTokens, context: Context = "prompts", bos: int | None = None
) -> MemberContexts:
    """The paper's prompts ("prompts": every run of 4 consecutive members whose last
    member has a successor) or each member alone after BOS ("alone")."""
    n = len(members.ids)
    if context not in CONTEXTS:
        raise InputError(
            f"unknown OV context {context!r}",
            code="E804",
            hint=f"use one of: {', '.join(CONTEXTS)}",
        )
    if n < 2:
        raise InputError(f"{members.set_name!r} needs at least 2 members in scope", code="E802")
    if context == "prompts":
        if n < WINDOW + 1:
            raise InputError(
                f"{members.set_name!r} has {n} members in scope; prompts of {WINDOW} "
                f"consecutive members need at least {WINDOW + 1}",
                code="E802",
                hint="use context='alone' or more members",
            )
        runs = [list(range(s, s + WINDOW)) for s in range(n - WINDOW)]
    else:
        runs = [[i] for i in range(n - 1)]
    prefix = [] if bos is None else [bos]
    tokens = np.array([prefix + [members.ids[i] for i in run] for run in runs], dtype=np.int64)
    offset = len(prefix)
    prompt, pos, member = zip(
        *[(p, offset + j, i) for p, run in enumerate(runs) for j, i in enumerate(run)],
        strict=True,
    )
    return MemberContexts(
        tokens,
        np.array(prompt, dtype=np.int64),
        np.array(pos, dtype=np.int64),
        np.array(member, dtype=np.int64),
    )
