"""Random-circuit sampling (index logic) and the baseline p-value."""

import numpy as np
import pytest

from seqcirc.errors import InputError
from seqcirc.plan import Node
from seqcirc.stats import (
    circuit_mask,
    component_index,
    component_nodes,
    mask_nodes,
    n_components,
    random_baseline_p,
    random_baseline_test,
    sample_random_circuits,
    sample_subset_masks,
)

L, H = 4, 6  # a 4-layer, 6-head model: 24 heads + 4 MLPs = 28 components
CIRCUIT = (Node(0, 1), Node(2, 0), Node(2, 3), Node(2, 5), Node(3, 2), Node(1), Node(3))


def test_component_order_is_heads_layer_major_then_mlps():
    assert n_components(L, H) == 28
    assert component_index(Node(0, 0), L, H) == 0
    assert component_index(Node(2, 3), L, H) == 15
    assert component_index(Node(0), L, H) == 24
    assert component_index(Node(3), L, H) == 27
    order = component_nodes(L, H)
    assert [component_index(node, L, H) for node in order] == list(range(28))
    mask = circuit_mask(CIRCUIT, L, H)
    assert mask.sum() == 7
    assert mask_nodes(mask, L, H) == tuple(sorted(CIRCUIT, key=lambda n: order.index(n)))


def _counts(masks):
    heads = masks[:, : L * H].reshape(-1, L, H).sum(axis=2)  # [R, layer]
    mlps = masks[:, L * H :]
    return heads, mlps


def test_counts_match_the_circuit():
    draws = sample_random_circuits(CIRCUIT, n_layers=L, n_heads=H, n_circuits=500, seed=0)
    heads, mlps = _counts(draws.masks)
    assert draws.masks.shape == (500, 28)
    assert (heads.sum(axis=1) == 5).all()
    assert (mlps.sum(axis=1) == 2).all()
    assert (draws.n_circuit_heads, draws.n_circuit_mlps) == (5, 2)
    # uniform over heads: each head is in a draw with probability 5/24
    freq = draws.masks[:, : L * H].mean(axis=0)
    assert np.abs(freq - 5 / 24).max() < 0.08
    # without layer matching, layer counts vary between draws
    assert len({tuple(row) for row in heads}) > 10


def test_layer_matched_matches_every_layer():
    draws = sample_random_circuits(
        CIRCUIT, n_layers=L, n_heads=H, n_circuits=300, seed=1, layer_matched=True
    )
    heads, mlps = _counts(draws.masks)
    assert (heads == [1, 0, 3, 1]).all()
    assert (mlps == [0, 1, 0, 1]).all()
    assert len({tuple(row) for row in draws.masks[:, : L * H]}) > 50  # still random


def test_complement_only_never_draws_a_circuit_component():
    heads_only = [n for n in CIRCUIT if n.head is not None]
    for layer_matched in (False, True):
        draws = sample_random_circuits(
            heads_only, n_layers=L, n_heads=H, n_circuits=300, seed=2,
            complement_only=True, layer_matched=layer_matched,
        )  # fmt: skip
        inside = circuit_mask(heads_only, L, H)
        assert not (draws.masks & inside).any()
        assert (draws.masks.sum(axis=1) == 5).all()
    draws = sample_random_circuits(
        CIRCUIT, n_layers=L, n_heads=H, n_circuits=300, seed=2, complement_only=True
    )
    assert not (draws.masks & circuit_mask(CIRCUIT, L, H)).any()
    assert (draws.masks[:, L * H :].sum(axis=1) == 2).all()  # the two other MLPs, always


def test_seeding():
    a = sample_random_circuits(CIRCUIT, n_layers=L, n_heads=H, n_circuits=50, seed=7)
    b = sample_random_circuits(CIRCUIT, n_layers=L, n_heads=H, n_circuits=50, seed=7)
    c = sample_random_circuits(CIRCUIT, n_layers=L, n_heads=H, n_circuits=50, seed=8)
    assert np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)
    assert a.seed == 7
    assert len(a.nodes(0)) == 7


def test_impossible_draws_and_bad_nodes_are_refused():
    with pytest.raises(InputError) as err:  # mlp1's layer has no other MLP
        sample_random_circuits(
            CIRCUIT, n_layers=L, n_heads=H, n_circuits=5, seed=0,
            layer_matched=True, complement_only=True,
        )  # fmt: skip
    assert err.value.code == "E706"
    big = [Node(0, h) for h in range(4)]
    with pytest.raises(InputError) as err:  # 4 of 6 heads: only 2 left outside
        sample_random_circuits(
            big, n_layers=L, n_heads=H, n_circuits=5, seed=0, layer_matched=True,
            complement_only=True,
        )  # fmt: skip
    assert err.value.code == "E706"
    with pytest.raises(InputError) as err:
        sample_random_circuits([Node(4, 0)], n_layers=L, n_heads=H, n_circuits=5, seed=0)
    assert err.value.code == "E707"
    with pytest.raises(InputError) as err:
        circuit_mask([Node(1, 1), Node(1, 1)], L, H)
    assert err.value.code == "E707"


def test_subset_masks_for_edges():
    exclude = np.zeros(40, dtype=bool)
    exclude[:10] = True
    masks = sample_subset_masks(40, 7, n_draws=2000, seed=3, exclude=exclude)
    assert (masks.sum(axis=1) == 7).all()
    assert not masks[:, :10].any()
    # each allowed item is drawn with probability 7/30
    assert np.abs(masks[:, 10:].mean(axis=0) - 7 / 30).max() < 0.04
    assert np.array_equal(masks, sample_subset_masks(40, 7, n_draws=2000, seed=3, exclude=exclude))
    with pytest.raises(InputError) as err:
        sample_subset_masks(40, 31, n_draws=1, seed=0, exclude=exclude)
    assert err.value.code == "E706"


def test_baseline_p_value_formula():
    # 2 of 4 random values >= 5 (ties count): p = (1 + 2) / (4 + 1)
    assert random_baseline_p(5.0, [1.0, 5.0, 7.0, 3.0]) == pytest.approx(0.6)
    # beating all R random circuits gives the smallest p, 1 / (R + 1), never 0
    assert random_baseline_p(10.0, np.zeros(199)) == pytest.approx(1 / 200)
    result = random_baseline_test(0.2, [0.1, 0.3, 0.5, 0.0], seed=4, higher_is_better=False)
    assert result.p_value == pytest.approx((1 + 2) / 5)  # losses <= 0.2: 0.1 and 0.0
    assert result.seed == 4
    assert result.null_distribution is not None and result.null_distribution.size == 4


# ---- exact baselines: every other circuit of the size, on a small model ------------------


def _brute_force_class(circuit_mask_row: np.ndarray, n_layers: int, n_heads: int) -> list:
    """Every mask with as many heads and MLPs as the circuit, by listing all 2^n masks."""
    hc = n_layers * n_heads
    want = (circuit_mask_row[:hc].sum(), circuit_mask_row[hc:].sum())
    n = circuit_mask_row.size
    out = []
    for bits in range(2**n):
        row = np.array([(bits >> i) & 1 for i in range(n)], dtype=bool)
        if (row[:hc].sum(), row[hc:].sum()) == want:
            out.append(row)
    return out


def test_enumeration_is_every_other_circuit_of_the_size() -> None:
    from seqcirc.stats.baseline import count_other_circuits, enumerate_other_circuits

    circuit = [Node(0, 0), Node(1, 1), Node(0)]  # 2 of 4 heads, 1 of 2 MLPs: 6 * 2 = 12
    mask = circuit_mask(circuit, 2, 2)
    got = enumerate_other_circuits(circuit, n_layers=2, n_heads=2)
    want = [r for r in _brute_force_class(mask, 2, 2) if not np.array_equal(r, mask)]
    assert got.exact and got.n_circuits == 11 == len(want)
    assert count_other_circuits(circuit, n_layers=2, n_heads=2) == 11
    assert {r.tobytes() for r in got.masks} == {r.tobytes() for r in want}


def test_enumeration_layer_matched_and_complement_only() -> None:
    from seqcirc.stats.baseline import count_other_circuits, enumerate_other_circuits

    circuit = [Node(0, 0), Node(1, 1), Node(0)]
    # one head in each layer (2 x 2 ways), MLP 0 only: 4 circuits, 3 besides this one
    lm = enumerate_other_circuits(circuit, n_layers=2, n_heads=2, layer_matched=True)
    assert (
        lm.n_circuits
        == 3
        == count_other_circuits(circuit, n_layers=2, n_heads=2, layer_matched=True)
    )
    assert all(
        r[[0, 1]].sum() == 1 and r[[2, 3]].sum() == 1 and r[4] and not r[5] for r in lm.masks
    )
    # outside the circuit: heads 0.1 and 1.0, MLP 1: exactly one circuit, not the circuit
    co = enumerate_other_circuits(circuit, n_layers=2, n_heads=2, complement_only=True)
    assert (
        co.n_circuits
        == 1
        == count_other_circuits(circuit, n_layers=2, n_heads=2, complement_only=True)
    )
    assert co.masks[0].tolist() == [False, True, True, False, False, True]


def test_exact_p_is_the_circuits_rank_among_all_of_its_size() -> None:
    """Score = a fixed weight per component; the best circuit of its size has p = 1/|class|,
    the k-th best k/|class| (hand-checked against a brute-force ranking)."""
    from seqcirc.stats.baseline import enumerate_other_circuits

    weight = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.5])  # 0.0 0.1 1.0 1.1 mlp0 mlp1

    def score(row: np.ndarray) -> float:
        return float(weight[row].sum())

    for circuit in ([Node(0, 0), Node(1, 0), Node(0)], [Node(0, 1), Node(1, 1), Node(1)]):
        mask = circuit_mask(circuit, 2, 2)
        everyone = _brute_force_class(mask, 2, 2)
        rank = sum(score(r) >= score(mask) for r in everyone)  # 1 = the best
        others = enumerate_other_circuits(circuit, n_layers=2, n_heads=2)
        p = random_baseline_p(score(mask), [score(r) for r in others.masks])
        assert p == pytest.approx(rank / len(everyone), abs=1e-15)
    # 0.0 1.0 mlp0 is the best of the 12; 0.1 1.1 mlp1 the worst
    best = circuit_mask([Node(0, 0), Node(1, 0), Node(0)], 2, 2)
    assert random_baseline_p(
        score(best),
        [
            score(r)
            for r in enumerate_other_circuits(
                [Node(0, 0), Node(1, 0), Node(0)], n_layers=2, n_heads=2
            ).masks
        ],
    ) == pytest.approx(1 / 12)
