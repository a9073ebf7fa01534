"""HSIC independence test: exact statistic, fast path, and behaviour on synthetic data."""

import numpy as np
import pytest
from scipy.stats import kstest

from seqcirc.errors import InputError
from seqcirc.stats import hsic, hsic_statistic, independence_test


def _slow_hsic(x, y):
    """tr(K H L H) / n^2 with explicit matrices and per-variable median bandwidths."""
    n = len(x)

    def gram(v):
        d = np.abs(v[:, None] - v[None, :])
        sigma = np.median(d[np.triu_indices(n, 1)])
        return np.exp(-(d**2) / (2 * sigma**2))

    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(gram(x) @ h @ gram(y) @ h) / n**2


def test_statistic_matches_explicit_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x**2 + rng.normal(size=50)
    assert hsic_statistic(x, y) == pytest.approx(_slow_hsic(x, y), rel=1e-12)
    # the bandwidth is per variable: rescaling one variable leaves HSIC unchanged
    assert hsic_statistic(x, 1000 * y) == pytest.approx(hsic_statistic(x, y), rel=1e-10)


def test_low_rank_path_equals_exact_path(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=120)
    y = np.sin(2 * x) + rng.normal(scale=0.5, size=120)
    fast = independence_test(x, y, seed=3, n_permutations=200)
    monkeypatch.setattr(hsic, "incomplete_cholesky", lambda *a, **k: None)
    exact = independence_test(x, y, seed=3, n_permutations=200)
    assert fast.param("method") == "low_rank"
    assert exact.param("method") == "exact"
    assert fast.statistic == pytest.approx(exact.statistic, rel=1e-9)
    assert fast.statistic == pytest.approx(_slow_hsic(x, y), rel=1e-9)
    np.testing.assert_allclose(fast.null_distribution, exact.null_distribution, rtol=1e-8)
    assert fast.p_value == exact.p_value


def test_dependent_data_give_p_near_zero_even_without_correlation():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    y = x**2 + rng.normal(scale=0.3, size=200)  # Pearson correlation ~ 0, dependence strong
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.2
    result = independence_test(x, y, seed=0)
    assert result.p_value == pytest.approx(1 / 1001)  # no permutation reaches it
    assert result.n == 200 and result.seed == 0
    assert type(result.p_value) is float


def test_independent_data_give_roughly_uniform_p_values():
    rng = np.random.default_rng(3)
    ps = [
        independence_test(rng.normal(size=60), rng.exponential(size=60), seed=s,
                          n_permutations=199).p_value
        for s in range(60)
    ]  # fmt: skip
    assert 0.35 < np.mean(ps) < 0.65
    assert kstest(ps, "uniform").pvalue > 0.01


def test_constant_complement_is_independent_with_p_one():
    rng = np.random.default_rng(4)
    result = independence_test(np.zeros(30), rng.normal(size=30), seed=0, n_permutations=99)
    assert result.statistic == 0.0
    assert result.p_value == 1.0
    assert result.param("bandwidth_rule_complement") == "constant"


def test_discrete_scores_use_nonzero_median_and_are_recorded():
    x = np.array([0.0] * 40 + [1.0] * 10)  # median pairwise distance is 0
    y = np.array([0.0] * 35 + [1.0] * 15)
    result = independence_test(x, y, seed=0, n_permutations=99)
    assert result.param("bandwidth_rule_complement") == "median_nonzero"
    assert result.param("bandwidth_complement") == 1.0
    assert 0.0 < result.p_value <= 1.0


def test_seeding_and_bad_input():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=40), rng.normal(size=40)
    a = independence_test(x, y, seed=1, n_permutations=99)
    b = independence_test(x, y, seed=1, n_permutations=99)
    assert a == b
    np.testing.assert_array_equal(a.null_distribution, b.null_distribution)
    with pytest.raises(InputError):
        independence_test(x, y[:-1], seed=1)
    with pytest.raises(InputError):
        independence_test([1.0], [2.0], seed=1)
    with pytest.raises(InputError):
        independence_test(x, y, seed=1, n_permutations=0)
