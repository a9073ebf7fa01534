"""Calibration: on synthetic nulls (each claim false by construction, at the boundary of
H0 where a test is least conservative) every test rejects at about its nominal rate.

Discrete tests (binomial, finite permutations) cannot hit alpha exactly; their exact size
under the null is computed and the simulated rejection rate must match it and not exceed
alpha. The figures are in docs/statistics.md ("Calibration"); regenerate them with
`python tests/test_stats_calibration.py`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from seqcirc.stats import (
    equivalence_p_value,
    equivalence_test,
    holm_adjust,
    independence_test,
    minimality_test,
    performance_ratio_ci,
    random_baseline_p,
    sufficiency_test,
)

ALPHA = 0.05


def _exact_size(n: int, p: float, p_value_of_k) -> float:
    """P(test p-value <= alpha) when the count K ~ Bin(n, p)."""
    ks = np.arange(n + 1)
    rejecting = np.array([p_value_of_k(int(k)) <= ALPHA for k in ks])
    return float(binom.pmf(ks[rejecting], n, p).sum())


def simulate(reps_scale: float = 1.0) -> dict[str, tuple[float, float, int]]:
    """name -> (simulated rejection rate, exact/nominal rate, replications)."""
    out: dict[str, tuple[float, float, int]] = {}

    rng = np.random.default_rng([20241127, 0])  # one stream per test
    # equivalence: P(Delta > 0) = 1/2 + eps exactly, n = 200 prompts
    reps, n, eps = int(4000 * reps_scale), 200, 0.1
    shift = norm.ppf(0.5 + eps)
    rejected = sum(
        equivalence_test(rng.normal(shift, 1.0, n), np.zeros(n), epsilon=eps).p_value <= ALPHA
        for _ in range(reps)
    )
    size = _exact_size(n, 0.5 + eps, lambda k: equivalence_p_value(k, n, eps))
    out["equivalence"] = (rejected / reps, size, reps)

    rng = np.random.default_rng([20241127, 1])  # one stream per test
    # sufficiency: P(random loss >= loss(C)) = q exactly (losses U(0,1), loss(C) = 1 - q)
    reps, n_random, q = int(4000 * reps_scale), 100, 0.9
    rejected = sum(
        sufficiency_test(1.0 - q, rng.random(n_random), q=q).p_value <= ALPHA for _ in range(reps)
    )
    size = _exact_size(n_random, q, lambda k: float(binom.sf(k - 1, n_random, q)))
    out["sufficiency"] = (rejected / reps, size, reps)

    rng = np.random.default_rng([20241127, 2])  # one stream per test
    # minimality: a node beating a reference effect with probability q exactly
    rejected = sum(
        minimality_test([q], rng.random(n_random), q=q).p_value <= ALPHA for _ in range(reps)
    )
    size = _exact_size(n_random, q, lambda k: float(binom.cdf(k, n_random, q)))
    out["minimality"] = (rejected / reps, size, reps)

    rng = np.random.default_rng([20241127, 3])  # one stream per test
    # random baseline: the circuit is one more draw from the random circuits' distribution
    reps, r = int(4000 * reps_scale), 199
    rejected = sum(
        random_baseline_p(rng.normal(), rng.normal(size=r)) <= ALPHA for _ in range(reps)
    )
    out["random_baseline"] = (rejected / reps, math.floor(ALPHA * (r + 1)) / (r + 1), reps)

    rng = np.random.default_rng([20241127, 4])  # one stream per test
    # independence: complement and model scores independent, 1,000 permutations
    reps, n = int(600 * reps_scale), 100
    rejected = sum(
        independence_test(rng.normal(size=n), rng.gamma(2.0, size=n), seed=s).p_value <= ALPHA
        for s in range(reps)
    )
    out["independence"] = (rejected / reps, math.floor(ALPHA * 1001) / 1001, reps)

    rng = np.random.default_rng([20241127, 5])  # one stream per test
    # bootstrap: non-coverage of the 95% interval for a known ratio of means (0.6)
    reps, n = int(1000 * reps_scale), 200
    missed = 0
    for s in range(reps):
        model = rng.normal(3.0, 1.5, n)
        circuit = 0.6 * model + rng.normal(0.0, 1.0, n)  # E circuit / E model = 0.6
        ci = performance_ratio_ci(circuit, model, seed=s, n_boot=2000)
        missed += not ci.contains(0.6)
    out["bootstrap_noncoverage"] = (missed / reps, ALPHA, reps)

    rng = np.random.default_rng([20241127, 6])  # one stream per test
    # Holm: family-wise error over m = 5 true nulls with independent uniform p-values; Holm
    # rejects anything iff min p <= alpha/m, so the exact FWER is 1 - (1 - alpha/m)^m
    reps, m = int(20000 * reps_scale), 5
    family = rng.random((reps, m))
    rejected = sum(bool((holm_adjust(row) <= ALPHA).any()) for row in family)
    out["holm_fwer"] = (rejected / reps, 1 - (1 - ALPHA / m) ** m, reps)
    return out


@pytest.mark.slow
def test_tests_reject_at_their_nominal_rate_under_the_null():
    for name, (rate, nominal, reps) in simulate().items():
        se = math.sqrt(max(nominal * (1 - nominal), 1e-4) / reps)
        assert nominal <= ALPHA + 1e-12, name
        assert abs(rate - nominal) <= 3.5 * se, f"{name}: rate {rate:.4f} vs {nominal:.4f}"


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    for name, (rate, nominal, reps) in simulate().items():
        print(f"| {name} | {reps} | {nominal:.4f} | {rate:.4f} |")
    print(f"({time.perf_counter() - start:.1f} s)")
