"""The evaluator on planted circuits: every expected value comes from the closed form in
tests/planted.py (derived by hand from the hand-set weights), never from a model run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.claims.faithfulness import normalized_faithfulness, performance_ratio
from seqcirc.claims.measures import completeness, minimality, single_component_ablation
from seqcirc.engine.edges import run_edges
from seqcirc.engine.metric import per_prompt
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import EvaluationError, InputError
from seqcirc.forward.gpt2 import forward_nodes
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from seqcirc.results import EvaluationResult
from tests.planted import (
    bridge_of,
    expected_logit_diff,
    expected_logits,
    planted_hf,
    planted_task,
)
from tests.test_evaluator_reference import run_nodes

CLEAN_S4 = (1, 2, 3, 4, 5, 6, 7, 8)
CORRUPTED_S4 = (0, 0, 2, 5, 5, 5, 7, 9)
SUCC, SUPP, JUNK, DEAD, MLP = Node(0, 0), Node(0, 1), Node(0, 2), Node(0, 3), Node(0)
INDEX = {SUCC: 0, SUPP: 1, JUNK: 2}


@pytest.fixture(scope="module")
def bridge():  # type: ignore[no-untyped-def]
    return bridge_of(planted_hf())


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return planted_task(CLEAN_S4, CORRUPTED_S4)


@pytest.fixture(scope="module")
def state(bridge, task):  # type: ignore[no-untyped-def]
    return prepare(bridge, task, AblationSpec())


def expected(circuit, value="mean"):  # type: ignore[no-untyped-def]
    """Per-prompt logit_diff with every live head outside `circuit` ablated."""
    out = []
    for i, m4 in enumerate(CLEAN_S4):
        ablated = value if value != "resample" else ("resample", CORRUPTED_S4[i])
        heads = {INDEX[v]: ablated for v in INDEX if v not in circuit}
        out.append(expected_logit_diff(m4, heads, CORRUPTED_S4))
    return np.array(out)


def F(circuit, value="mean"):  # type: ignore[no-untyped-def]
    return float(expected(circuit, value).mean())


F_M = F({SUCC, SUPP, JUNK})


def test_full_model_matches_closed_form(state):  # type: ignore[no-untyped-def]
    # clean: u = 4 O_{m4+1} - 2 O_{m4} + J_{m4}: logit_diff = sqrt(76) * 6 / sqrt(2 + 21)
    assert pytest.approx(math.sqrt(76) * 6 / math.sqrt(23), rel=1e-12) == F_M
    np.testing.assert_allclose(state.m_model, expected({SUCC, SUPP, JUNK}), atol=1e-5)


@pytest.mark.parametrize("value", ["mean", "zero", "resample"])
def test_true_circuit_is_faithful(bridge, task, value):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(value=value))
    m = run_nodes(st, [SUCC, SUPP])
    np.testing.assert_allclose(m, expected({SUCC, SUPP}, value), atol=1e-5)
    ratio = performance_ratio(m, st.m_model)
    assert ratio == pytest.approx(F({SUCC, SUPP}, value) / F_M, abs=1e-6)
    # Only the layer norm's scale moves: |J|^2 = 1 clean, 0.25 mean, 0 zero, 1 resample.
    junk_norm2 = {"mean": 0.25, "zero": 0.0, "resample": 1.0}[value]
    assert ratio == pytest.approx(math.sqrt(23 / (22 + junk_norm2)), abs=1e-6)


def test_useless_heads_are_not_faithful(state):  # type: ignore[no-untyped-def]
    m = run_nodes(state, [JUNK, DEAD, MLP])
    np.testing.assert_allclose(m, expected({JUNK}), atol=1e-5)
    ratio = performance_ratio(m, state.m_model)
    assert ratio == pytest.approx(F({JUNK}) / F_M, abs=1e-6)
    assert abs(ratio) < 0.1


def test_zero_ablation_of_everything_but_junk_gives_exactly_zero(bridge, task):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(value="zero"))
    np.testing.assert_allclose(run_nodes(st, [JUNK]), 0.0, atol=1e-5)


def test_empty_circuit_without_forward_matches_closed_form(state):  # type: ignore[no-untyped-def]
    rows = state.forward_rows
    m_empty = empty_metric(state)
    assert state.forward_rows == rows  # no forward pass
    np.testing.assert_allclose(m_empty, expected(set()), atol=1e-5)
    m = run_nodes(state, [SUCC, SUPP])
    norm = normalized_faithfulness(m, state.m_model, m_empty)
    want = (F({SUCC, SUPP}) - F(set())) / (F_M - F(set()))
    assert norm == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("value", ["mean", "resample"])
def test_batched_circuits_equal_single_runs(bridge, task, value):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(value=value), batch_rows=5)  # chunks cut circuits
    circuits = [[SUCC], [SUPP, JUNK], [SUCC, SUPP, MLP], [], [DEAD]]
    masks = np.zeros((len(circuits), st.weights.n_nodes), dtype=bool)
    for r, c in enumerate(circuits):
        for v in c:
            masks[r, st.nodes.index(v)] = True
    batched = run_circuits(st, masks)
    for r, c in enumerate(circuits):
        np.testing.assert_allclose(batched[r], expected(set(c), value), atol=1e-5)


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


def test_liveness_identical_corruption_fails_loudly(bridge):  # type: ignore[no-untyped-def]
    same = planted_task(CLEAN_S4, CLEAN_S4)
    st = prepare(bridge, same, AblationSpec(value="resample"))
    with pytest.raises(EvaluationError) as err:
        _plan_eval(bridge, same, [SUCC], AblationSpec(value="resample"))
    assert err.value.code == "E305"
    assert st.output_change.max() == 0.0


def test_liveness_whole_model_and_dead_only(bridge, task):  # type: ignore[no-untyped-def]
    everything = [SUCC, SUPP, JUNK, DEAD, MLP]
    with pytest.raises(EvaluationError, match="whole model"):
        _plan_eval(bridge, task, everything)
    with pytest.raises(EvaluationError, match="leaves its target unchanged"):
        _plan_eval(bridge, task, [SUCC, SUPP, JUNK])  # only dead 0.3 and mlp0 ablated


def test_bad_setup_is_an_input_error(bridge, task):  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="not defined"):
        prepare(bridge, task, AblationSpec(positions=("S9",)))
    with pytest.raises(InputError, match="resample"):
        prepare(bridge, task, AblationSpec(direction="patch_circuit"))


CLAIMS = (
    Claim("c1", "faithfulness", ">=", 0.9, bound="lower", text="faithfulness >= 0.9"),
    Claim("c2", "normalized_faithfulness", ">=", 0.8),
    Claim("c3", "minimality", ">=", 0.05),
    Claim("c4", "completeness", "<=", 0.5, params=(("greedy", True), ("random", 4))),
    Claim("c5", "equivalence", ">=", 0.05),
)


def _plan(circuit, ablation=None, claims=CLAIMS):  # type: ignore[no-untyped-def]
    cp = CircuitPlan(
        name="planted",
        model=ModelRef("planted", "local"),
        task=TaskSpec(name="planted"),
        ablation=ablation or AblationSpec(),
        nodes=tuple(sorted(circuit)),
        groups=(("writers", (SUCC, SUPP)),),
        claims=claims,
    )
    return Plan(source="planted.circ", circuits=(cp,), seed=7)


def _plan_eval(bridge, task, circuit, ablation=None):  # type: ignore[no-untyped-def]
    return evaluate_plan(bridge, _plan(circuit, ablation, ()), {"planted": task}, n_boot=200)


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


def test_patching_the_circuit_into_corrupted_input(bridge, task):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(value="resample", direction="patch_circuit"))
    # heads outside the circuit run on the paired corrupted prompt: the resample values
    np.testing.assert_allclose(
        run_nodes(st, [SUCC, SUPP]), expected({SUCC, SUPP}, "resample"), atol=1e-5
    )
    # the empty circuit is the corrupted run; the END token is the same, so patching
    # every head in restores the clean run exactly
    np.testing.assert_allclose(empty_metric(st), expected(set(), "resample"), atol=1e-5)
    np.testing.assert_allclose(run_nodes(st, st.nodes), st.m_model, atol=1e-5)


def test_edge_circuit_on_planted_model(bridge, task):  # type: ignore[no-untyped-def]
    st = prepare(bridge, task, AblationSpec(granularity="edge"))
    # cutting only 0.2 -> logits is ablating the junk head (it feeds nothing else)
    keep = np.array([str(e) != "0.2->logits[resid]" for e in st.graph.edges])
    np.testing.assert_allclose(run_edges(st, keep), expected({SUCC, SUPP}), atol=1e-5)
    # cutting embed -> 0.0[v]: 0.0's value input becomes the corrupted mean embedding,
    # sum_t f_t T_t + P_4 at S4, of norm^2 1 + |f|^2 = 1.25 (f = 1/4, 1/8, 3/8, 1/8, 1/8 on
    # 0, 2, 5, 7, 9); the layer norm rescales it by sqrt(76 / 1.25) instead of sqrt(38),
    # so z = sqrt(2 / 1.25) * f: the mean, scaled by sqrt(1.6)
    keep = np.array([str(e) != "embed->0.0[v]" for e in st.graph.edges])
    want = [
        expected_logit_diff(m4, {0: ("scaled_mean", math.sqrt(1.6))}, CORRUPTED_S4)
        for m4 in CLEAN_S4
    ]
    np.testing.assert_allclose(run_edges(st, keep), want, atol=1e-5)


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
