"""Input checks shared by the statistics modules: every bad array becomes an InputError
with a code and a hint instead of a numpy warning or a silently wrong number.

Codes used by seqcirc.stats (documented in docs/statistics.md):
E701 not a 1-D array / empty, E702 non-finite values, E703 arrays of different lengths,
E704 a parameter out of range, E705 a ratio whose denominator is zero,
E706 random circuits that cannot be drawn, E707 a node outside the model,
E708 a statistic that is undefined on these data.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from seqcirc.errors import InputError


def as_scores(values: ArrayLike, name: str, *, min_len: int = 1) -> NDArray[np.float64]:
    """A finite 1-D float array of at least `min_len` entries, or an InputError."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be a 1-D array of per-prompt values, got shape {arr.shape}",
            code="E701",
            hint="pass one value per prompt (or per random circuit)",
        )
    if arr.size < min_len:
        raise InputError(
            f"{name} has {arr.size} values; at least {min_len} needed",
            code="E701",
            hint="evaluate more prompts (or draw more random circuits)",
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} has {int(bad.sum())} non-finite value(s) (first at index {first}: "
            f"{arr[first]})",
            code="E702",
            hint="a NaN or inf metric usually means a degenerate prompt; fix or drop it upstream",
        )
    return arr


def same_length(**arrays: NDArray[np.float64]) -> int:
    """The common length of paired per-prompt arrays, or an InputError naming them."""
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        listed = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise InputError(
            f"paired per-prompt arrays differ in length ({listed})",
            code="E703",
            hint="every array must hold one value per prompt, for the same prompts in order",
        )
    return next(iter(lengths.values()))


def check_seed(seed: int) -> int:
    """Seeds are non-negative Python ints (numpy's SeedSequence refuses negatives)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(
            f"seed must be a non-negative integer, got {seed!r}",
            code="E704",
            hint="set `seed N` in the file or pass --seed N",
        )
    return int(seed)


def check_open_unit(value: float, name: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """A parameter strictly inside (low, high)."""
    v = float(value)
    if not (low < v < high):
        raise InputError(
            f"{name} must lie strictly between {low} and {high}, got {value!r}",
            code="E704",
            hint=f"choose {name} in ({low}, {high})",
        )
    return v


def check_count(value: int, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(
            f"{name} must be an integer >= {minimum}, got {value!r}",
            code="E704",
            hint=f"choose {name} >= {minimum}",
        )
    return int(value)
