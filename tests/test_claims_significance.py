"""The p-value claims wired to the evaluator, on the planted model (tests/planted.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.claims.registry import HANDLERS
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from tests.planted import bridge_of, expected_logit_diff, planted_hf, planted_task

CLEAN_S4 = (1, 2, 3, 4, 5, 6, 7, 8)
CORRUPTED_S4 = (0, 0, 2, 5, 5, 5, 7, 9)
HEADS = (Node(0, 0), Node(0, 1), Node(0, 2), Node(0, 3))


COMPLEMENT_BASELINE = Claim(
    "rb", "random_baseline", "<", 0.05, params=(("n", 30), ("complement_only", True))
)


def _f(kept: set[int]) -> float:
    """F(circuit of planted heads `kept`) by the closed form; mean ablation elsewhere."""
    vals = [
        expected_logit_diff(m4, {h: "mean" for h in range(3) if h not in kept}, CORRUPTED_S4)
        for m4 in CLEAN_S4
    ]
    return sum(vals) / len(vals)


def _run(circuit, claims):  # type: ignore[no-untyped-def]
    cp = CircuitPlan(
        name="planted", model=ModelRef("planted", "local"), task=TaskSpec(name="planted"),
        ablation=AblationSpec(), nodes=tuple(circuit), claims=tuple(claims),
    )  # fmt: skip
    task = planted_task(CLEAN_S4, CORRUPTED_S4)
    res = evaluate_plan(
        bridge_of(planted_hf()), Plan("p.circ", (cp,), seed=5), {"planted": task},
        handlers=HANDLERS,
    )  # fmt: skip
    return {c.kind: c for c in res.circuits[0].claims}


def test_significance_claims_on_the_true_circuit() -> None:
    claims = _run(
        HEADS[:2],
        [
            Claim("rb", "random_baseline", "<", 0.3, params=(("n", 4),)),
            Claim("eq", "equivalence", "<", 0.05),
            Claim("suf", "sufficiency", "<", 0.2, params=(("n", 20),)),
        ],
    )
    # random baseline: 4 two-head circuits drawn from four heads (fewer draws than the 5
    # other pairs, so drawn, not listed); a draw ties the true circuit only when it is the
    # true circuit; every other pair keeps less
    rb = claims["random_baseline"]
    assert rb.detail["exact"] is False and len(rb.detail["random_values"]) == 4
    f_m = _f({0, 1, 2})
    pairs = {(a, b): _f({a, b} & {0, 1, 2}) / f_m for a in range(4) for b in range(a + 1, 4)}
    observed = pairs[(0, 1)]
    assert rb.detail["observed"] == pytest.approx(observed, abs=1e-6)
    values = rb.detail["random_values"]
    for v in values:
        assert min(abs(v - p) for p in pairs.values()) < 1e-5
    ties = sum(abs(v - observed) < 1e-5 for v in values)
    assert all(v < observed - 1e-3 for v in values if abs(v - observed) >= 1e-5)
    assert rb.value == pytest.approx((1 + ties) / 5)
    # equivalence: the circuit beats the model on all 8 prompts (LN scale), p-hat = 1:
    # p = P_{K~Bin(8, 0.6)}(|K/8 - 1/2| >= 1/2) = 0.4^8 + 0.6^8
    assert claims["equivalence"].value == pytest.approx(0.4**8 + 0.6**8, rel=1e-9)
    assert claims["equivalence"].verdict == "pass"
    # sufficiency: loss ties (the true circuit drawn again) count as >=, so k = N = 20:
    # p = P_{K~Bin(20, 0.9)}(K >= 20) = 0.9^20
    assert claims["sufficiency"].value == pytest.approx(0.9**20, rel=1e-9)
    assert claims["sufficiency"].seed is not None
    assert claims["sufficiency"].seed != claims["random_baseline"].seed


def test_a_useless_circuit_does_not_beat_random() -> None:
    claims = _run(HEADS[2:], [Claim("rb", "random_baseline", "<", 0.05, params=(("n", 30),))])
    rb = claims["random_baseline"]
    assert rb.verdict == "fail" and rb.value > 0.5


def test_with_fewer_circuits_of_its_size_than_draws_every_one_is_scored() -> None:
    # 30 draws asked for, but there are only 6 two-head circuits: the other 5 are each
    # scored once and p is the true circuit's exact rank among the 6, 1/6 (the best)
    rb = _run(HEADS[:2], [Claim("rb", "random_baseline", "<", 0.2, params=(("n", 30),))])[
        "random_baseline"
    ]
    f_m = _f({0, 1, 2})
    others = [_f({a, b} & {0, 1, 2}) / f_m for a in range(4) for b in range(a + 1, 4)][1:]
    assert rb.detail["exact"] is True
    assert sorted(rb.detail["random_values"]) == pytest.approx(sorted(others), abs=1e-6)
    assert rb.value == pytest.approx(1 / 6) and rb.verdict == "pass"


def test_the_complement_holds_one_circuit_of_its_size_so_p_is_one_half() -> None:
    # complement-only two-head circuits from {0.0..0.3} minus {0.0, 0.1}: only {0.2, 0.3},
    # which keeps less. Drawing it 30 times would claim p = 1/31; the exact p is 1/2.
    rb = _run(HEADS[:2], [COMPLEMENT_BASELINE])["random_baseline"]
    junk_pair = _f({2}) / _f({0, 1, 2})
    assert rb.detail["random_values"] == pytest.approx([junk_pair], abs=1e-6)
    assert rb.detail["observed"] == pytest.approx(_f({0, 1}) / _f({0, 1, 2}), abs=1e-6)
    assert rb.value == 1 / 2 and rb.verdict == "fail"


def test_a_useless_circuit_loses_to_the_random_circuit_from_its_complement() -> None:
    # the complement of {0.2, 0.3} is the true circuit, which beats it: p = 2/2
    rb = _run(HEADS[2:], [COMPLEMENT_BASELINE])["random_baseline"]
    assert rb.detail["random_values"] == pytest.approx([_f({0, 1}) / _f({0, 1, 2})])
    assert rb.value == 1.0 and rb.verdict == "fail"


def _minimality(circuit: tuple[Node, ...], n: int = 40) -> Any:
    claim = Claim("mt", "minimality_test", ">=", 0.05, params=(("n", n),))
    return _run(circuit, [claim])["minimality_test"]


def test_minimality_test_passes_the_planted_nodes() -> None:
    mt = _minimality(HEADS[:2])
    f_m = _f({0, 1, 2})
    d = mt.detail
    # each planted node's knock-out effect, by the closed form
    assert d["node_effects"]["0.0"] == pytest.approx(abs(_f({0, 1}) - _f({1})) / f_m, abs=1e-6)
    assert d["node_effects"]["0.1"] == pytest.approx(abs(_f({0, 1}) - _f({0})) / f_m, abs=1e-6)
    # one layer: the path is one node of {0.2, 0.3, mlp0}, and it is the one knocked out;
    # only the junk head 0.2 changes F (through the layer norm), 0.3 and mlp0 are zero
    junk = abs(_f({0, 1, 2}) - _f({0, 1})) / f_m
    assert set(d["knocked_out"]) == {"0.2", "0.3", "mlp0"}
    for u, ref in zip(d["knocked_out"], d["reference_effects"], strict=True):
        assert ref == pytest.approx(junk if u == "0.2" else 0.0, abs=1e-6)
    assert min(d["node_effects"].values()) > 10 * junk
    # both nodes beat all 40 references: p_v = P(K <= 40) = 1, Holm-adjusted 1
    assert d["node_counts"] == {"0.0": 40, "0.1": 40}
    assert mt.value == 1.0 and mt.verdict == "pass"


def test_minimality_test_fails_a_useless_node() -> None:
    mt = _minimality((*HEADS[:2], HEADS[3]))
    d = mt.detail
    # the zero head 0.3 changes nothing: effect 0 beats no reference (strictly below), so
    # p_raw = P_{K~Bin(40, 0.9)}(K <= 0) = 0.1^40; Holm over 3 nodes: 3 * 0.1^40
    assert d["node_effects"]["0.3"] == 0.0
    assert d["node_counts"] == {"0.0": 40, "0.1": 40, "0.3": 0}
    assert set(d["knocked_out"]) == {"0.2", "mlp0"}
    assert d["node_p_values"]["0.3"] == pytest.approx(0.1**40, rel=1e-9)
    assert mt.value == pytest.approx(3 * 0.1**40, rel=1e-9)
    assert d["params"]["weakest_node"] == "0.3" and mt.verdict == "fail"


def test_minimality_test_runs_every_circuit_in_one_batched_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import seqcirc.claims.significance as sig

    calls: list[tuple[int, ...]] = []
    real = sig.run_circuits

    def counting(state: Any, masks: Any) -> Any:
        calls.append(tuple(masks.shape))
        return real(state, masks)

    monkeypatch.setattr(sig, "run_circuits", counting)
    mt = _minimality(HEADS[:2], n=25)
    # C, C minus each of its 2 nodes, 25 inflated circuits, each minus one added node
    assert calls == [(1 + 2 + 2 * 25, 5)]
    assert mt.detail["n"] == 25


def test_random_paths_add_one_node_outside_the_circuit_per_layer() -> None:
    from seqcirc.claims.significance import random_paths

    n_layers, n_heads = 3, 2  # columns: heads 0.0 0.1 1.0 1.1 2.0 2.1, then mlp0 mlp1 mlp2
    circuit = np.zeros(9, dtype=bool)
    circuit[[0, 1, 6, 3]] = True  # layer 0 wholly inside C; 1.1 in C
    inflated, knocked = random_paths(circuit, n_layers, n_heads, 200, seed=3)
    added = inflated & ~circuit
    assert (inflated[:, circuit]).all()
    layer_of = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
    for row, u in zip(added, knocked, strict=True):
        assert sorted(layer_of[row]) == [1, 2]  # layer 0 has nothing outside C
        assert row[u]
    assert set(np.flatnonzero(added.any(axis=0))) == {2, 4, 5, 7, 8}
    again = random_paths(circuit, n_layers, n_heads, 200, seed=3)
    assert (again[0] == inflated).all() and (again[1] == knocked).all()


def _knocked_out(pair: tuple[int, int]) -> float:
    """F(M without the heads of `pair`) / F(M) by the closed form."""
    return _f({0, 1, 2} - set(pair)) / _f({0, 1, 2})


def test_knockout_against_every_other_pair_knocked_out() -> None:
    # knocking out {0.0, 0.1} keeps 0.2 and 0.3; the other 5 pairs are fewer than the 30
    # draws asked for, so each is knocked out once and p is the exact rank from below
    ko = _run(HEADS[:2], [Claim("ko", "knockout", "<", 0.2, params=(("n", 30),))])["knockout"]
    others = {(a, b): _knocked_out((a, b)) for a in range(4) for b in range(a + 1, 4)}
    observed = others.pop((0, 1))
    assert ko.detail["observed"] == pytest.approx(observed, abs=1e-6)
    assert ko.detail["exact"] is True and ko.detail["test"] == "knockout"
    assert sorted(ko.detail["random_values"]) == pytest.approx(sorted(others.values()), abs=1e-6)
    lower = sum(v <= observed + 1e-6 for v in others.values())
    assert ko.value == pytest.approx((1 + lower) / 6)
    assert observed < min(others.values())  # the planted circuit costs the most
    assert ko.value == pytest.approx(1 / 6) and ko.verdict == "pass"


def test_knocking_out_a_useless_pair_costs_less_than_random_pairs() -> None:
    ko = _run(HEADS[2:], [Claim("ko", "knockout", "<", 0.05, params=(("n", 30),))])["knockout"]
    assert ko.detail["observed"] == pytest.approx(_knocked_out((2, 3)), abs=1e-6)
    assert ko.value > 0.5 and ko.verdict == "fail"
