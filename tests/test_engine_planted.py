"""The engine on the planted GPT-2: every expected value comes from the closed form in
tests/planted.py (derived by hand from the hand-set weights), never from a model run.
Forward passes, batching, the empty circuit, liveness, patching and edge circuits."""

# ruff: noqa: F811 (the planted fixtures are imported from tests/planted_state.py)

from __future__ import annotations

import math

import numpy as np
import pytest

from seqcirc.claims.faithfulness import normalized_faithfulness, performance_ratio
from seqcirc.engine.edges import run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import EvaluationError, InputError
from seqcirc.plan import AblationSpec
from tests.planted import (
    expected_logit_diff,
    planted_task,
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
