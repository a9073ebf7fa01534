"""The evaluator's fast paths against slow, independent references on a tiny random GPT-2.

- node ablation vs hand-written TransformerLens hooks on the bridge (hook_z, hook_mlp_out);
- the one-pass edge path vs (a) an explicit per-receiver reconstruction of every input
  from sender outputs and (b) two-pass path patching of one receiver with bridge hooks.
Each comparison also asserts the intervention moved the metric, so equality means something.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from seqcirc.engine.edges import edge_mask, run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import EvalState, node_mask, run_circuits
from seqcirc.forward.gpt2 import Gpt2Weights
from seqcirc.forward.gpt2_edges import sender_names
from seqcirc.plan import LOGITS, AblationSpec, Edge, Node
from seqcirc.tasks.types import TokenizedTask
from tests.planted import bridge_of
from tests.tasks_fixtures import random_task


def run_nodes(state: EvalState, nodes: Iterable[Node]) -> np.ndarray:
    """Per-prompt metric [n] of one node circuit (its complement ablated)."""
    return run_circuits(state, node_mask(state, nodes)[None])[0]


N_LAYERS, N_HEADS, D_MODEL, VOCAB, SEQ, N = 2, 3, 12, 20, 6, 5


@pytest.fixture(scope="module")
def bridge():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = GPT2Config(
        n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_positions=16, vocab_size=VOCAB,
        n_inner=24, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # large weights, so every ablation moves the logits visibly
        for name, p in hf.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.5)
    return bridge_of(hf)


@pytest.fixture(scope="module")
def task() -> TokenizedTask:
    return random_task(1, VOCAB, SEQ, END=[5, 5, 4, 5, 3], S2=[2, 1, 2, 2, 1])


def _ref_nodes(bridge, task, circuit, value, positions):  # type: ignore[no-untyped-def]
    """Complement ablation with plain TransformerLens hooks (the independent reference)."""
    n_layers, n_heads = bridge.cfg.n_layers, bridge.cfg.n_heads
    n, seq = task.clean.shape
    clean = torch.tensor(task.clean)
    corrupted = torch.tensor(task.corrupted)
    names = [f"blocks.{L}.attn.hook_z" for L in range(n_layers)]
    names += [f"blocks.{L}.hook_mlp_out" for L in range(n_layers)]
    with torch.no_grad():
        _, cache = bridge.run_with_cache(corrupted, names_filter=lambda n: n in names)
    keep_pos = torch.ones(n, seq, dtype=torch.bool)
    if positions is not None:
        keep_pos[:] = False
        for p in positions:
            keep_pos[torch.arange(n), torch.tensor(task.positions[p])] = True

    def value_of(act):  # type: ignore[no-untyped-def]
        if value == "mean":
            return act.mean(0, keepdim=True).expand_as(act)
        if value == "zero":
            return torch.zeros_like(act)
        return act  # resample: the paired corrupted prompt

    def z_hook(layer):  # type: ignore[no-untyped-def]
        def hook(z, hook):  # type: ignore[no-untyped-def]
            new = value_of(cache[f"blocks.{layer}.attn.hook_z"])
            out = z.clone()
            for h in range(n_heads):
                keep = keep_pos if Node(layer, h) in circuit else torch.zeros_like(keep_pos)
                out[:, :, h][~keep] = new[:, :, h][~keep]
            return out

        return hook

    def mlp_hook(layer):  # type: ignore[no-untyped-def]
        def hook(m, hook):  # type: ignore[no-untyped-def]
            new = value_of(cache[f"blocks.{layer}.hook_mlp_out"])
            keep = keep_pos if Node(layer) in circuit else torch.zeros_like(keep_pos)
            out = m.clone()
            out[~keep] = new[~keep]
            return out

        return hook

    hooks = [(f"blocks.{L}.attn.hook_z", z_hook(L)) for L in range(n_layers)]
    hooks += [(f"blocks.{L}.hook_mlp_out", mlp_hook(L)) for L in range(n_layers)]
    with torch.no_grad():
        logits = bridge.run_with_hooks(clean, fwd_hooks=hooks)
    at = logits[torch.arange(n), torch.tensor(task.answer_pos)]
    rows = torch.arange(n)
    return (at[rows, task.correct] - at[rows, task.incorrect]).double().numpy()


CIRCUITS = [
    (Node(0, 1), Node(1, 0), Node(1, 2), Node(0)),
    (Node(1, 1),),
    (Node(0, 0), Node(0, 2), Node(1)),
]


@pytest.mark.parametrize("value", ["mean", "resample", "zero"])
@pytest.mark.parametrize("positions", [None, ("S2", "END")], ids=["all-pos", "named-pos"])
@pytest.mark.parametrize("circuit", CIRCUITS, ids=["mixed", "one-head", "heads+mlp"])
def test_node_ablation_matches_hand_written_hooks(bridge, task, value, positions, circuit):  # type: ignore[no-untyped-def]
    state = prepare(bridge, task, AblationSpec(value=value, positions=positions))
    ours = run_nodes(state, circuit)
    ref = _ref_nodes(bridge, task, set(circuit), value, positions)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 0.05  # the ablation really did something


# ------------------------------------------------------------------ edges


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _slow_edges(w: Gpt2Weights, tokens, answer_pos, kept: set[Edge], abl: dict):  # type: ignore[no-untyped-def]
    """Rebuild every receiver's input from scratch as a sum of sender outputs (kept edge:
    the sender's actual output in this run; removed edge: its ablated output) plus the
    attention biases, with explicit masked-softmax attention, one head at a time."""
    out: dict[str, torch.Tensor] = {"embed": w.W_E[tokens] + w.W_pos[: tokens.shape[1]]}
    order = sender_names(w)
    seq = tokens.shape[1]
    causal = torch.ones(seq, seq).tril().bool()

    def gather(receiver: str, inp: str, senders: list[str], n_bias: int) -> torch.Tensor:
        x = sum(w.b_O[L] for L in range(n_bias))
        for s in senders:
            x = x + (out[s] if Edge(s, receiver, inp) in kept else abl[s])  # type: ignore[arg-type]
        return x

    for L in range(w.n_layers):
        before = list(order[: 1 + L * (w.n_heads + 1)])
        for h in range(w.n_heads):
            name = f"{L}.{h}"
            qkv = []
            for i, inp in enumerate("qkv"):
                x = _ln(gather(name, inp, before, L), w.ln1_w[L], w.ln1_b[L], w.eps)
                W_h, b_h = w.qkv_per_head(L)
                qkv.append(x @ W_h[i, h] + b_h[i, h])
            scores = qkv[0] @ qkv[1].transpose(-1, -2) / w.d_head**0.5
            pattern = torch.softmax(scores.masked_fill(~causal, float("-inf")), -1)
            out[name] = (pattern @ qkv[2]) @ w.W_O[L][h]
        heads = [f"{L}.{h}" for h in range(w.n_heads)]
        x = _ln(gather(f"mlp{L}", "mlp", before + heads, L + 1), w.ln2_w[L], w.ln2_b[L], w.eps)
        hidden = F.gelu(x @ w.W_in[L] + w.b_in[L], approximate="tanh")
        out[f"mlp{L}"] = hidden @ w.W_out[L] + w.b_out[L]
    final = gather(LOGITS, "resid", list(order), w.n_layers)
    final = final.expand(tokens.shape[0], seq, w.d_model)[torch.arange(tokens.shape[0]), answer_pos]
    return _ln(final, w.lnf_w, w.lnf_b, w.eps) @ w.W_U + w.b_U


def _logit_diff(logits, task):  # type: ignore[no-untyped-def]
    rows = torch.arange(N)
    return (logits[rows, task.correct] - logits[rows, task.incorrect]).double().numpy()


def _abl_outputs(state):  # type: ignore[no-untyped-def]
    w, v = state.weights, state.values
    abl = {"embed": state.embed_values}
    for L in range(w.n_layers):
        for h in range(w.n_heads):
            abl[f"{L}.{h}"] = v.z[L][..., h, :] @ w.W_O[L][h]
        abl[f"mlp{L}"] = v.mlp[L]
    return abl


@pytest.mark.parametrize("value", ["mean", "resample", "zero"])
@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_edge_path_matches_explicit_reconstruction(bridge, task, value, share):  # type: ignore[no-untyped-def]
    state = prepare(bridge, task, AblationSpec(granularity="edge", value=value))
    graph = state.graph
    rng = np.random.default_rng(int(share * 10))
    keep = rng.random(graph.n_edges) < share
    ours = run_edges(state, keep)
    kept = {e for e, k in zip(graph.edges, keep, strict=True) if k}
    with torch.no_grad():
        ref = _slow_edges(state.weights, state.clean, state.answer_pos, kept, _abl_outputs(state))
    np.testing.assert_allclose(ours, _logit_diff(ref, task), atol=1e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 0.05


RECEIVERS = [("1.2", "q"), ("1.0", "k"), ("1.1", "v"), ("mlp1", "mlp"), (LOGITS, "resid")]


@pytest.mark.parametrize(("receiver", "inp"), RECEIVERS, ids=[r[1] for r in RECEIVERS])
@pytest.mark.parametrize("sender", ["embed", "0.1", "mlp0"])
def test_one_removed_edge_matches_two_pass_path_patching(bridge, task, receiver, inp, sender):  # type: ignore[no-untyped-def]
    """Classic path patching with bridge hooks: pass 1 records the clean run; pass 2 gives
    only the receiver's input the sender's ablated output in place of its actual one."""
    state = prepare(bridge, task, AblationSpec(granularity="edge"))
    w = state.weights
    edge = Edge(sender, receiver, inp)  # type: ignore[arg-type]
    keep = ~edge_mask(state, [edge])
    ours = run_edges(state, keep)

    clean = torch.tensor(task.clean)
    sender_hook = {
        "embed": "hook_embed", "0.1": "blocks.0.attn.hook_z", "mlp0": "blocks.0.hook_mlp_out",
    }[sender]  # fmt: skip
    names = {sender_hook, "hook_pos_embed", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"}
    names.add("ln_final.hook_in")
    with torch.no_grad():
        _, cache = bridge.run_with_cache(clean, names_filter=lambda n: n in names)
    abl = _abl_outputs(state)[sender]
    if sender == "embed":
        actual = cache["hook_embed"] + cache["hook_pos_embed"]
    elif sender == "0.1":
        actual = cache[sender_hook][:, :, 1] @ w.W_O[0][1]
    else:
        actual = cache[sender_hook]
    delta = abl - actual
    if inp in "qkv":
        head = int(receiver.split(".")[1])
        x = _ln(cache["blocks.1.hook_resid_pre"] + delta, w.ln1_w[1], w.ln1_b[1], w.eps)
        i = "qkv".index(inp)
        W_h, b_h = w.qkv_per_head(1)
        patched = x @ W_h[i, head] + b_h[i, head]

        def hook(t, hook):  # type: ignore[no-untyped-def]
            t = t.clone()
            t[:, :, head] = patched
            return t

        hooks = [(f"blocks.1.attn.{inp}.hook_out", hook)]
    elif inp == "mlp":
        hooks = [("blocks.1.ln2.hook_in", lambda t, hook: t + delta)]
    else:
        hooks = [("ln_final.hook_in", lambda t, hook: t + delta)]
    with torch.no_grad():
        logits = bridge.run_with_hooks(clean, fwd_hooks=hooks)
    ref = _logit_diff(logits[torch.arange(N), torch.tensor(task.answer_pos)], task)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 1e-3


def test_removing_every_edge_out_of_a_node_is_node_ablation(bridge, task):  # type: ignore[no-untyped-def]
    edge_state = prepare(bridge, task, AblationSpec(granularity="edge"))
    node_state = prepare(bridge, task, AblationSpec())
    for node in (Node(0, 2), Node(0), Node(1, 1)):
        keep = np.array([e.sender != str(node) for e in edge_state.graph.edges])
        others = [v for v in node_state.nodes if v != node]
        np.testing.assert_allclose(
            run_edges(edge_state, keep), run_nodes(node_state, others), atol=1e-5, rtol=0
        )


BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model's weights are not built")
@pytest.mark.parametrize("value", ["mean", "resample"])
def test_node_ablation_on_the_bundled_model_matches_hooks(value):  # type: ignore[no-untyped-def]
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks.build import build_task

    model = load_model("seqcirc-mini")
    spec = TaskSpec(name="numerals", generator="numerals", params=params(prompts=12))
    task = build_task(spec, model.tokenizer, prepend_bos=model.identity.prepend_bos, seed=0)
    circuit = (Node(0, 1), Node(1, 1), Node(2, 0), Node(3, 1), Node(0), Node(2))
    for positions in (None, ("S4", "END")):
        state = prepare(model.bridge, task, AblationSpec(value=value, positions=positions))
        ours = run_nodes(state, circuit)
        ref = _ref_nodes(model.bridge, task, set(circuit), value, positions)
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
        assert np.abs(ours - state.m_model).max() > 0.5
