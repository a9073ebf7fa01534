"""The generic engine in half precision:

- the mean-ablation values of a bfloat16 model are accumulated in float32
  (seqcirc.engine.prepare's sums, fed by the bridge's hook points), checked against
  TransformerLens's own cache of the same bridge averaged in float64 over enough prompts
  that a bfloat16 running sum would be off by many units of its last place;
- zero-ablated edge circuits in bfloat16 stay within a few of its steps of float32 (edge
  receivers' inputs rebuilt from their senders, seqcirc.forward.hooked_edges)."""

from __future__ import annotations

import numpy as np
import torch

from seqcirc.engine.prepare import prepare
from seqcirc.plan import AblationSpec
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, tiny_llama

VOCAB, N, SEQ, ROWS = 40, 160, 4, 8  # 20 chunks of 8 prompts


def _task() -> TokenizedTask:
    rng = np.random.default_rng(0)
    return TokenizedTask(
        name="random", clean=rng.integers(0, VOCAB, (N, SEQ)),
        corrupted=rng.integers(0, VOCAB, (N, SEQ)), correct=rng.integers(0, VOCAB, N),
        incorrect=rng.integers(0, VOCAB, N), positions={"END": np.full(N, SEQ - 1)},
    )  # fmt: skip


def _cached_means(bridge, tokens: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # type: ignore[no-untyped-def]
    """Per-position means [S, ...] in float64 of TransformerLens's cache, chunk by chunk;
    and block 0's MLP-out mean from a running sum in bfloat16, as a bfloat16 model's own
    arithmetic would give it."""
    names = ["blocks.0.hook_resid_pre"]
    for layer in range(bridge.cfg.n_layers):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
    sums: dict[str, torch.Tensor] = {}
    naive = torch.zeros((), dtype=torch.bfloat16)
    with torch.inference_mode():
        for start in range(0, tokens.shape[0], ROWS):
            _, cache = bridge.run_with_cache(tokens[start : start + ROWS], names_filter=names)
            for name in names:
                part = cache[name].double().sum(0)
                sums[name] = sums[name] + part if name in sums else part
            naive = naive + cache["blocks.0.hook_mlp_out"].sum(0)
    n = tokens.shape[0]
    return {name: t / n for name, t in sums.items()}, naive / n


def _ulps(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest difference in units of bfloat16's last place at the exact value (8
    significant bits: 2^(e - 7) for |x| in [2^e, 2^(e+1)); values below 1e-3 as 1e-3)."""
    e = torch.floor(torch.log2(exact.abs().clamp_min(1e-3)))
    return float(((ours.double() - exact).abs() / 2.0 ** (e - 7)).max())


def test_bfloat16_means_are_accumulated_in_float32() -> None:
    bridge = bridge_of_llama(tiny_llama(VOCAB).to(torch.bfloat16))
    task = _task()
    state = prepare(bridge, task, AblationSpec(), engine="generic", batch_rows=ROWS)
    assert state.engine == "generic"
    want, naive = _cached_means(bridge, torch.as_tensor(task.corrupted))
    pairs = [(state.embed_values, want["blocks.0.hook_resid_pre"])]
    for layer in range(bridge.cfg.n_layers):
        z = want[f"blocks.{layer}.attn.hook_z"]
        pairs.append((state.values.z[layer], z.reshape(state.values.z[layer].shape)))
        pairs.append((state.values.mlp[layer], want[f"blocks.{layer}.hook_mlp_out"]))
    for ours, exact in pairs:
        assert ours.dtype == torch.bfloat16
        # a float32 sum, rounded once: the bfloat16 nearest the exact mean (0.5 units), or
        # its neighbour where the chunks' bfloat16 activations round differently (1.5)
        assert _ulps(ours, exact) <= 1.5
    # a running sum in bfloat16 is many units off: why the sums are float32
    assert _ulps(naive, want["blocks.0.hook_mlp_out"]) > 8


def test_bfloat16_zero_ablated_edge_circuits_stay_near_float32() -> None:
    """Zero ablation leaves receivers that keep few edges an input near 0, which an
    RMSNorm scales up by 1 / sqrt(eps): rebuilt from the kept senders it is exact there,
    and bfloat16 stays within a few steps of its logits (~0.125 at this Llama's ~30) of
    float32. Moving the input by the removed senders instead (x - Σ removed) cancels
    bfloat16 values of the stream's size there: 6.8 off, more than the metric itself."""
    from seqcirc.engine.edges import run_edges
    from tests.test_forward_generic_edges import _task as edge_task

    spec = AblationSpec(granularity="edge", value="zero")
    states = [
        prepare(bridge_of_llama(tiny_llama(VOCAB).to(dtype)), edge_task(), spec)
        for dtype in (torch.float32, torch.bfloat16)
    ]
    rng = np.random.default_rng(0)
    for share in (0.05, 0.3, 0.9):
        keep = rng.random(states[0].graph.n_edges) < share
        full, half = (run_edges(s, keep) for s in states)
        assert np.abs(half - full).max() <= 0.5
        assert np.abs(full - states[0].m_model).max() > 1.0  # the circuit moves the metric
