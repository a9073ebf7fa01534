"""Shi et al. 2024 binomial tests against hand-worked values and scipy.stats.binom directly."""

from math import comb

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from seqcirc.errors import InputError
from seqcirc.stats import (
    MinimalityResult,
    equivalence_p_value,
    equivalence_test,
    minimality_test,
    sufficiency_test,
)


def _equivalence_by_enumeration(k: int, n: int, eps: float) -> float:
    """The definition read literally: sum the Bin(n, 1/2+eps) pmf over every K in the region."""
    p = 0.5 + eps
    return sum(
        comb(n, j) * p**j * (1 - p) ** (n - j)
        for j in range(n + 1)
        if abs(j / n - 0.5) >= abs(k / n - 0.5) - 1e-15
    )


def test_equivalence_hand_worked():
    # n = 10 prompts, 8 with Delta > 0, eps = 0.1, K ~ Bin(10, 0.6):
    # P(K >= 8) + P(K <= 2) = 0.1672897536 + 0.0122945536 (worked with fractions).
    circuit = np.array([1.0] * 8 + [-1.0] * 2)
    result = equivalence_test(circuit, np.zeros(10), epsilon=0.1)
    assert result.statistic == 0.8
    assert result.p_value == pytest.approx(0.1795843072, abs=1e-12)
    assert type(result.p_value) is float
    assert result.n == 10
    assert result.param("n_positive") == 8


@pytest.mark.parametrize("n", [1, 2, 7, 10, 25, 100, 301])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_equivalence_p_matches_enumeration_for_every_k(n, eps):
    for k in range(n + 1):
        expected = min(1.0, _equivalence_by_enumeration(k, n, eps))
        assert equivalence_p_value(k, n, eps) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_equivalence_matches_scipy_pmf_sum():
    n, k, eps = 200, 128, 0.1
    ks = np.arange(n + 1)
    region = np.abs(ks / n - 0.5) >= abs(k / n - 0.5)
    expected = binom.pmf(ks[region], n, 0.5 + eps).sum()
    assert equivalence_p_value(k, n, eps) == pytest.approx(expected, rel=1e-12)


def test_equivalence_at_the_papers_scale():
    # 1,536 prompts: the reference's comb(n, k) * p**k loop overflows a float from n ~ 1030
    n, k, eps = 1536, 950, 0.1
    ks = np.arange(n + 1)
    region = np.abs(ks / n - 0.5) >= abs(k / n - 0.5)
    expected = binom.pmf(ks[region], n, 0.5 + eps).sum()
    assert equivalence_p_value(k, n, eps) == pytest.approx(expected, rel=1e-9)
    assert 0.01 < expected < 0.2


def test_equivalence_uses_the_share_of_wins_not_the_mean_difference():
    # The reference implementation fed the mean score difference into the test. Here the
    # mean difference is positive (+100 once, -1 nine times) but the circuit wins only 1 of
    # 10 prompts: p-hat = 0.1, and scaling Delta changes nothing.
    circuit = np.array([100.0] + [-1.0] * 9)
    a = equivalence_test(circuit, np.zeros(10))
    b = equivalence_test(circuit * 1e-3, np.zeros(10))
    assert a.statistic == 0.1
    assert a.p_value == b.p_value == pytest.approx(_equivalence_by_enumeration(1, 10, 0.1))
    # the circuit winning half the prompts is the most "equivalent" outcome: p = 1
    assert equivalence_test([1.0, -1.0] * 5, np.zeros(10)).p_value == 1.0


def test_equivalence_counts_ties_as_not_positive_and_records_them():
    result = equivalence_test([1.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0])
    assert result.statistic == 0.25
    assert result.param("n_ties") == 2


def test_equivalence_refuses_all_ties_and_bad_input():
    with pytest.raises(InputError) as err:
        equivalence_test([1.0, 2.0], [1.0, 2.0])
    assert err.value.code == "E708"
    with pytest.raises(InputError) as err:
        equivalence_test([1.0, 2.0], [1.0])
    assert err.value.code == "E703"
    with pytest.raises(InputError) as err:
        equivalence_test([1.0, np.nan], [1.0, 2.0])
    assert err.value.code == "E702"
    with pytest.raises(InputError):
        equivalence_test([1.0], [0.0], epsilon=0.5)


def test_sufficiency_hand_worked_and_scipy():
    # 10 random circuits, all with loss >= loss(C): p = 0.9^10
    result = sufficiency_test(0.1, np.linspace(0.2, 1.0, 10), q=0.9, seed=3)
    assert result.statistic == 10.0
    assert result.p_value == pytest.approx(0.9**10, rel=1e-12)
    assert result.seed == 3
    # 9 of 10: 0.9^10 + 10 * 0.9^9 * 0.1 = 0.7360989291
    losses = np.array([0.05, *np.linspace(0.2, 1.0, 9)])
    assert sufficiency_test(0.1, losses).p_value == pytest.approx(0.7360989291, rel=1e-10)
    # ">=": a random circuit exactly as good as C counts
    assert sufficiency_test(0.2, [0.2, 0.1]).statistic == 1.0
    rng = np.random.default_rng(0)
    losses = rng.random(100)
    for loss_c in (0.0, 0.02, 0.05, 0.2):
        k = int((losses >= loss_c).sum())
        expected = binomtest(k, 100, 0.9, alternative="greater").pvalue
        assert sufficiency_test(loss_c, losses).p_value == pytest.approx(expected, rel=1e-10)


def test_minimality_hand_worked_and_scipy():
    refs = np.arange(10, dtype=float)  # reference effects 0..9
    # node effect 6.5 beats 7 references: p = P(Bin(10, .9) <= 7) = 0.0701908264
    # node effect 100 beats all 10: p = 1
    result = minimality_test([6.5, 100.0], refs, nodes=["9.1", "mlp3"], q=0.9, seed=5)
    assert isinstance(result, MinimalityResult)
    assert result.counts == (7, 10)
    assert result.node_p_values[0] == pytest.approx(0.0701908264, rel=1e-10)
    assert result.node_p_values[1] == 1.0
    # Holm over the two nodes: 2 * 0.0702, then max(that, 1) = 1
    assert result.node_p_adjusted[0] == pytest.approx(2 * 0.0701908264, rel=1e-10)
    assert result.node_p_adjusted[1] == 1.0
    assert result.p_value == pytest.approx(2 * 0.0701908264, rel=1e-10)
    assert result.param("weakest_node") == "9.1"
    assert result.seed == 5
    assert all(type(p) is float for p in result.node_p_values)
    # strictly beats: an effect equal to a reference does not beat it
    assert minimality_test([3.0], refs).counts == (3,)
    rng = np.random.default_rng(1)
    refs = rng.random(100)
    for effect in (0.5, 0.85, 0.95):
        k = int((refs < effect).sum())
        expected = binomtest(k, 100, 0.9, alternative="less").pvalue
        assert minimality_test([effect], refs).p_value == pytest.approx(expected, rel=1e-10)


def test_minimality_names_must_match_effects():
    with pytest.raises(InputError) as err:
        minimality_test([1.0, 2.0], [0.5], nodes=["9.1"])
    assert err.value.code == "E703"


def test_results_serialise_to_plain_json():
    import json

    result = sufficiency_test(0.1, [0.2, 0.3], seed=7)
    data = json.loads(json.dumps(result.to_json()))
    assert data["p_value"] == result.p_value
    assert data["seed"] == 7
    assert data["params"]["q"] == 0.9
