"""The fast engine's edge pass (forward.gpt2_edges.forward_edges with forward.edge_plan): each
receiver's input built from the ablated residual plus the kept senders' (actual - ablated),
skipping senders that reach no needed receiver and sharing equal inputs, against the
previous dense formula (actual residual plus every removed sender's (ablated - actual))
written out here; and the cases where that formula's cancellation showed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from seqcirc.engine.prepare import prepare
from seqcirc.forward.edge_plan import edge_plan
from seqcirc.forward.gpt2 import Gpt2Weights
from seqcirc.forward.gpt2_edges import EdgeValues, forward_edges, removed_matrix
from seqcirc.forward.select import edge_values_rows
from seqcirc.plan import AblationSpec, Edge
from seqcirc.tasks.types import TokenizedTask
from tests.planted import bridge_of
from tests.tasks_fixtures import random_task

N_LAYERS, N_HEADS, D_MODEL, VOCAB, SEQ, N = 3, 4, 16, 24, 5, 4


def _bridge(dtype: torch.dtype, *, biases: bool = True):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = GPT2Config(
        n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_positions=8, vocab_size=VOCAB,
        n_inner=32, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") and not biases:
                p.zero_()
            elif "ln" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.5)
    return bridge_of(hf.to(dtype))


@pytest.fixture(scope="module")
def task() -> TokenizedTask:
    return random_task(2, VOCAB, SEQ, END=[4, 3, 4, 2])


@pytest.fixture(scope="module")
def states(task):  # type: ignore[no-untyped-def]
    """Prepared edge states of a float64 model, by ablation value (prepared once)."""
    bridge = _bridge(torch.float64)
    return {v: prepare(bridge, task, AblationSpec(granularity="edge", value=v))
            for v in ("mean", "resample")}  # fmt: skip


def _dense_formula(
    w: Gpt2Weights, tokens: torch.Tensor, answer_pos: torch.Tensor, removed: torch.Tensor,
    values: EdgeValues,
) -> torch.Tensor:  # fmt: skip
    """The previous pass: every receiver reads the actual residual plus, for every sender,
    its removed weight times (ablated - actual); every head and MLP computed."""
    d, n_h, per = w.d_model, w.n_heads, 3 * w.n_heads + 1
    resid = w.W_E[tokens] + w.W_pos[: tokens.shape[1]]
    diffs = [values.embed - resid]  # per sender [B, S, d]

    def inp(row: int, n: int) -> torch.Tensor:
        return resid + sum(removed[row, s] * diffs[s] for s in range(n))

    for L in range(w.n_layers):
        W, b = w.qkv_per_head(L)
        heads = []
        for h in range(n_h):
            xs = [inp(L * per + i * n_h + h, len(diffs)) for i in range(3)]
            xs = [F.layer_norm(x, (d,), w.ln1_w[L], w.ln1_b[L], w.eps) for x in xs]
            q, k, v = (xs[i] @ W[i, h] + b[i, h] for i in range(3))
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            heads.append(z @ w.W_O[L][h])
        diffs += [values.head_out[L][..., h, :] - heads[h] for h in range(n_h)]
        resid = resid + sum(heads) + w.b_O[L]
        x = F.layer_norm(inp(L * per + 3 * n_h, len(diffs)), (d,), w.ln2_w[L], w.ln2_b[L], w.eps)
        out = F.gelu(x @ w.W_in[L] + w.b_in[L], approximate="tanh") @ w.W_out[L] + w.b_out[L]
        diffs.append(values.mlp[L] - out)
        resid = resid + out
    final = inp(removed.shape[0] - 1, len(diffs))
    return w.unembed(final[torch.arange(tokens.shape[0]), answer_pos])


@pytest.mark.parametrize("value", ["mean", "resample"])
@pytest.mark.parametrize("share", [0.0, 0.03, 0.1, 0.5, 1.0])
def test_plan_matches_the_dense_formula(states, value, share):  # type: ignore[no-untyped-def]
    state = states[value]
    w, graph = state.weights, state.graph
    values = state.edge_values
    if state.ablation.per_prompt_values:
        values = edge_values_rows(values, torch.arange(N))
    rng = np.random.default_rng(int(share * 100))
    keep = torch.as_tensor(rng.random(graph.n_edges) < share)
    removed = removed_matrix(graph, keep, w.dtype)
    with torch.inference_mode():
        ours = forward_edges(w, state.clean, state.answer_pos, removed, values)
        ref = _dense_formula(w, state.clean, state.answer_pos, removed, values)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


def test_sparse_circuits_skip_and_share(states):  # type: ignore[no-untyped-def]
    """Circuits whose plans skip heads and MLPs and share inputs give the dense formula's
    logits (the paths the test above may not reach at random)."""
    state = states["mean"]
    w, graph = state.weights, state.graph
    edges = [
        Edge("embed", "0.1", "q"), Edge("embed", "0.1", "v"), Edge("0.1", "2.3", "k"),
        Edge("embed", "mlp1", "mlp"), Edge("mlp1", "2.0", "q"), Edge("mlp1", "2.0", "k"),
        Edge("2.0", "logits", "resid"), Edge("2.3", "mlp2", "mlp"), Edge("mlp2", "logits", "resid"),
    ]  # fmt: skip
    keep = torch.zeros(graph.n_edges, dtype=torch.bool)
    keep[[graph.index[e] for e in edges]] = True
    removed = removed_matrix(graph, keep, w.dtype)
    plan = edge_plan(w.n_layers, w.n_heads, removed)
    # needed: embed, 0.1, mlp1, 2.0, 2.3, mlp2 (0.1 through 2.3's k; 2.3 through mlp2)
    assert plan.n_slots == 1 + 6 and plan.embed_needed
    assert [lp.heads.tolist() for lp in plan.layers] == [[1], [], [0, 3]]
    assert [lp.mlp is not None for lp in plan.layers] == [False, True, True]
    shared = plan.layers[2].qkv
    assert shared is not None and shared.inverse is not None  # 2.0 v, 2.3 q, 2.3 v: nothing kept
    with torch.inference_mode():
        ours = forward_edges(w, state.clean, state.answer_pos, removed, state.edge_values)
        ref = _dense_formula(w, state.clean, state.answer_pos, removed, state.edge_values)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("value", ["mean", "resample"])
def test_one_removal_per_row_matches_the_dense_formula(states, value):  # type: ignore[no-untyped-def]
    """The multi-circuit path (removed [B, receivers, senders]) row by row."""
    state = states[value]
    w, graph = state.weights, state.graph
    values = state.edge_values
    if state.ablation.per_prompt_values:
        values = edge_values_rows(values, torch.arange(N))
    rng = np.random.default_rng(3)
    shares = np.array([0.0, 0.1, 0.5, 1.0])[:, None]
    keeps = torch.as_tensor(rng.random((N, graph.n_edges)) < shares)
    removed = removed_matrix(graph, keeps, w.dtype)
    with torch.inference_mode():
        ours = forward_edges(w, state.clean, state.answer_pos, removed, values)
        for i in range(N):
            one = edge_values_rows(values, torch.tensor([i])) if value == "resample" else values
            row = slice(i, i + 1)
            ref = _dense_formula(w, state.clean[row], state.answer_pos[row], removed[i], one)
            torch.testing.assert_close(ours[row], ref, atol=1e-10, rtol=0)


def test_float_removed_weights(states):  # type: ignore[no-untyped-def]
    """A float removed matrix (edge attribution's finite differences): kept = 1 - removed."""
    state = states["mean"]
    w, graph = state.weights, state.graph
    removed = removed_matrix(graph, torch.ones(graph.n_edges, dtype=torch.bool), w.dtype)
    weights = torch.as_tensor(np.random.default_rng(0).uniform(-0.5, 1.5, graph.n_edges))
    removed[graph.rows, graph.cols] = weights
    with torch.inference_mode():
        ours = forward_edges(w, state.clean, state.answer_pos, removed, state.edge_values)
        ref = _dense_formula(w, state.clean, state.answer_pos, removed, state.edge_values)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("biases", [True, False])
def test_zero_ablation_with_only_layer0_inputs_is_exactly_all_ablated(task, biases):  # type: ignore[no-untyped-def]
    """Keeping only the edges into layer 0 leaves every later input, and the logits,
    exactly the ablated residual: with zero ablation the attention biases alone (none in
    a bias-free model, so logits exactly 0). The dense formula, which subtracts each
    removed sender's actual output from the actual residual, left rounding noise there."""
    bridge = _bridge(torch.float32, biases=biases)
    state = prepare(bridge, task, AblationSpec(granularity="edge", value="zero"))
    w, graph = state.weights, state.graph
    keep = np.array([e.receiver.startswith("0.") or e.receiver == "mlp0" for e in graph.edges])
    with torch.inference_mode():
        removed = removed_matrix(graph, torch.as_tensor(keep), w.dtype)
        ours = forward_edges(w, state.clean, state.answer_pos, removed, state.edge_values)
        biases_only = w.unembed(sum(w.b_O[L] for L in range(w.n_layers)).expand(N, -1))
        dense = _dense_formula(w, state.clean, state.answer_pos, removed, state.edge_values)
        rows = forward_edges(w, state.clean, state.answer_pos,
                             removed.expand(N, *removed.shape), state.edge_values)  # fmt: skip
    torch.testing.assert_close(ours, biases_only, atol=1e-7, rtol=0)
    torch.testing.assert_close(rows, biases_only, atol=1e-7, rtol=0)
    if not biases:
        assert torch.equal(ours, torch.zeros_like(ours))
        assert torch.equal(rows, torch.zeros_like(rows))
        assert dense.abs().max() > 1e-6  # what the dense formula gave: cancellation noise
