"""Token-level attention patterns of chosen heads on groups of prompts, as the authors'
notebooks draw them (src/attn_pats/viz_attn_pat.py): `blocks.L.attn.hook_pattern[:, H]`
averaged over a group's prompts, which share one token length, with the first prompt's
tokens as labels; and the mean attention between named positions of the group's
prompts (attends(from, to), read at each prompt's own indices as seqcirc.roles.attention
reads it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from seqcirc.errors import InputError, did_you_mean
from seqcirc.roles.attention import attends_from_patterns
from seqcirc.tasks.types import TokenizedTask

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BATCH = 64


@dataclass(frozen=True, eq=False)
class PromptGroup:
    """Prompts of one token length whose patterns are averaged into one heatmap.

    tokens: [n, seq] ids (BOS included where the model prepends one); positions: named
    position -> [n] token index; tokens_text: the first prompt's tokens as strings."""

    name: str
    tokens: IntArray
    positions: dict[str, IntArray]
    token_text: tuple[str, ...]
    texts: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return int(self.tokens.shape[0])

    def labels(self) -> list[str]:
        """Tick labels: the first prompt's tokens, each prefixed with the named position
        that sits at that index in every prompt of the group."""
        fixed: dict[int, list[str]] = {}
        for name, idx in sorted(self.positions.items(), key=lambda kv: kv[0] == "END"):
            if idx.size and np.all(idx == idx[0]):
                fixed.setdefault(int(idx[0]), []).append(name)
        return [
            f"{'/'.join(fixed[i])} {t!r}" if i in fixed else repr(t)
            for i, t in enumerate(self.token_text)
        ]

    def index(self, name: str) -> IntArray:
        if name not in self.positions:
            known = sorted(self.positions)
            raise InputError(
                f"prompts {self.name!r} have no position {name!r}",
                code="E808",
                hint=did_you_mean(name, known) + "positions: " + (", ".join(known) or "none"),
            )
        return self.positions[name]


def token_strings(tokenizer: Any, ids: Sequence[int]) -> tuple[str, ...]:
    """Each token as text, as TransformerLens's to_str_tokens shows it (decoded alone; a
    piece that decodes to nothing, such as Llama's "▁", as its vocabulary entry)."""
    if tokenizer is None:
        return tuple(f"#{int(t)}" for t in ids)
    out = []
    for t in ids:
        text = str(tokenizer.decode([int(t)]))
        out.append(text if text else str(tokenizer.convert_ids_to_tokens(int(t))))
    return tuple(out)


def task_group(task: TokenizedTask, tokenizer: Any, limit: int | None = None) -> PromptGroup:
    """A task's clean prompts (the first `limit`) as one group (T315 for prompts of
    different lengths: a group's patterns are averaged index by index)."""
    task.require_one_length("a token-level attention pattern (averaged index by index)")
    n = task.n_prompts if limit is None else min(limit, task.n_prompts)
    text = token_strings(tokenizer, [int(t) for t in task.clean[0]])
    return PromptGroup(
        name=task.name, tokens=np.asarray(task.clean[:n]),
        positions={k: np.asarray(v[:n]) for k, v in task.positions.items()},
        token_text=text, texts=tuple(task.clean_text[:n]),
    )  # fmt: skip


@torch.no_grad()
def head_patterns(
    bridge: Any, group: PromptGroup, heads: Sequence[tuple[int, int]], batch_size: int = BATCH
) -> dict[tuple[int, int], FloatArray]:
    """(layer, head) -> [n, seq, seq] attention weights of every prompt of the group."""
    n_ctx = int(bridge.cfg.n_ctx)
    if group.tokens.shape[1] > n_ctx:
        raise InputError(
            f"prompts {group.name!r} have {group.tokens.shape[1]} tokens; the model's "
            f"context is {n_ctx}", code="E361", hint="use shorter prompts",
        )  # fmt: skip
    names = {f"blocks.{layer}.attn.hook_pattern" for layer, _ in heads}
    parts: dict[tuple[int, int], list[FloatArray]] = {h: [] for h in heads}
    for s in range(0, group.n_prompts, batch_size):
        tokens = torch.as_tensor(group.tokens[s : s + batch_size], device=bridge.cfg.device)
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
        for layer, head in heads:
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]
            parts[(layer, head)].append(pattern.double().cpu().numpy())
    return {h: np.concatenate(p) for h, p in parts.items()}


def attends_mean(patterns: npt.ArrayLike, group: PromptGroup, src: str, dst: str) -> float:
    """Mean over the group's prompts of one head's attention from `src` to `dst` (named
    positions), each prompt at its own indices; `dst` may not come after `src`."""
    q, k = group.index(src), group.index(dst)
    if np.any(k > q):
        raise InputError(
            f"{dst} comes after {src} in some prompts: a causal head cannot attend forward",
            code="E808", hint=f"swap them: --from {dst} --to {src}",
        )  # fmt: skip
    pat = torch.as_tensor(np.asarray(patterns))[:, None]  # [n, 1 head, q, k]
    return float(attends_from_patterns([pat], q, k)[0, 0])


def mean_pattern(patterns: npt.ArrayLike) -> FloatArray:
    """[n, seq, seq] -> [seq, seq] mean over prompts."""
    return np.asarray(patterns, dtype=np.float64).mean(0)


def pattern_record(
    group: PromptGroup, patterns: npt.ArrayLike, head: str, pair: tuple[str, str] | None = None
) -> dict[str, Any]:
    """One head's mean pattern on one group, JSON-ready: labels, pattern (rounded to 1e-4),
    the cell of `pair` (from, to) where it sits at one index in every prompt, and the
    attention from `pair[0]` to `pair[1]` averaged per prompt."""
    mean = mean_pattern(patterns)
    record: dict[str, Any] = {
        "head": head, "group": group.name, "n_prompts": group.n_prompts,
        "labels": group.labels(), "pattern": np.round(mean, 4).tolist(),
        "first_prompt": group.texts[0] if group.texts else "",
    }  # fmt: skip
    if pair is not None:
        src, dst = pair
        record["attends"] = {"from": src, "to": dst,
                             "mean": attends_mean(patterns, group, src, dst)}  # fmt: skip
        q, k = group.index(src), group.index(dst)
        if np.all(q == q[0]) and np.all(k == k[0]):
            record["attends"]["cell"] = [int(q[0]), int(k[0])]
    return record


def end_row(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The last query row (END) of a record's mean pattern, largest weights first."""
    row = record["pattern"][-1]
    pairs = list(zip(record["labels"], row, strict=True))
    return sorted(pairs, key=lambda p: -p[1])


REPORT_PROMPTS = 64  # prompts averaged for a report's token-level pattern
REPORT_MAX_TOKENS = 96  # longer prompts get no token-level figure (unreadable, large)


def task_token_attention(
    bridge: Any, tokenizer: Any, task: TokenizedTask, head: str, pair: tuple[str, str]
) -> dict[str, Any] | None:
    """One head's token-level pattern on a task's first REPORT_PROMPTS clean prompts,
    with its `pair` (from, to) cell, for the HTML report (None for long prompts, or
    prompts of different lengths: their tokens do not line up)."""
    from seqcirc.language.names import parse_component

    got = parse_component(head)
    if got is None or got[1] is None or task.seq_len > REPORT_MAX_TOKENS or task.ragged:
        return None
    group = task_group(task, tokenizer, REPORT_PROMPTS)
    pats = head_patterns(bridge, group, [(got[0], got[1])])[(got[0], got[1])]
    record = pattern_record(group, pats, head, pair)
    record["caption"] = (
        f"head {head}'s attention pattern averaged over {group.n_prompts} clean prompts of "
        f"task {task.name} (query rows, key columns; labels: the first prompt's tokens and "
        f"the named positions); outlined: {pair[0]} -> {pair[1]}"
    )
    return record
