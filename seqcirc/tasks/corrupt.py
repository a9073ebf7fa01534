"""Corrupted prompts: which members (and names) replace the clean ones.

Each corruption maps a clean prompt's member indices to corrupted ones using the task's
random generator, so the same seed gives the same corrupted prompts. Every corruption
refuses a consecutive ending (S_last == S_prev + interval) by default: such a prompt
would still carry the answer signal the corrupted run is meant to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqcirc.errors import InputError, did_you_mean
from seqcirc.language.vocab import CORRUPTIONS

# A consecutive ending is so rare to need more draws that hitting this cap means the
# constraint cannot be met (e.g. a one-member range), not bad luck.
_MAX_DRAWS = 10_000


@dataclass(frozen=True)
class CorruptionSpec:
    kind: str
    no_successor_end: bool = True


def parse_corruption(task: str, kind: str, params: Sequence[tuple[str, object]]) -> CorruptionSpec:
    """Validate a TaskSpec's corruption and corruption_params."""
    if kind not in CORRUPTIONS:
        raise InputError(
            f"task {task}: unknown corruption {kind!r}",
            code="T110",
            hint=did_you_mean(kind, CORRUPTIONS) + "choose one of: " + ", ".join(CORRUPTIONS),
        )
    no_successor_end = True
    for key, value in params:
        if key != "no_successor_end":
            raise InputError(
                f"task {task}: unknown corruption parameter {key!r}",
                code="T111",
                hint="the only corruption parameter is no_successor_end (true/false)",
            )
        if not isinstance(value, bool):
            raise InputError(
                f"task {task}: no_successor_end must be true or false, got {value!r}",
                code="T111",
            )
        no_successor_end = value
    return CorruptionSpec(kind, no_successor_end)


def _ends_consecutive(idx: np.ndarray, interval: int) -> bool:
    return bool(idx[-1] == idx[-2] + interval)


def corrupt_members(
    spec: CorruptionSpec,
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    interval: int,
    n_range: int,
    n_set: int,
) -> np.ndarray:
    """Member indices of the corrupted twin of a clean prompt with member indices `clean`.

    random_members draws from the first n_range members (the paper: 1-12), random_tokens
    from all n_set members of the set, shuffled_members permutes `clean`.
    """
    for _ in range(_MAX_DRAWS):
        high = n_set if spec.kind == "random_tokens" else n_range
        out = np.asarray(
            rng.permutation(clean)
            if spec.kind == "shuffled_members"
            else rng.integers(0, high, size=clean.shape[0])
        )
        if not (spec.no_successor_end and _ends_consecutive(out, interval)):
            return out.astype(np.int64)
    raise InputError(  # pragma: no cover - only reachable with degenerate ranges
        f"could not draw a {spec.kind} corruption without a consecutive ending",
        code="T112",
        hint="widen the task's range or set no_successor_end=false",
    )
