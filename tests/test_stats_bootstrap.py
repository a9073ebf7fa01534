"""Paired bootstrap intervals for the two faithfulness ratios."""

import math
import time

import numpy as np
import pytest

from seqcirc.errors import InputError
from seqcirc.stats import bootstrap_ratio, normalized_faithfulness_ci, performance_ratio_ci


def test_constant_per_prompt_ratio_gives_a_zero_width_interval():
    rng = np.random.default_rng(0)
    model = rng.normal(3.0, 1.0, 300)
    ci = performance_ratio_ci(0.7 * model, model, seed=1, n_boot=2000)
    assert ci.point == pytest.approx(0.7, rel=1e-12)
    assert ci.lower == pytest.approx(0.7, rel=1e-12)
    assert ci.upper == pytest.approx(0.7, rel=1e-12)
    empty = rng.normal(0.0, 1.0, 300)
    circuit = empty + 0.4 * (model - empty)  # the same share of the gap on every prompt
    ci = normalized_faithfulness_ci(circuit, model, empty, seed=1, n_boot=2000)
    assert (ci.point, ci.lower, ci.upper) == pytest.approx((0.4, 0.4, 0.4), rel=1e-10)


def test_point_is_a_ratio_of_means_not_a_mean_of_ratios():
    circuit, model = np.array([1.0, 3.0]), np.array([0.01, 4.0])
    ci = performance_ratio_ci(circuit, model, seed=0, n_boot=100)
    assert ci.point == pytest.approx(4.0 / 4.01)  # mean of ratios would be ~50.4


def test_order_statistics_match_a_slow_reference():
    # Same seed, same index draws (one block for small n): the interval must be the
    # ceil(B * 0.025)-th and ceil(B * 0.975)-th smallest of the recomputed ratios.
    rng = np.random.default_rng(4)
    n, n_boot, seed = 40, 400, 11
    circuit, model, empty = rng.normal(2, 1, n), rng.normal(3, 1, n), rng.normal(0.5, 1, n)
    ci = normalized_faithfulness_ci(circuit, model, empty, seed=seed, n_boot=n_boot)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    ratios = sorted(
        (circuit[i].mean() - empty[i].mean()) / (model[i].mean() - empty[i].mean()) for i in idx
    )
    assert ci.lower == pytest.approx(ratios[math.ceil(n_boot * 0.025) - 1], rel=1e-12)
    assert ci.upper == pytest.approx(ratios[math.ceil(n_boot * 0.975) - 1], rel=1e-12)
    assert (ci.n, ci.n_boot, ci.seed, ci.level) == (n, n_boot, seed, 0.95)


def test_large_sample_interval_agrees_with_the_delta_method():
    rng = np.random.default_rng(2)
    n = 4000
    model = rng.normal(3.0, 1.5, n)
    circuit = 0.6 * model + rng.normal(0.2, 0.8, n)  # correlated: pairing matters
    ci = performance_ratio_ci(circuit, model, seed=3, n_boot=10_000)
    r = circuit.mean() / model.mean()
    cov = np.cov(circuit, model)
    se = math.sqrt((cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / n) / model.mean()
    half = 1.959964 * se
    assert ci.point == pytest.approx(r)
    assert ci.lower == pytest.approx(r - half, abs=0.06 * half)
    assert ci.upper == pytest.approx(r + half, abs=0.06 * half)
    # an unpaired bootstrap would ignore the covariance and be ~twice as wide here
    unpaired_half = 1.959964 * math.sqrt(cov[0, 0] / n + r * r * cov[1, 1] / n) / model.mean()
    assert unpaired_half > 1.5 * half


def test_same_seed_same_interval_other_seed_other_interval():
    rng = np.random.default_rng(5)
    model = rng.normal(2, 1, 200)
    circuit = 0.5 * model + rng.normal(0, 1, 200)
    a = performance_ratio_ci(circuit, model, seed=9, n_boot=1000)
    b = performance_ratio_ci(circuit, model, seed=9, n_boot=1000)
    c = performance_ratio_ci(circuit, model, seed=10, n_boot=1000)
    assert a == b
    assert (a.lower, a.upper) != (c.lower, c.upper)


def test_ratios_outside_unit_interval_are_not_clamped():
    rng = np.random.default_rng(6)
    model, empty = rng.normal(2, 0.1, 100), rng.normal(0, 0.1, 100)
    over = normalized_faithfulness_ci(1.5 * model, model, empty, seed=0, n_boot=500)
    under = normalized_faithfulness_ci(empty - 1.0, model, empty, seed=0, n_boot=500)
    assert over.lower > 1.0
    assert under.upper < 0.0


def test_denominator_straddling_zero_gives_an_unbounded_interval():
    rng = np.random.default_rng(7)
    model = rng.normal(0.05, 3.0, 100)  # the model barely does the task
    ci = performance_ratio_ci(rng.normal(1, 1, 100), model, seed=0, n_boot=2000)
    assert ci.unbounded
    assert (ci.lower, ci.upper) == (-math.inf, math.inf)
    assert ci.denominator_sign_changes > 0
    assert math.isfinite(ci.point)


def test_bad_input_is_refused():
    with pytest.raises(InputError) as err:
        performance_ratio_ci([1.0, 2.0], [1.0, -1.0], seed=0)
    assert err.value.code == "E705"
    with pytest.raises(InputError) as err:
        normalized_faithfulness_ci([1.0], [1.0, 2.0], [0.0, 0.0], seed=0)
    assert err.value.code == "E703"
    with pytest.raises(InputError):
        performance_ratio_ci([1.0], [1.0], seed=-1)
    with pytest.raises(InputError):
        performance_ratio_ci([1.0], [1.0], seed=0, level=1.0)
    with pytest.raises(InputError):
        performance_ratio_ci([[1.0]], [[1.0]], seed=0)
    with pytest.raises(InputError):
        bootstrap_ratio({"a": [1.0]}, {"a": 1.0}, {"a": 1.0}, variant="x", seed=0, n_boot=0)
    with pytest.raises(InputError) as err:
        bootstrap_ratio({"a": [1.0]}, {"a": 1.0}, {"b": 1.0}, variant="x", seed=0)
    assert err.value.code == "E703"


def test_ten_thousand_resamples_of_1536_prompts_are_fast():
    rng = np.random.default_rng(8)
    model, empty = rng.normal(3, 1, 1536), rng.normal(0, 1, 1536)
    circuit = 0.8 * model + rng.normal(0, 0.3, 1536)
    start = time.perf_counter()
    normalized_faithfulness_ci(circuit, model, empty, seed=0, n_boot=10_000)
    elapsed = time.perf_counter() - start
    # ~0.4 s measured on this 2-core machine under load; the bound leaves room for noise.
    assert elapsed < 3.0, f"bootstrap took {elapsed:.2f} s"
