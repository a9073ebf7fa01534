"""Claims on the planted GPT-2: every expected value comes from the closed form in
tests/planted.py, never from a model run. Minimality, single-component ablation,
completeness, the metrics, plans with claims and their JSON, determinism."""

# ruff: noqa: F811 (the planted fixtures are imported from tests/planted_state.py)

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.claims.faithfulness import normalized_faithfulness, performance_ratio
from seqcirc.claims.measures import completeness, minimality, single_component_ablation
from seqcirc.engine.metric import per_prompt
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric
from seqcirc.errors import EvaluationError
from seqcirc.forward.gpt2 import forward_nodes
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Plan, TaskSpec
from seqcirc.results import EvaluationResult
from tests.planted import (
    expected_logits,
)
from tests.planted_state import (  # noqa: F401 (fixtures)
    CLAIMS,
    CLEAN_S4,
    CORRUPTED_S4,
    DEAD,
    F_M,
    INDEX,
    JUNK,
    MLP,
    SUCC,
    SUPP,
    F,
    _plan,
    _plan_eval,
    bridge,
    expected,
    state,
    task,
)
from tests.test_forward_reference import run_nodes


def test_minimality_per_planted_node(state):  # type: ignore[no-untyped-def]
    circuit = [SUCC, SUPP, DEAD]
    groups = {"writers": [SUCC, SUPP], "idle": [DEAD]}
    got = {e.node: e for e in minimality(state, circuit, groups)}
    fc = F({SUCC, SUPP})
    assert got["0.0"].drop_alone == pytest.approx((fc - F({SUPP})) / F_M, abs=1e-6)
    assert got["0.1"].drop_alone == pytest.approx((fc - F({SUCC})) / F_M, abs=1e-6)
    # K = the role group without v: for 0.0, K = {0.1}
    assert got["0.0"].drop_in_group == pytest.approx((F({SUCC}) - F(set())) / F_M, abs=1e-6)
    assert got["0.3"].score == pytest.approx(0.0, abs=1e-6)  # the dead head matters not at all
    assert got["0.0"].score > 0.3 and got["0.1"].score > 0.1


def test_single_component_ablation_table(state):  # type: ignore[no-untyped-def]
    table = {e.node: e.from_model for e in single_component_ablation(state)}
    assert table["0.0"] == pytest.approx(F({SUPP, JUNK}) / F_M, abs=1e-6)
    assert table["0.1"] == pytest.approx(F({SUCC, JUNK}) / F_M, abs=1e-6)
    assert table["0.3"] == pytest.approx(1.0, abs=1e-6)
    assert table["mlp0"] == pytest.approx(1.0, abs=1e-6)


def test_complete_circuit_sits_on_the_diagonal(state):  # type: ignore[no-untyped-def]
    # everything outside {0.0, 0.1, 0.2} is dead, so C \ K and M \ K are the same model
    comp = completeness(state, [SUCC, SUPP, JUNK], {"w": [SUCC, SUPP]}, n_random=6, seed=3)
    assert comp.worst.incompleteness == pytest.approx(0.0, abs=1e-6)
    assert len(comp.points) == 6 + 1 + 3


def test_incomplete_circuit_greedy_finds_the_missing_head(state):  # type: ignore[no-untyped-def]
    comp = completeness(state, [SUCC], n_random=4, greedy_steps=1, seed=0)
    # K = {0.0}: C \ K is empty, M \ K keeps 0.1 and 0.2
    want = abs(F(set()) - F({SUPP, JUNK})) / abs(F_M)
    assert comp.worst.knocked_out == ("0.0",)
    assert comp.worst.incompleteness == pytest.approx(want, abs=1e-6)
    greedy = [p for p in comp.points if p.source == "greedy"]
    assert greedy[0].f_model_minus == pytest.approx(F({SUPP, JUNK}), abs=1e-5)


def test_other_metrics_on_planted(state):  # type: ignore[no-untyped-def]
    logits = forward_nodes(state.weights, state.clean, state.answer_pos).logits
    assert (per_prompt("accuracy", logits, state.correct, state.incorrect) == 1.0).all()
    kl = per_prompt("kl", logits, state.correct, state.incorrect, logits)
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)
    # prob: logits are sqrt(76)/sqrt(23) * (4 at m4+1, -2 at m4, 0 at the 10 other tokens)
    a = math.sqrt(76 / 23)
    want = math.exp(4 * a) / (math.exp(4 * a) + math.exp(-2 * a) + 10)
    prob = per_prompt("prob", logits, state.correct, state.incorrect)
    np.testing.assert_allclose(prob, want, rtol=1e-5)


def test_plan_claims_verdicts_and_json(bridge, task):  # type: ignore[no-untyped-def]
    res = evaluate_plan(bridge, _plan([SUCC, SUPP]), {"planted": task}, n_boot=500)
    c = res.circuits[0]
    verdicts = {cl.id: cl.verdict for cl in c.claims}
    assert verdicts == {"c1": "pass", "c2": "pass", "c3": "pass", "c4": "pass", "c5": "skipped"}
    c1 = c.claims[0]
    assert c1.value == pytest.approx(F({SUCC, SUPP}) / F_M, abs=1e-6)
    assert c1.lower is not None and c1.compared == c1.lower <= c1.value <= c1.upper
    assert len(c1.per_prompt) == len(CLEAN_S4)
    assert c.circuit_hash == _plan([SUCC, SUPP]).circuits[0].circuit_hash()
    assert c.nodes == ("0.0", "0.1") and not res.passed
    back = EvaluationResult.from_json(res.to_json())
    assert back == res
    json.loads(res.to_json())  # strict JSON


def test_determinism(bridge, task):  # type: ignore[no-untyped-def]
    def run():  # type: ignore[no-untyped-def]
        res = evaluate_plan(bridge, _plan([SUCC, JUNK]), {"planted": task}, n_boot=300)
        d = res.to_dict()
        d.pop("timings")
        for c in d["circuits"]:
            c.pop("timings")
        return json.dumps(d, sort_keys=True)

    assert run() == run()


def test_kl_normalized_faithfulness_by_hand(bridge, task):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(), metric="kl")
    assert st.m_model == pytest.approx(0.0, abs=1e-6)

    def kl_of(circuit):  # type: ignore[no-untyped-def]
        out = []
        for m4 in CLEAN_S4:
            heads = {INDEX[v]: "mean" for v in INDEX if v not in circuit}
            lp = expected_logits(m4, {}, CORRUPTED_S4)
            lq = expected_logits(m4, heads, CORRUPTED_S4)
            lp, lq = lp - np.logaddexp.reduce(lp), lq - np.logaddexp.reduce(lq)
            out.append(float(np.sum(np.exp(lp) * (lp - lq))))
        return np.array(out)

    m = run_nodes(st, [SUCC])
    np.testing.assert_allclose(m, kl_of({SUCC}), atol=1e-5)
    np.testing.assert_allclose(empty_metric(st), kl_of(set()), atol=1e-5)
    norm = normalized_faithfulness(m, st.m_model, empty_metric(st))
    assert norm == pytest.approx(1 - kl_of({SUCC}).mean() / kl_of(set()).mean(), abs=1e-5)
    with pytest.raises(EvaluationError, match="undefined"):
        performance_ratio(m, np.zeros_like(m))


def test_edge_plan_claims(bridge, task):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(granularity="edge"))
    edges = tuple(e for e in st.graph.edges if str(e) != "0.2->logits[resid]")
    cp = CircuitPlan(
        name="edges", model=ModelRef("planted", "local"), task=TaskSpec(name="planted"),
        ablation=AblationSpec(granularity="edge"), nodes=(SUCC, SUPP, JUNK), edges=edges,
        claims=(Claim("f", "faithfulness", ">=", 1.0), Claim("m", "minimality", ">=", 0.0)),
    )  # fmt: skip
    res = evaluate_plan(bridge, Plan("e.circ", (cp,), seed=1), {"edges": task}, n_boot=100)
    c = res.circuits[0]
    assert c.claims[0].value == pytest.approx(F({SUCC, SUPP}) / F_M, abs=1e-6)
    per_edge = c.claims[1].detail["per_edge"]
    assert len(per_edge) == len(edges) and c.granularity == "edge"
    # an edge into the dead head 0.3 changes nothing; 0.0 -> logits carries the answer
    assert per_edge["embed->0.3[v]"] == pytest.approx(0.0, abs=1e-9)
    assert per_edge["0.0->logits[resid]"] > 0.3


def test_faithfulness_of_random_masks(state):  # type: ignore[no-untyped-def]
    from seqcirc.claims.faithfulness import faithfulness_of_masks

    masks = np.zeros((3, state.weights.n_nodes), dtype=bool)
    masks[0, [0, 1]] = True  # {0.0, 0.1}
    masks[1, [2, 3]] = True  # {0.2, 0.3}
    got = faithfulness_of_masks(state, masks)
    want = [F({SUCC, SUPP}) / F_M, F({JUNK}) / F_M, F(set()) / F_M]
    np.testing.assert_allclose(got, want, atol=1e-6)
    norm = faithfulness_of_masks(state, masks, "normalized_faithfulness")
    np.testing.assert_allclose(norm[2], 0.0, atol=1e-6)
