"""Edge discovery on the planted GPT-2 (tests/planted.py): ACDC recovers exactly its
circuit with the passes counted by hand; the attribution search's pruning, greedy
selection and bisection; the written `.circ` file runs as written."""

# ruff: noqa: F811 (the planted fixtures are imported from tests/planted_state.py)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from planted import bridge_of, planted_hf, planted_task
from planted_state import F_M, SUCC, SUPP, F, bridge, task  # noqa: F401 (fixtures)

from seqcirc.discovery.acdc import acdc, receiver_order
from seqcirc.discovery.attribute import attribute
from seqcirc.discovery.edge_search import greedy, prune_dangling, search_edges, top_n
from seqcirc.engine.edges import run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.errors import EvaluationError, InputError
from seqcirc.plan import AblationSpec, Edge
from seqcirc.tasks.types import TokenizedTask

PLANTED = {"embed->0.0[v]", "embed->0.1[v]", "0.0->logits[resid]", "0.1->logits[resid]"}


@pytest.fixture(scope="module")
def edge_state(bridge, task):  # type: ignore[no-untyped-def]
    return prepare(bridge, task, AblationSpec(granularity="edge"))


def _names(state, keep) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(e) for e, k in zip(state.graph.edges, keep, strict=True) if k}


def _mask(state, names) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([str(e) in names for e in state.graph.edges])


def test_receiver_order_is_reverse_topological() -> None:
    # 2 layers x 1 head: rows per layer q, k, v, MLP (0-3, 4-7); logits 8
    assert receiver_order(2, 1) == [8, 7, 6, 5, 4, 3, 2, 1, 0]
    # 1 layer x 2 heads: q0 q1 k0 k1 v0 v1 mlp (0-6), logits 7: head 1's v, k, q first
    assert receiver_order(1, 2) == [7, 6, 5, 3, 1, 4, 2, 0]


@pytest.mark.parametrize("threshold", [0.01, 0.5])
def test_acdc_recovers_the_planted_circuit(edge_state, threshold):  # type: ignore[no-untyped-def]
    """The logits' six inputs are tested (mlp0, 0.3, 0.2, 0.1, 0.0, embed): the dead
    ones and the junk head (its ablation raises the logit difference by 0.18) go; mlp0,
    0.2 and 0.3 are left without outputs, so their 5 + 3 + 3 inputs go unseen; 0.1's and
    0.0's v, k, q inputs are tested (6): only v carries the token. 12 passes."""
    out = acdc(edge_state, threshold)
    assert _names(edge_state, out.keep) == PLANTED
    assert (out.passes, out.skipped) == (12, 11)
    junk = next(s for s in out.steps if str(edge_state.graph.edges[s.edge]) == "0.2->logits[resid]")
    assert junk.removed and junk.delta == pytest.approx(-(F({SUCC, SUPP}) - F_M), rel=1e-5)
    assert out.loss == pytest.approx(-F({SUCC, SUPP}), rel=1e-5)


@pytest.mark.parametrize("lookahead", [2, 5, 40])
def test_acdc_in_speculative_batches_finds_the_same_circuit(edge_state, lookahead):  # type: ignore[no-untyped-def]
    """Batches of `lookahead` candidates, each against the circuit the predicted
    decisions lead to: the same steps (edges, losses, decisions) and circuit as one at a
    time; the circuits scored counted, the dropped ones included. On the planted model
    the logits' 6 inputs (mlp0, 0.3, 0.2, 0.1, 0.0, embed) are decided removed x 3, kept
    x 2, removed; a batch breaks at each change of decision, and the dropped rest is
    wasted: 2: none (the changes fall at batch ends); 5: one (0.0 scored against the
    circuit without 0.1); 40: two (0.0 and embed). The heads' inputs (one candidate
    each, six) cannot be batched."""
    one = acdc(edge_state, 0.05, lookahead=1)
    out = acdc(edge_state, 0.05, lookahead=lookahead)
    assert np.array_equal(out.keep, one.keep) and _names(edge_state, out.keep) == PLANTED
    assert [(s.edge, s.removed) for s in out.steps] == [(s.edge, s.removed) for s in one.steps]
    np.testing.assert_allclose([s.loss for s in out.steps], [s.loss for s in one.steps],
                               rtol=1e-6)  # fmt: skip
    assert one.circuits_run == one.passes == out.passes == 12
    assert [s.removed for s in one.steps][:6] == [True, True, True, False, False, True]
    want = {2: 12, 5: 13, 40: 14}[lookahead]
    assert out.circuits_run == want


def test_acdc_by_kl_and_its_errors(bridge, task):  # type: ignore[no-untyped-def]
    kl = prepare(bridge, task, AblationSpec(granularity="edge"), "kl")
    # the suppressor moves the output distribution by 0.003 nats only: below 0.01 it goes
    assert _names(kl, acdc(kl, 0.01).keep) == {"embed->0.0[v]", "0.0->logits[resid]"}
    for threshold in (None, -1.0, float("nan")):
        with pytest.raises(InputError) as err:
            acdc(kl, threshold)  # type: ignore[arg-type]
        assert err.value.code == "E340"
    with pytest.raises(EvaluationError) as err2:
        acdc(kl, 100.0)
    assert err2.value.code == "E342"


def test_pruning_keeps_paths_from_the_embeddings_to_the_logits(edge_state):  # type: ignore[no-untyped-def]
    g = edge_state.graph
    # 0.0 has an output but no input: both go; 0.2 an input but no output: it goes
    keep = _mask(edge_state, {"0.0->logits[resid]", "embed->0.2[q]", "embed->0.1[v]",
                              "0.1->logits[resid]"})  # fmt: skip
    assert _names(edge_state, prune_dangling(g, keep)) == {"embed->0.1[v]", "0.1->logits[resid]"}
    # a chain through the MLP stays whole
    chain = {"embed->0.3[k]", "0.3->mlp0[mlp]", "mlp0->logits[resid]"}
    assert _names(edge_state, prune_dangling(g, _mask(edge_state, chain))) == chain


def test_top_n_and_greedy_selection(edge_state):  # type: ignore[no-untyped-def]
    g = edge_state.graph
    scores = np.zeros(g.n_edges)
    ranked = ["embed->0.2[v]", "0.1->logits[resid]", "embed->0.1[v]", "0.2->logits[resid]"]
    for value, name in zip((-4.0, 3.0, -2.0, 0.5), ranked, strict=True):
        scores[[str(e) for e in g.edges].index(name)] = value
    # top 2: embed->0.2[v] dangles without 0.2's output and is pruned
    assert _names(edge_state, top_n(g, scores, 2)) == set()
    assert _names(edge_state, top_n(g, scores, 3)) == {"0.1->logits[resid]", "embed->0.1[v]"}
    # greedy from the logits: 0.1->logits (3), then 0.1's input embed->0.1[v] (2), then
    # 0.2->logits (0.5) opens 0.2, whose embed->0.2[v] (4) comes next
    assert _names(edge_state, greedy(g, scores, 2)) == {"0.1->logits[resid]", "embed->0.1[v]"}
    assert _names(edge_state, greedy(g, scores, 4)) == set(ranked)


def test_search_finds_the_smallest_faithful_top_n(edge_state):  # type: ignore[no-untyped-def]
    exact = attribute(edge_state, "exact").scores
    found = search_edges(edge_state, exact, 0.8)
    assert _names(edge_state, found.keep) == PLANTED and found.n == 4
    assert found.score == pytest.approx(F({SUCC, SUPP}) / F_M, rel=1e-5)
    # bisection over 23 edges: 11, 5, 2, 3, 4 (5 passes); the top 3 keep too little
    assert [p.n for p in found.probes] == [11, 5, 2, 3, 4]
    top3 = top_n(edge_state.graph, exact, 3)
    assert float(run_edges(edge_state, top3).mean()) / F_M <= 0.8
    greedy_found = search_edges(edge_state, exact, 0.8, selection="greedy")
    assert _names(edge_state, greedy_found.keep) == PLANTED


def test_search_refuses_when_the_empty_circuit_is_faithful() -> None:
    b = bridge_of(planted_hf())
    same = prepare(b, planted_task((3,), (3,)), AblationSpec(granularity="edge"))
    with pytest.raises(EvaluationError) as err:
        search_edges(same, np.zeros(same.graph.n_edges), 0.8)
    assert err.value.code == "E342"


@pytest.mark.parametrize("method", ["eap-ig", "acdc"])
def test_written_edge_circuit_runs_as_written(tmp_path: Path, bridge, task, edge_state, method):  # type: ignore[no-untyped-def]
    from seqcirc.claims.evaluate import evaluate_plan
    from seqcirc.discovery.edge_circ import FoundEdges, render_edge_circ
    from seqcirc.language.fmt import format_text
    from seqcirc.plan.compile import compile_text

    hf = planted_hf()
    hf.config.to_json_file(str(tmp_path / "config.json"))  # the shape, for the checks
    if method == "acdc":
        out = acdc(edge_state, 0.1)
        keep, scores, threshold = out.keep, np.zeros(edge_state.graph.n_edges), None
        for s in out.steps:
            scores[s.edge] = s.delta
    else:
        scores = attribute(edge_state, "eap-ig-inputs").scores
        keep, threshold = search_edges(edge_state, scores, 0.8).keep, 0.8
    g = edge_state.graph
    kept = tuple(e for e, k in zip(g.edges, keep, strict=True) if k)
    ratio = float(run_edges(edge_state, keep).mean()) / F_M
    found = FoundEdges(method, kept, {e: float(s) for e, s in zip(g.edges, scores, strict=True)},
                       "score", ratio, threshold, F_M, AblationSpec(granularity="edge"),
                       8, g.n_edges, "how it was found")  # fmt: skip
    circ = tmp_path / "found.circ"

    def evaluate(text: str):  # type: ignore[no-untyped-def]
        return evaluate_plan(bridge, compile_text(text, str(circ)), lambda c: task, n_boot=300)

    written = render_edge_circ(found, name="planted_edges", model=str(tmp_path),
                               task_def="task planted = sequence(numerals)\n",
                               task_name="planted", seed=0, command="test",
                               evaluate=evaluate)  # fmt: skip
    text = written.text
    assert format_text(text) == text
    (circuit,) = compile_text(text, str(circ)).circuits
    assert {str(e) for e in circuit.edges} == PLANTED
    assert circuit.ablation.is_edge and circuit.nodes == (SUCC, SUPP)
    assert "  edge embed -> 0.0 (v)  # v " in text and "  edge 0.0 -> logits  # " in text
    claims = written.claims["planted_edges"]
    assert claims and all(v["verdict"] == "pass" for v in claims.values())
    assert ("faithfulness:point" in claims) == (method == "eap-ig")
    assert Edge("embed", "0.0", "v") in circuit.edges


def _tiny_gpt2():  # type: ignore[no-untyped-def]
    """2 layers x 2 heads, d_model 16, large random weights: every sender moves the logits."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=16, n_positions=8, vocab_size=24,
                     bos_token_id=0, eos_token_id=0)  # fmt: skip
    torch.manual_seed(3)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return bridge_of(model)


def _paired_reference(state, edge, base, fm):  # type: ignore[no-untyped-def]
    """F(C - e) / F(M) one prompt at a time on the generic engine: the state's mean values
    with only e's sender swapped for prompt i's corrupted activation (captured apart)."""
    from seqcirc.forward.select import removed_edges

    keep = base.copy()
    keep[state.graph.index[edge]] = False
    removed = removed_edges(state.weights, state.graph, torch.as_tensor(keep))
    rows = [slice(i, i + 1) for i in range(state.n_prompts)]
    return float(np.mean([_paired_row(state, edge, removed, r) for r in rows])) / fm


@torch.inference_mode()
def _paired_row(state, edge, removed, row) -> float:  # type: ignore[no-untyped-def]
    """The logit difference of one prompt with e's sender from its corrupted twin."""
    from seqcirc.forward.common import Replacement
    from seqcirc.forward.select import edge_values, forward_edges, forward_nodes

    w = state.weights
    corr = forward_nodes(w, state.corrupted[row], state.answer_pos[row], capture=True)
    z, mlp, embed = list(state.values.z), list(state.values.mlp), state.embed_values
    if edge.sender == "embed":
        embed = corr.embed[0]
    elif edge.sender.startswith("mlp"):
        mlp[int(edge.sender[3:])] = corr.mlp[int(edge.sender[3:])][0]
    else:
        layer, head = (int(x) for x in edge.sender.split("."))
        z[layer] = z[layer].clone()
        z[layer][:, head] = corr.z[layer][0, :, head]
    values = edge_values(w, embed, Replacement(tuple(z), tuple(mlp)))
    logits = forward_edges(w, state.clean[row], state.answer_pos[row], removed, values)[0]
    return float(logits[state.correct[row]] - logits[state.incorrect[row]])


def test_the_authors_edge_test_patches_the_paired_corrupted_activation() -> None:
    """--method paper on a random 2-layer GPT-2 (fast engine), the node circuit three heads
    and an MLP, every threshold passed (each edge kept): each single-edge score equals a
    reference run one prompt at a time on the generic engine with only the tested edge's
    sender from the paired corrupted prompt, the rest mean-ablated (to 1e-5); the mean in
    its place (the state's run_edges) would give other scores."""
    from seqcirc.claims.measures import f_model
    from seqcirc.discovery.paper_edges import paper_edges
    from seqcirc.discovery.prune import candidate_edges
    from seqcirc.engine.edges import edge_mask
    from seqcirc.plan import Node

    bridge = _tiny_gpt2()
    rng = np.random.default_rng(0)  # F(M) = 1.31
    task = TokenizedTask(
        name="random", clean=rng.integers(0, 24, (5, 6)), corrupted=rng.integers(0, 24, (5, 6)),
        correct=rng.integers(0, 24, 5), incorrect=rng.integers(0, 24, 5),
        positions={"END": np.array([5, 5, 4, 5, 3])},
    )  # fmt: skip
    nodes = (Node(0, 0), Node(0), Node(1, 0), Node(1, 1))
    fast = prepare(bridge, task, engine="fast")
    generic = prepare(bridge, task, engine="generic")
    out = paper_edges(fast, nodes, threshold=1e9)
    cands = candidate_edges(fast, nodes)
    assert len(cands) == len(out.outcome.steps) == 28  # 3 + 2 + 9 + 9 + 5 receivers' inputs
    fm = f_model(generic)
    base = edge_mask(generic, cands)
    gaps = []
    for step, edge in zip(out.outcome.steps, cands, strict=True):
        ref = _paired_reference(generic, edge, base, fm)
        assert step.score == pytest.approx(ref, abs=1e-5)
        keep = base.copy()
        keep[generic.graph.index[edge]] = False
        gaps.append(abs(float(run_edges(generic, keep).mean()) / fm - ref))
    assert max(gaps) > 0.05
