"""The generic edge forward's shortcuts (seqcirc.forward.hooked_edges) against the formula
they stand for, written out here: every receiver's input rebuilt, sender by sender in
float64, as Σ_j keep_rj · actual_j + (1 - keep_rj) · ablated_j plus the attention biases
before it, every actual output recorded from the bridge's hooks.

The shortcuts: senders no receiver keeps (dead) are not recorded, and the inputs of
their own receivers (a dead head's q, a kv group's k and v when all its heads are dead,
a dead MLP's input) are left as they are; one product gives a layer's q/k/v kept shares;
receivers keeping few of their senders read only those; the chunks' final residuals are
unembedded once. The tiny Llama: grouped-query attention, RMSNorm, no biases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.engine.edges import run_edge_circuits, run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import EvalState
from seqcirc.forward import hooked_edges as he
from seqcirc.forward import hooked_graph as hg
from seqcirc.forward.hooked import FINAL, RESID_START
from seqcirc.plan import AblationSpec
from tests.llama_tiny import bridge_of_llama, tiny_llama
from tests.tasks_fixtures import random_task

VOCAB, N, SEQ = 40, 5, 7
DEAD = ("0.1", "1.0", "1.1", "1.2", "mlp0")  # layer 1's kv group 0 all dead, group 1 half


@pytest.fixture(scope="module")
def state() -> EvalState:
    task = random_task(4, VOCAB, SEQ, END=[6, 6, 5, 6, 4])
    return prepare(bridge_of_llama(tiny_llama(VOCAB)), task, AblationSpec(granularity="edge"))


def _keep(state: EvalState, seed: int, dead: tuple[str, ...] = DEAD) -> np.ndarray:
    """A random 15% of the edges, none out of the `dead` senders."""
    edges = state.graph.edges
    keep = np.random.default_rng(seed).random(len(edges)) < 0.15
    return keep & np.array([e.sender not in dead for e in edges])


def _reference(state: EvalState, keep: np.ndarray) -> np.ndarray:
    """logit_diff [N] with every receiver's input rebuilt from the formula."""
    m: Any = state.weights
    layout = hg.require_edges(m)
    removed = hg.removed_weights(state.graph, torch.as_tensor(keep), torch.float64)
    vals: he.SenderValues = state.edge_values  # type: ignore[assignment]
    ablated = [vals.embed[:, :, 0]]
    for layer in range(m.n_layers):
        ablated += [vals.heads[layer][:, :, h] for h in range(m.n_heads)]
        ablated.append(vals.mlp[layer][:, :, 0])
    actual: list[torch.Tensor] = []
    H, kv, per = m.n_heads, m.n_kv_heads, m.n_heads + 2 * m.n_kv_heads + 1

    def rebuilt(row: int, n: int, biases: int) -> torch.Tensor:
        total = sum(
            (1 - removed[row, j]) * actual[j].double() + removed[row, j] * ablated[j].double()
            for j in range(n)
        )
        for b in layout.b_O[:biases]:
            total = total + (0 if b is None else b.double())
        return total  # type: ignore[return-value]

    def record(x: torch.Tensor) -> None:
        actual.append(x)

    def heads(z: torch.Tensor) -> None:  # [B, S, H, d] (hook_result) or z
        layer = len(actual) // (H + 1)
        z = z.unflatten(-1, (H, -1)) if z.dim() == 3 else z
        out = z if layout.attn_result else torch.einsum("bshe,hed->bshd", z, layout.W_O[layer])
        actual.extend(out[:, :, h] for h in range(H))

    def qkv(layer: int, a: int, b: int) -> Any:
        return lambda x: torch.stack(
            [rebuilt(layer * per + r, 1 + layer * (H + 1), layer) for r in range(a, b)], 2
        ).to(x)

    hooks: list[tuple[str, Any]] = [(RESID_START, record)]
    for L in range(m.n_layers):
        attn = f"blocks.{L}.attn"
        hooks += [(f"{attn}.hook_q_input", qkv(L, 0, H)),
                  (f"{attn}.hook_k_input", qkv(L, H, H + kv)),
                  (f"{attn}.hook_v_input", qkv(L, H + kv, H + 2 * kv)),
                  (f"{attn}.hook_result" if layout.attn_result else f"{attn}.hook_z", heads),
                  (f"blocks.{L}.hook_mlp_in",
                   lambda x, L=L: rebuilt(L * per + per - 1, (L + 1) * (H + 1), L + 1).to(x)),
                  (f"blocks.{L}.hook_mlp_out", record)]  # fmt: skip
    n_senders = 1 + m.n_layers * (H + 1)
    hooks.append((FINAL, lambda x: rebuilt(removed.shape[0] - 1, n_senders, m.n_layers).to(x)))
    with torch.inference_mode(), hg.split_inputs(m.bridge, layout.attn_result), m.hooks(hooks):
        logits = m.logits_at(state.clean, state.answer_pos)
    rows = torch.arange(N)
    return (logits[rows, state.correct] - logits[rows, state.incorrect]).double().numpy()


def test_the_shortcuts_are_the_formula(state) -> None:  # type: ignore[no-untyped-def]
    for seed in (0, 1):
        keep = _keep(state, seed)
        np.testing.assert_allclose(run_edges(state, keep), _reference(state, keep),
                                   atol=2e-5, rtol=0)  # fmt: skip
    keep = _keep(state, 2, dead=())  # every sender alive
    np.testing.assert_allclose(run_edges(state, keep), _reference(state, keep), atol=2e-5)


def test_dead_senders_and_their_receivers_are_skipped(state) -> None:  # type: ignore[no-untyped-def]
    m: Any = state.weights
    keep = _keep(state, 0)
    removed = hg.removed_weights(state.graph, torch.as_tensor(keep), m.dtype)
    run = he._EdgePass(m, hg.require_edges(m), removed, state.edge_values)  # type: ignore[arg-type]
    senders = ["embed"] + [
        s for L in range(3) for s in [*(f"{L}.{h}" for h in range(4)), f"mlp{L}"]
    ]
    alive = {e.sender for e, k in zip(state.graph.edges, keep, strict=True) if k}
    assert not alive & set(DEAD)
    assert run.outputs.live == [s in alive for s in senders]
    # a receiver is rebuilt where an edge into it is removed and the head(s) it feeds live
    feeds = {}
    for L in range(3):
        for h in range(4):
            feeds[hg.receiver_row(m, L, "q", h)] = {f"{L}.{h}"}
            for inp in ("k", "v"):  # query heads 2g and 2g + 1 read kv head g
                feeds.setdefault(hg.receiver_row(m, L, inp, h), set()).add(f"{L}.{h}")
        feeds[hg.receiver_row(m, L, "mlp", None)] = {f"mlp{L}"}
    some_removed = (removed != 0).any(-1)
    want = [bool(some_removed[r]) and (r not in feeds or bool(feeds[r] & alive))
            for r in range(removed.shape[0])]  # fmt: skip
    assert run.changed.tolist() == want
    assert not run.changed[[hg.receiver_row(m, 1, "k", 0), hg.receiver_row(m, 1, "q", 0)]].any()
    # the logits keep few of their senders: those alone are read
    assert int((removed[-1] == 0).sum()) <= run.outputs.slot[-1] // he.SPARSE


def test_per_row_removal_and_float_weights_are_the_formula(state) -> None:  # type: ignore[no-untyped-def]
    keeps = np.stack([_keep(state, 3), _keep(state, 4, dead=("0.0", "2.3", "mlp1"))])
    want = np.stack([_reference(state, k) for k in keeps])
    state.edge_rows = 3  # chunks that split circuits and prompts
    np.testing.assert_allclose(run_edge_circuits(state, keeps), want, atol=2e-5, rtol=0)
    m: Any = state.weights
    keep = torch.as_tensor(keeps[0], dtype=torch.float32)  # float weights, autograd on:
    removed = hg.removed_weights(state.graph, keep.requires_grad_(), m.dtype)  # no shortcut
    logits = he.forward_edges(m, state.clean, state.answer_pos, removed, state.edge_values)  # type: ignore[arg-type]
    rows = torch.arange(N)
    got = (logits[rows, state.correct] - logits[rows, state.incorrect]).detach().double()
    np.testing.assert_allclose(got.numpy(), want[0], atol=2e-5, rtol=0)
