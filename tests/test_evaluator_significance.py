"""The p-value claims wired to the evaluator, on the planted model (tests/planted.py)."""

from __future__ import annotations

import pytest

from seqcirc.evaluation import evaluate_plan
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from seqcirc.significance import HANDLERS
from tests.planted import bridge_of, expected_logit_diff, planted_hf, planted_task

CLEAN_S4 = (1, 2, 3, 4, 5, 6, 7, 8)
CORRUPTED_S4 = (0, 0, 2, 5, 5, 5, 7, 9)
HEADS = (Node(0, 0), Node(0, 1), Node(0, 2), Node(0, 3))


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
            Claim("rb", "random_baseline", "<", 0.2, params=(("n", 30),)),
            Claim("eq", "equivalence", "<", 0.05),
            Claim("suf", "sufficiency", "<", 0.2, params=(("n", 20),)),
        ],
    )
    # random baseline: two-head circuits drawn from four heads; a draw ties the true circuit
    # only when it is the true circuit; every other pair keeps less
    rb = claims["random_baseline"]
    f_m = _f({0, 1, 2})
    pairs = {(a, b): _f({a, b} & {0, 1, 2}) / f_m for a in range(4) for b in range(a + 1, 4)}
    observed = pairs[(0, 1)]
    assert rb.detail["observed"] == pytest.approx(observed, abs=1e-6)
    values = rb.detail["random_values"]
    for v in values:
        assert min(abs(v - p) for p in pairs.values()) < 1e-5
    ties = sum(abs(v - observed) < 1e-5 for v in values)
    assert all(v < observed - 1e-3 for v in values if abs(v - observed) >= 1e-5)
    assert rb.value == pytest.approx((1 + ties) / 31)
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
