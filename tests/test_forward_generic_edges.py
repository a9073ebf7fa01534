"""The generic engine's edge graph and edge forward where the fast engine has none, against
references written with plain PyTorch hooks on a fresh, unwrapped Hugging Face copy of
the model (one removed edge at a time, two passes: the sender's output recorded, then the
receiver's input moved by ablated - actual):

- a tiny GPT-NeoX (parallel attention and MLP, partial rotary): an MLP receives nothing
  from its own layer's heads; MLP and logits receivers;
- the tiny Llama (grouped-query attention): q receivers per query head, k and v
  receivers per kv head, named by any query head of the group;
- the coded refusals (E307 post-norms, E308 no per-head inputs), the engine choice, float
  keep weights (differentiable, per row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from seqcirc.engine.edges import edge_mask, run_edge_circuits, run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import EvalState, node_mask, run_circuits
from seqcirc.errors import EvaluationError, InputError
from seqcirc.forward import hooked_edges as he
from seqcirc.forward import hooked_graph as hg
from seqcirc.forward.select import select
from seqcirc.plan import AblationSpec, Edge, Node
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, tiny_llama

VOCAB, N, SEQ = 40, 5, 7
EDGES = AblationSpec(granularity="edge")


def _task() -> TokenizedTask:
    rng = np.random.default_rng(4)
    return TokenizedTask(
        name="random", clean=rng.integers(0, VOCAB, (N, SEQ)),
        corrupted=rng.integers(0, VOCAB, (N, SEQ)), correct=rng.integers(0, VOCAB, N),
        incorrect=rng.integers(0, VOCAB, N), positions={"END": np.array([6, 6, 5, 6, 4])},
    )  # fmt: skip


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Large random weights, so every ablation moves the logits visibly."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.3)
    return model.eval()


def tiny_neox() -> GPTNeoXForCausalLM:
    cfg = GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, rotary_pct=0.5, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    return _randomized(GPTNeoXForCausalLM(cfg))  # type: ignore[return-value]


def _bridge(hf: Any, arch: str) -> Any:
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    return build_bridge_from_module(hf, arch, hf_config=hf.config)


@pytest.fixture(scope="module")
def neox():  # type: ignore[no-untyped-def]
    return _bridge(tiny_neox(), "GPTNeoXForCausalLM")


# ------------------------------------------------------------------ references


def _capture(model: Any, tokens: torch.Tensor, points: dict[str, tuple[Any, str]]) -> dict:
    """Run the plain model once, recording each point: (module, "in" | "out")."""
    got: dict[str, torch.Tensor] = {}
    handles = []
    for name, (module, where) in points.items():
        if where == "in":

            def pre(mod, args, kwargs, name=name):  # type: ignore[no-untyped-def]
                got[name] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        else:

            def post(mod, args, out, name=name):  # type: ignore[no-untyped-def]
                got[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()

            handles.append(module.register_forward_hook(post))
    with torch.no_grad():
        model(tokens)
    for h in handles:
        h.remove()
    return got


def _logit_diff(model: Any, tokens: torch.Tensor, task: TokenizedTask,
                hooks: list[tuple[Any, str, Callable]]) -> np.ndarray:  # fmt: skip
    handles = []
    for module, kind, fn in hooks:
        if kind == "pre":
            handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        else:
            handles.append(module.register_forward_hook(fn))
    with torch.no_grad():
        logits = model(tokens).logits
    for h in handles:
        h.remove()
    rows = torch.arange(N)
    at = logits[rows, torch.tensor(task.answer_pos)]
    return (at[rows, task.correct] - at[rows, task.incorrect]).double().numpy()


def _add_to_input(delta: torch.Tensor) -> Callable:
    def pre(mod, args, kwargs):  # type: ignore[no-untyped-def]
        if args:
            return (args[0] + delta, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + delta}

    return pre


def _head_out(z: torch.Tensor, W: torch.Tensor, h: int, dh: int) -> torch.Tensor:
    """Head h's term of an output projection with weight W [d, H * dh] (nn.Linear)."""
    return z[..., h * dh : (h + 1) * dh] @ W[:, h * dh : (h + 1) * dh].T


# ------------------------------------------------------------------ GPT-NeoX


def test_parallel_blocks_mlp_reads_no_edge_from_its_own_heads(neox) -> None:  # type: ignore[no-untyped-def]
    state = prepare(neox, _task(), EDGES)
    assert state.engine == "generic"
    graph = state.graph
    n_h = 4
    # q, k, v of 4 heads from 1 + L * 5 senders, the MLP from 1 + L * 5, the logits from 11
    assert graph.n_edges == sum(3 * n_h * (1 + 5 * L) + (1 + 5 * L) for L in range(2)) + 11
    assert Edge("0.1", "mlp1", "mlp") in graph.index and Edge("mlp0", "mlp1", "mlp") in graph.index
    with pytest.raises(EvaluationError) as info:
        edge_mask(state, [Edge("0.1", "mlp0", "mlp")])
    assert info.value.code == "E303" and "parallel" in (info.value.hint or "")


@pytest.mark.parametrize("sender", ["embed", "0.1", "mlp0"])
@pytest.mark.parametrize("receiver", ["mlp1", "logits"])
def test_neox_one_removed_edge_matches_plain_pytorch_hooks(neox, sender, receiver) -> None:  # type: ignore[no-untyped-def]
    task = _task()
    state = prepare(neox, task, EDGES)
    inp = "mlp" if receiver == "mlp1" else "resid"
    ours = run_edges(state, ~edge_mask(state, [Edge(sender, receiver, inp)]))  # type: ignore[arg-type]

    plain = tiny_neox()  # the same weights, never wrapped by a bridge
    layers = plain.gpt_neox.layers
    points = {"embed": (plain.gpt_neox.embed_in, "out"), "z": (layers[0].attention.dense, "in"),
              "mlp0": (layers[0].mlp, "out")}  # fmt: skip
    clean = _capture(plain, torch.tensor(task.clean), points)
    corrupted = _capture(plain, torch.tensor(task.corrupted), points)
    W, dh = layers[0].attention.dense.weight, 8
    if sender == "embed":
        actual, ablated = clean["embed"], corrupted["embed"].mean(0)
    elif sender == "mlp0":
        actual, ablated = clean["mlp0"], corrupted["mlp0"].mean(0)
    else:
        actual = _head_out(clean["z"], W, 1, dh)
        ablated = _head_out(corrupted["z"].mean(0), W, 1, dh)
    target = plain.gpt_neox.final_layer_norm
    if receiver == "mlp1":
        target = layers[1].post_attention_layernorm
    ref = _logit_diff(plain, torch.tensor(task.clean), task,
                      [(target, "pre", _add_to_input(ablated - actual))])  # fmt: skip
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 1e-3


def test_removing_every_edge_out_of_a_node_is_node_ablation(neox) -> None:  # type: ignore[no-untyped-def]
    task = _task()
    for value in ("mean", "resample"):
        edge_state = prepare(neox, task, AblationSpec(granularity="edge", value=value))
        node_state = prepare(neox, task, AblationSpec(value=value))
        for node in (Node(0, 2), Node(0), Node(1, 3)):
            keep = np.array([e.sender != str(node) for e in edge_state.graph.edges])
            others = node_mask(node_state, [v for v in node_state.nodes if v != node])
            np.testing.assert_allclose(
                run_edges(edge_state, keep), run_circuits(node_state, others[None])[0],
                atol=1e-5, rtol=0,
            )  # fmt: skip


def test_neox_node_ablation_matches_hand_written_hooks(neox) -> None:  # type: ignore[no-untyped-def]
    from tests.test_forward_reference import _ref_nodes

    task = _task()
    circuit = (Node(0, 1), Node(1, 0), Node(1, 2), Node(0))
    for value in ("mean", "resample", "zero"):
        state = prepare(neox, task, AblationSpec(value=value))
        ours = run_circuits(state, node_mask(state, circuit)[None])[0]
        ref = _ref_nodes(neox, task, set(circuit), value, None)
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
        assert np.abs(ours - state.m_model).max() > 0.05


# ------------------------------------------------------------------ grouped-query attention


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return bridge_of_llama(tiny_llama(VOCAB))


def test_kv_receivers_are_kv_heads_named_by_any_query_head_of_the_group(llama) -> None:  # type: ignore[no-untyped-def]
    state = prepare(llama, _task(), EDGES)
    graph = state.graph  # 4 query heads, 2 kv heads, 3 layers
    assert graph.n_edges == sum((4 + 2 + 2) * (1 + 5 * L) + 1 + 5 * L + 4 for L in range(3)) + 16
    for inp in ("k", "v"):
        one, two = (graph.index[Edge("embed", f"1.{h}", inp)] for h in (0, 1))  # type: ignore[arg-type]
        assert one == two and graph.edges[one] == Edge("embed", "1.0", inp)  # type: ignore[arg-type]
        assert graph.index[Edge("embed", "1.2", inp)] != one  # type: ignore[arg-type]
    assert graph.index[Edge("embed", "1.0", "q")] != graph.index[Edge("embed", "1.1", "q")]


@pytest.mark.parametrize(("inp", "head"), [("q", 2), ("k", 3), ("v", 0)])
@pytest.mark.parametrize("sender", ["embed", "0.1"])
def test_llama_one_removed_qkv_edge_matches_plain_pytorch_hooks(llama, inp, head, sender) -> None:  # type: ignore[no-untyped-def]
    """Layer 1's q/k/v projection recomputed for one head from (residual + ablated -
    actual) through input_layernorm, on a fresh copy of the model."""
    task = _task()
    state = prepare(llama, task, EDGES)
    ours = run_edges(state, ~edge_mask(state, [Edge(sender, f"1.{head}", inp)]))

    plain = tiny_llama(VOCAB)
    layer0, layer1 = plain.model.layers[0], plain.model.layers[1]
    points = {"embed": (plain.model.embed_tokens, "out"), "z": (layer0.self_attn.o_proj, "in"),
              "resid1": (layer1, "in")}  # fmt: skip
    clean = _capture(plain, torch.tensor(task.clean), points)
    corrupted = _capture(plain, torch.tensor(task.corrupted), points)
    W, dh = layer0.self_attn.o_proj.weight, 16
    if sender == "embed":
        delta = corrupted["embed"].mean(0) - clean["embed"]
    else:
        delta = _head_out(corrupted["z"].mean(0), W, 1, dh) - _head_out(clean["z"], W, 1, dh)
    proj = getattr(layer1.self_attn, f"{inp}_proj")
    col = head if inp == "q" else head // 2  # query head h reads kv head h // 2
    with torch.no_grad():
        moved = proj(layer1.input_layernorm(clean["resid1"] + delta))

    def swap(mod, args, out):  # type: ignore[no-untyped-def]
        out = out.clone()
        out[..., col * dh : (col + 1) * dh] = moved[..., col * dh : (col + 1) * dh]
        return out

    ref = _logit_diff(plain, torch.tensor(task.clean), task, [(proj, "post", swap)])
    # this Llama's logits reach ~30: 1e-6 of them is float32 rounding (eager attention
    # here, SDPA in Hugging Face's); a wrong receiver or head is off by O(0.1)
    np.testing.assert_allclose(ours, ref, atol=3e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 1e-3


def _edge_logits(state: EvalState, keep: torch.Tensor) -> torch.Tensor:
    w = state.weights
    removed = hg.removed_weights(state.graph, keep, w.dtype)
    with torch.inference_mode():
        return he.forward_edges(w, state.clean, state.answer_pos, removed, state.edge_values)  # type: ignore[arg-type]


def test_receivers_are_rebuilt_from_their_senders_not_moved(llama) -> None:  # type: ignore[no-untyped-def]
    """Zero-ablated, with every edge into layer 0 kept and none after: layer 0's heads and
    MLP write into the stream, but every later receiver keeps nothing, so its input is
    exactly 0 (Llama has no attention bias), the RMSNorms give 0 and so do the logits (no
    lm_head bias), to the bit. Moving the input instead (x - Σ removed senders' outputs)
    leaves rounding noise there, which RMSNorm scales by 1 / sqrt(eps). Keeping one more
    edge, embed -> logits, the final norm reads exactly the embeddings."""
    state = prepare(llama, _task(), AblationSpec(granularity="edge", value="zero"))
    graph = state.graph
    layer0 = {"mlp0", *(f"0.{h}" for h in range(4))}
    keep = torch.tensor([e.receiver in layer0 for e in graph.edges])
    logits = _edge_logits(state, keep)
    assert torch.equal(logits, torch.zeros_like(logits))
    keep[graph.index[Edge("embed", "logits", "resid")]] = True
    rows = torch.arange(N)
    embed = llama.original_model.get_input_embeddings()(state.clean)[rows, state.answer_pos]
    with torch.inference_mode():
        want = state.weights.unembed(embed)  # type: ignore[attr-defined]
    np.testing.assert_allclose(_edge_logits(state, keep).numpy(), want.numpy(), atol=1e-6, rtol=0)
    assert float(want.abs().max()) > 1.0


def test_nothing_removed_is_the_clean_run_to_the_bit(llama) -> None:  # type: ignore[no-untyped-def]
    state = prepare(llama, _task(), EDGES)
    logits = _edge_logits(state, torch.ones(state.graph.n_edges, dtype=torch.bool))
    with torch.inference_mode():
        assert torch.equal(logits, state.weights.logits_at(state.clean, state.answer_pos))  # type: ignore[attr-defined]


# ------------------------------------------------------------------ keep weights


def _edge_metric(state: EvalState, keep: torch.Tensor) -> torch.Tensor:
    """logit_diff [B] of the edge forward with float keep weights (autograd on)."""
    w = state.weights
    removed = hg.removed_weights(state.graph, keep, w.dtype)
    logits = he.forward_edges(w, state.clean, state.answer_pos, removed, state.edge_values)  # type: ignore[arg-type]
    rows = torch.arange(state.n_prompts)
    return logits[rows, state.correct] - logits[rows, state.incorrect]


def test_float_keep_weights_interpolate_differentiably(llama) -> None:  # type: ignore[no-untyped-def]
    state = prepare(llama, _task(), EDGES)
    n_edges = state.graph.n_edges
    keep_bool = np.random.default_rng(1).random(n_edges) < 0.5
    on = torch.tensor(keep_bool, dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(_edge_metric(state, on).double().numpy(),
                                   run_edges(state, keep_bool), atol=1e-5, rtol=0)  # fmt: skip
    weights = torch.full((n_edges,), 0.5, requires_grad=True)
    total = _edge_metric(state, weights).sum()
    total.backward()
    assert weights.grad is not None and torch.isfinite(weights.grad).all()
    for i in (int(state.graph.index[Edge("embed", "logits", "resid")]),
              int(state.graph.index[Edge("0.1", "1.2", "q")])):  # fmt: skip
        step = torch.zeros(n_edges)
        step[i] = 1e-2
        with torch.no_grad():
            up = _edge_metric(state, weights.detach() + step).sum()
            down = _edge_metric(state, weights.detach() - step).sum()
        assert float(weights.grad[i]) == pytest.approx(float(up - down) / 2e-2, rel=2e-2, abs=1e-3)
        assert abs(float(weights.grad[i])) > 1e-3


def test_one_keep_row_per_batch_row(llama) -> None:  # type: ignore[no-untyped-def]
    state = prepare(llama, _task(), EDGES)
    keeps = np.random.default_rng(2).random((2, state.graph.n_edges)) < 0.5
    per_row = torch.tensor(np.repeat(keeps, N, axis=0)[: N * 2])  # circuit 0, then circuit 1
    w = state.weights
    tokens, pos = state.clean.repeat(2, 1), state.answer_pos.repeat(2)
    values = state.edge_values
    with torch.no_grad():
        removed = hg.removed_weights(state.graph, per_row, w.dtype)
        logits = he.forward_edges(w, tokens, pos, removed, values)  # type: ignore[arg-type]
    rows = torch.arange(2 * N)
    got = (logits[rows, state.correct.repeat(2)] - logits[rows, state.incorrect.repeat(2)]).numpy()
    want = np.concatenate([run_edges(state, k) for k in keeps])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    state.edge_rows = 3  # chunks that split circuits and prompts: the runner's batching
    np.testing.assert_allclose(run_edge_circuits(state, keeps).reshape(-1), want, atol=1e-5)
    resample = prepare(llama, _task(), AblationSpec(granularity="edge", value="resample"))
    resample.edge_rows = 4
    each = np.stack([run_edges(resample, k) for k in keeps])
    np.testing.assert_allclose(run_edge_circuits(resample, keeps), each, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ refusals and choice


def _tiny(arch: str, **cfg: Any) -> Any:
    import transformers

    config = getattr(transformers, arch.replace("ForCausalLM", "Config"))(**cfg)
    torch.manual_seed(0)
    return _bridge(_randomized(getattr(transformers, arch)(config)), arch)


def test_post_norm_edges_are_e307_and_no_split_inputs_e308() -> None:
    task = _task()
    gemma = _tiny("Gemma2ForCausalLM", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    assert prepare(gemma, task, AblationSpec()).engine == "generic"  # node circuits run
    with pytest.raises(EvaluationError) as info:
        prepare(gemma, task, EDGES)
    assert info.value.code == "E307" and "Gemma2ForCausalLM" in info.value.message
    gptj = _tiny("GPTJForCausalLM", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                 rotary_dim=4, n_positions=32)  # fmt: skip
    with pytest.raises(EvaluationError) as info:
        prepare(gptj, task, EDGES)
    assert info.value.code == "E308" and "GPTJForCausalLM" in info.value.message


def test_the_engine_is_chosen_in_one_place(neox, llama) -> None:  # type: ignore[no-untyped-def]
    from seqcirc.forward.hooked import HookedModel
    from seqcirc.forward.llama import LlamaWeights

    assert isinstance(select(llama, "auto"), LlamaWeights)
    assert isinstance(select(llama, "auto", edges=True), HookedModel)
    assert isinstance(select(llama, "generic"), HookedModel)
    assert isinstance(select(neox, "auto"), HookedModel)
    with pytest.raises(EvaluationError) as info:
        select(neox, "fast")
    assert info.value.code == "E302" and "GPTNeoXForCausalLM" in info.value.message
    assert "--engine generic" in (info.value.hint or "")
    with pytest.raises(InputError) as bad:
        select(neox, "fastest")
    assert bad.value.code == "E402"
