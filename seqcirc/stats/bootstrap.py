"""Paired bootstrap confidence intervals for faithfulness ratios (docs/statistics.md).

Both faithfulness variants are ratios of means over the same prompts. The bootstrap
resamples prompt *indices* once per replicate and applies them to every per-prompt array
(paired: prompt i's circuit, model and empty-circuit values stay together), recomputes the
ratio of means, and reports the percentile interval. Nothing is clamped: a ratio outside
[0, 1] is reported as it is.

The per-prompt values come from forward passes already made; this module costs no model time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from seqcirc.errors import InputError
from seqcirc.stats._checks import as_scores, check_count, check_open_unit, check_seed, same_length

DEFAULT_LEVEL = 0.95
DEFAULT_N_BOOT = 10_000
# Resample this many prompt indices per block (memory ~ 8 bytes * block * n_arrays). Depends
# on n only, so a result depends only on (seed, n, n_boot), never on the machine.
_BLOCK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class BootstrapInterval:
    """A ratio of means with its paired-bootstrap percentile interval.

    variant: "performance_ratio" (F(C)/F(M)) or "normalized_faithfulness"
    ((E m(C) - E m(empty)) / (E m(M) - E m(empty))).
    unbounded: the denominator's own bootstrap interval contains 0, so the ratio is
    unbounded at this level (Fieller's case); lower/upper are then -inf/+inf.
    n_undefined: replicates whose numerator and denominator were both exactly 0 (0/0),
    left out of the order statistics (reported, never hidden).
    denominator_sign_changes: replicates whose denominator had the other sign than the point
    estimate's (or was 0); they land in the tails of the ratio's distribution.
    """

    variant: str
    point: float
    lower: float
    upper: float
    level: float
    n_boot: int
    seed: int
    n: int
    unbounded: bool = False
    n_undefined: int = 0
    denominator_sign_changes: int = 0

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper


def resample_means(
    values: NDArray[np.float64], n_boot: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Means of `values` [k, n] over `n_boot` paired resamples of the n prompts: [n_boot, k]."""
    k, n = values.shape
    block = max(1, _BLOCK_ELEMENTS // n)
    out = np.empty((n_boot, k))
    for start in range(0, n_boot, block):
        stop = min(start + block, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        # values[:, idx] is [k, rows, n]: one gather per array, the same indices for all.
        out[start:stop] = values[:, idx].mean(axis=2).T
    return out


def _order_statistic_interval(samples: NDArray[np.float64], level: float) -> tuple[float, float]:
    """Percentile interval as order statistics (no interpolation, so +-inf sort cleanly)."""
    ordered = np.sort(samples)
    b = ordered.size
    alpha = 1.0 - level
    # 1-based ranks ceil(B alpha/2) and ceil(B (1 - alpha/2)); the 1e-9 keeps 1 - 0.95 =
    # 0.05000000000000004 from pushing an exact integer rank (10.000000000000009) up by one.
    lo = max(math.ceil(b * alpha / 2.0 - 1e-9) - 1, 0)
    hi = min(math.ceil(b * (1.0 - alpha / 2.0) - 1e-9) - 1, b - 1)
    return float(ordered[lo]), float(ordered[hi])


def bootstrap_ratio(
    arrays: dict[str, ArrayLike],
    numerator: dict[str, float],
    denominator: dict[str, float],
    *,
    variant: str,
    seed: int,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_N_BOOT,
) -> BootstrapInterval:
    """Paired bootstrap of (sum_k a_k E x_k) / (sum_k b_k E x_k) over per-prompt arrays x_k.

    `numerator`/`denominator` map array names to coefficients; the named arrays are
    resampled jointly (the same prompt indices for all).
    """
    seed = check_seed(seed)
    level = check_open_unit(level, "level")
    n_boot = check_count(n_boot, "n_boot")
    names = list(arrays)
    unknown = sorted((set(numerator) | set(denominator)) - set(names))
    if unknown:
        raise InputError(
            f"{variant}: coefficients for arrays that were not given: {', '.join(unknown)}",
            code="E703",
            hint=f"the arrays given are {', '.join(names)}",
        )
    checked = {name: as_scores(arrays[name], name) for name in names}
    n = same_length(**checked)
    stack = np.stack([checked[name] for name in names])
    a = np.array([numerator.get(name, 0.0) for name in names])
    b = np.array([denominator.get(name, 0.0) for name in names])

    means = stack.mean(axis=1)
    num_point, den_point = float(a @ means), float(b @ means)
    if den_point == 0.0:
        raise InputError(
            f"{variant}: the denominator is exactly 0 on these prompts, so the ratio is undefined",
            code="E705",
            hint="the full model does no better than the baseline on this task; check the metric "
            "and the prompts (or report a difference instead of a ratio)",
        )
    point = num_point / den_point

    boot = resample_means(stack, n_boot, np.random.default_rng(seed))
    num, den = boot @ a, boot @ b
    sign_changes = int(np.count_nonzero(np.sign(den) != np.sign(den_point)))
    den_lo, den_hi = _order_statistic_interval(den, level)
    if den_lo <= 0.0 <= den_hi:
        return BootstrapInterval(
            variant, point, -math.inf, math.inf, level, n_boot, seed, n,
            unbounded=True, denominator_sign_changes=sign_changes,
        )  # fmt: skip
    undefined = (den == 0.0) & (num == 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num[~undefined] / den[~undefined]
    lower, upper = _order_statistic_interval(ratios, level)
    return BootstrapInterval(
        variant, point, lower, upper, level, n_boot, seed, n,
        n_undefined=int(undefined.sum()), denominator_sign_changes=sign_changes,
    )  # fmt: skip


def performance_ratio_ci(
    circuit: ArrayLike,
    model: ArrayLike,
    *,
    seed: int,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_N_BOOT,
) -> BootstrapInterval:
    """F(C)/F(M), F = mean per-prompt score (e.g. logit_diff), with its paired bootstrap CI.

    A ratio of means, not a mean of per-prompt ratios (those explode when a gap is ~0).
    """
    return bootstrap_ratio(
        {"circuit": circuit, "model": model},
        {"circuit": 1.0},
        {"model": 1.0},
        variant="performance_ratio",
        seed=seed,
        level=level,
        n_boot=n_boot,
    )


def normalized_faithfulness_ci(
    circuit: ArrayLike,
    model: ArrayLike,
    empty: ArrayLike,
    *,
    seed: int,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_N_BOOT,
) -> BootstrapInterval:
    """(E m(C) - E m(empty)) / (E m(M) - E m(empty)) with its paired bootstrap CI. Not clamped."""
    return bootstrap_ratio(
        {"circuit": circuit, "model": model, "empty": empty},
        {"circuit": 1.0, "empty": -1.0},
        {"model": 1.0, "empty": -1.0},
        variant="normalized_faithfulness",
        seed=seed,
        level=level,
        n_boot=n_boot,
    )
