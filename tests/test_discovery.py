"""Circuit discovery: the pruning order and its forward-pass count derived by hand, the
planted model's circuit recovered exactly, the written .circ file, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from planted import HeadState, bridge_of, expected_logit_diff, planted_hf, planted_task

from seqcirc.discovery.prune import PruneStep, discover, node_sweeps, prune
from seqcirc.plan import Edge, Node
from tests.cli_in_process import seqcirc

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"

# A 2-layer, 1-head model as mask positions: 0.0 -> 0, 1.0 -> 1, mlp0 -> 2, mlp1 -> 3.
B, A, X, DEAD = 0, 1, 2, 3


def _score(masks: np.ndarray) -> np.ndarray:
    """B carries the task; X hurts unless A is there to cancel it; mlp1 does nothing."""
    m = np.asarray(masks, dtype=bool)
    return 0.55 + 0.35 * m[:, B] + 0.1 * m[:, X] - 0.25 * (m[:, X] & ~m[:, A])


def test_sweep_orders_follow_the_paper() -> None:
    back, fwd = node_sweeps(2, 2)  # heads 0..3 (L0: 0,1; L1: 2,3), MLPs 4, 5
    assert back == [5, 2, 3, 4, 0, 1]  # mlp1, 1.0, 1.1, mlp0, 0.0, 0.1
    assert fwd == [0, 1, 4, 2, 3, 5]  # 0.0, 0.1, mlp0, 1.0, 1.1, mlp1


def test_prune_by_hand() -> None:
    """Worked by hand. Sweep 1 (backward: mlp1, 1.0, mlp0, 0.0): mlp1 goes (1.0); 1.0 stays
    (0.75: mlp0 would hurt); mlp0 goes (0.9); 0.0 stays (0.55). Sweep 2 (forward): 0.0
    against {0.0, 1.0} again (memoised); 1.0 goes now that mlp0 is gone (0.9). Sweep 3
    drops nothing: {0.0}. Six distinct circuits scored."""
    out = prune(4, node_sweeps(2, 1), _score)
    want = [
        PruneStep(0, "backward", DEAD, 1.0, True, False),
        PruneStep(0, "backward", A, 0.75, False, False),
        PruneStep(0, "backward", X, 0.9, True, False),
        PruneStep(0, "backward", B, 0.55, False, False),
        PruneStep(1, "forward", B, 0.55, False, True),
        PruneStep(1, "forward", A, 0.9, True, False),
        PruneStep(2, "backward", B, 0.55, False, False),
    ]
    assert [(s.sweep, s.direction, s.item, s.removed, s.memoised) for s in out.steps] == [
        (s.sweep, s.direction, s.item, s.removed, s.memoised) for s in want
    ]
    assert [s.score for s in out.steps] == pytest.approx([s.score for s in want])
    assert out.keep.tolist() == [True, False, False, False]
    assert out.n_sweeps == 3 and out.masks_needed == 6 and out.masks_run == 6
    assert out.score == pytest.approx(0.9)


def test_lookahead_batches_candidates_without_changing_the_result() -> None:
    calls: list[int] = []

    def score(masks: np.ndarray) -> np.ndarray:
        calls.append(len(masks))
        return _score(masks)

    one = prune(4, node_sweeps(2, 1), _score)
    four = prune(4, node_sweeps(2, 1), score, lookahead=4)
    assert four.steps == one.steps and (four.keep == one.keep).all()
    # 4 from the full model (3 discarded after mlp1 went), 3 (1 discarded), 1, 1, 1
    assert calls == [4, 3, 1, 1, 1] and four.masks_run == 10 and four.masks_needed == 6


def test_threshold_is_strict_and_full_model_relative() -> None:
    # exactly the threshold is not "more than": kept
    out = prune(1, ([0], [0]), lambda m: np.full(len(m), 0.8), threshold=0.8)
    assert out.keep.tolist() == [True]
    # each drop costs 0.15 of F(M): relative to the previous step every drop keeps > 80%,
    # relative to the full model only one may go
    out = prune(3, ([0, 1, 2], [2, 1, 0]), lambda m: 1.0 - 0.15 * (~m).sum(1))
    assert out.keep.tolist() == [False, True, True] and out.score == pytest.approx(0.85)


def _planted() -> tuple[object, object]:
    return bridge_of(planted_hf()), planted_task()


def _ratio(heads: dict[int, str]) -> float:
    task = planted_task()
    corrupted = task.corrupted[:, 4].tolist()
    f = [expected_logit_diff(int(m), heads, corrupted) for m in task.clean[:, 4]]
    full = [expected_logit_diff(int(m), {}, corrupted) for m in task.clean[:, 4]]
    return float(np.mean(f) / np.mean(full))


def test_discovery_recovers_the_planted_circuit_with_the_needed_passes() -> None:
    """Sweep 1 (mlp0, 0.0, 0.1, 0.2, 0.3): the dead mlp0 and 0.3 and the junk head 0.2 go;
    the successor 0.0 (48%) and suppressor 0.1 (74%) stay. Sweep 2 (0.0, 0.1) drops
    nothing: 5 + 2 circuits, each one pass over the 8 prompts."""
    bridge, task = _planted()
    d = discover(bridge, task, edges=True)
    assert d.nodes == (Node(0, 0), Node(0, 1))
    assert d.outcome.n_sweeps == 2 and d.outcome.masks_needed == d.outcome.masks_run == 7
    n = task.n_prompts
    # prepare (corrupted + clean + 2 bridge-check rows), 7 circuits, the 2 x 2 table, then
    # edges: every edge among the nodes once, plus one pass per edge tested
    node_rows = d.prepare_rows + 7 * n + 2 * 2 * n
    assert d.prepare_rows == 2 * n + 2
    assert d.edges is not None
    assert d.forward_rows == node_rows + (1 + d.edges.outcome.masks_run) * n
    assert d.score == pytest.approx(_ratio({2: "mean"}), rel=1e-5)
    tests = {(s.item, s.sweep): s.score for s in d.outcome.steps}
    assert tests[(0, 0)] == pytest.approx(_ratio({0: "mean"}), rel=1e-5)
    assert tests[(1, 0)] == pytest.approx(_ratio({1: "mean"}), rel=1e-5)
    assert tests[(0, 1)] == pytest.approx(_ratio({0: "mean", 2: "mean"}), rel=1e-5)
    single = {s.node: s for s in d.single}
    assert single["0.0"].from_model == pytest.approx(_ratio({0: "mean"}), rel=1e-5)
    assert single["0.1"].from_circuit == pytest.approx(_ratio({1: "mean", 2: "mean"}), rel=1e-5)
    # the edges that carry the planted mechanism: each head's value input from the
    # embeddings (the S4 token), each head's output to the logits
    assert set(d.edges.edges) == {
        Edge("embed", "0.0", "v"), Edge("embed", "0.1", "v"),
        Edge("0.0", "logits", "resid"), Edge("0.1", "logits", "resid"),
    }  # fmt: skip
    assert d.edges.score == pytest.approx(d.score, rel=1e-5)


def test_the_authors_edge_pruning_tests_each_edge_alone() -> None:
    """--method paper: every edge among the found nodes removed alone from the node
    circuit, its sender's output taken from the paired corrupted prompt (the rest of the
    model mean-ablated), kept when F(C - e)/F(M) < 0.8. Each score is the closed form of
    tests/planted.py: an edge into 0.0's value or out of 0.0 gives 0.0 the paired prompt's
    r4 (resample), the same for 0.1, the rest change nothing (queries, keys and the
    logits' embedding read positions and IN, which the corrupted prompts share). It keeps
    the planted edges in one corrupted sweep, one batched call of 1 + 9 circuits and one
    pass for the kept edges."""
    from seqcirc.discovery.prune import candidate_edges
    from seqcirc.engine.edges import edge_mask, run_edges
    from seqcirc.engine.prepare import prepare

    bridge, task = _planted()
    d = discover(bridge, task, edges=True, edge_method="paper")
    assert d.nodes == (Node(0, 0), Node(0, 1)) and d.edges is not None
    assert d.edges.method == "paper"
    assert set(d.edges.edges) == {
        Edge("embed", "0.0", "v"), Edge("embed", "0.1", "v"),
        Edge("0.0", "logits", "resid"), Edge("0.1", "logits", "resid"),
    }  # fmt: skip
    state = prepare(bridge, task)
    fm = float(state.m_model.mean())
    cands = candidate_edges(state, d.nodes)
    assert d.edges.n_candidates == len(cands) == 9 and len(d.edges.outcome.steps) == 9
    corrupted = task.corrupted[:, 4].tolist()
    full = np.mean([expected_logit_diff(int(m), {}, corrupted) for m in task.clean[:, 4]])
    base = edge_mask(state, cands)
    for step, edge in zip(d.edges.outcome.steps, cands, strict=True):
        heads: dict[int, HeadState] = {2: "mean"}
        for h, name in enumerate(("0.0", "0.1")):
            if edge.sender == name or (edge.receiver, edge.input) == (name, "v"):
                heads[h] = "paired"
        paired = [
            expected_logit_diff(
                int(m),
                {h: ("resample", r) if v == "paired" else v for h, v in heads.items()},
                corrupted,
            )
            for m, r in zip(task.clean[:, 4], corrupted, strict=True)
        ]
        assert step.score == pytest.approx(np.mean(paired) / full, abs=1e-5)
        assert step.removed == (step.score >= 0.8)
        keep = base.copy()
        keep[state.graph.index[edge]] = False
        mean = float(run_edges(state, keep).mean()) / fm  # the old way: the mean, not paired
        assert (abs(step.score - mean) > 0.05) == (
            str(edge) in ("embed->0.0[v]", "0.0->logits[resid]")
        )
    n = task.n_prompts
    node_rows = d.prepare_rows + 7 * n + 2 * 2 * n
    assert d.forward_rows == node_rows + n + (1 + 9 + 1) * n  # + the corrupted sweep
    assert d.edges.score == pytest.approx(d.score, rel=1e-5)


def test_a_lower_threshold_lets_the_suppressor_go() -> None:
    bridge, task = _planted()
    d = discover(bridge, task, threshold=0.7)
    assert d.nodes == (Node(0, 0),)
    assert d.score == pytest.approx(_ratio({1: "mean", 2: "mean"}), rel=1e-5)


def test_bad_threshold_and_everything_pruned_are_errors() -> None:
    from seqcirc.errors import EvaluationError, InputError

    bridge, task = _planted()
    with pytest.raises(InputError) as err:
        discover(bridge, task, threshold=80)
    assert err.value.code == "E340"
    # corrupted = clean: the mean is each activation itself, so every component can go
    with pytest.raises(EvaluationError) as err2:
        discover(bridge, planted_task(clean_s4=(3,), corrupted_s4=(3,)))
    assert err2.value.code == "E342"


def test_written_file_compiles_groups_roles_and_its_claims_hold(tmp_path: Path) -> None:
    from seqcirc.claims.evaluate import evaluate_plan
    from seqcirc.discovery.circ_file import render_circ
    from seqcirc.language.fmt import format_text
    from seqcirc.plan.compile import compile_text
    from seqcirc.roles.scan import RoleTable

    hf = planted_hf()
    hf.config.to_json_file(str(tmp_path / "config.json"))  # the shape, for the checks
    bridge, task = bridge_of(hf), planted_task()
    d = discover(bridge, task)
    roles = ("successor", "successor_first", "copy", "copy_first", "previous_token",
             "duplicate", "induction")  # fmt: skip
    values = np.zeros((len(roles), 1, 4))
    values[1, 0, 0] = 0.9  # 0.0 ranks the next member first: a successor head
    values[3, 0, 1] = 0.4  # 0.1's copy score is below the support: no group
    table = RoleTable(roles, values, {"set": "numerals", "top_k": 5, "members": list("abcd")})
    circ_path = tmp_path / "planted.circ"

    def evaluate(text: str):  # type: ignore[no-untyped-def]
        plan = compile_text(text, str(circ_path))
        return evaluate_plan(bridge, plan, lambda c: task, n_boot=300)

    written = render_circ(
        d, name="planted", model=str(tmp_path), task_def="task planted = sequence(numerals)\n",
        task=task, seed=0, command="test", role_table=table, evaluate=evaluate,
    )  # fmt: skip
    text = written.text
    assert format_text(text) == text
    plan = compile_text(text, str(circ_path))
    (circuit,) = plan.circuits
    assert circuit.nodes == (Node(0, 0), Node(0, 1))
    assert circuit.groups == (("successor", (Node(0, 0),)),)
    assert "  heads 0.1\n" in text and "mlp" not in text.split("circuit planted")[1]
    kinds = {c.kind for c in circuit.claims}
    assert {"faithfulness", "minimality"} <= kinds
    assert all(v["verdict"] == "pass" for v in written.claims["planted"].values())
    assert "#   0.0 " in text and "successor" in text  # the per-component table and roles


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model is not built")
def test_cli_discover_then_check_and_test_pass(tmp_path: Path) -> None:
    out = tmp_path / "found.circ"
    # in process: the imports and the model load once
    run = seqcirc("discover", "--model", "seqcirc-mini", "--task", "months", "--prompts", "12",
                  "-o", str(out))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout and "F(C)/F(M)" in run.stdout
    check = seqcirc("check", str(out))
    assert check.returncode == 0, check.stderr
    test = seqcirc("test", str(out), "-q")
    assert test.returncode == 0, test.stdout + test.stderr


def test_cli_discover_bad_input_exits_2_without_traceback() -> None:
    for args in (["--task", "planets"], ["--task", "months", "--threshold", "1.5"],
                 ["--task", "months", "--method", "paper"]):  # fmt: skip
        run = seqcirc("discover", *args)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr and "error" in run.stderr
