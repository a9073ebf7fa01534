"""The authors' edge pruning (Lan, Torr & Barez 2024; their `iter_edge_pruning`): every
edge among the found nodes is removed on its own from the node circuit (every other
candidate edge kept, the rest of the model ablated as the node circuit ablates it), and
kept when that removal leaves the circuit below `threshold` of the FULL model's score:

    F(C - e) / F(M) < threshold  ->  e kept

As the authors patched it, the removed edge carries its sender's activation on the PAIRED
corrupted prompt (prompt i's corrupted twin, at every position), not the node circuit's
ablation value (the mean over the corrupted prompts): one captured sweep over the
corrupted prompts gives them, kept for the circuit's senders only (the embeddings and
the found nodes). Every other sender keeps the state's value, so the edges the node
circuit removes are removed as before; a resample (or patching) state's values are
already per prompt and are used as they are.

Each test starts from the same circuit, so the tests are independent: one batched call
of edge circuits (seqcirc.engine.edges.run_edge_circuits, with the paired values), then
one pass for the kept edges together, as the evaluator runs the written file (the
removed edges at the node circuit's ablation value). The iterative pruning of
seqcirc.discovery.prune (`prune_edges`) instead removes edges one after another, each
test against the circuit left by the last, so its circuit keeps more than the threshold
by construction; this one need not: edges that each matter little can matter together
(docs/attribution.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from seqcirc.discovery.prune import EdgeDiscovery, PruneOutcome, PruneStep, StepFn, candidate_edges
from seqcirc.errors import EvaluationError
from seqcirc.plan import Node

if TYPE_CHECKING:
    from seqcirc.engine.edges import ValuesOf
    from seqcirc.engine.runner import EvalState
    from seqcirc.forward.select import Senders


def paper_edges(
    state: EvalState,
    nodes: Sequence[Node],
    *,
    threshold: float,
    on_step: StepFn | None = None,
) -> EdgeDiscovery:
    """The authors' single-edge tests over the edges among `nodes` (see the module
    docstring); each step's score is F(C - e) / F(M), C every candidate edge."""
    from seqcirc.claims.measures import f_model
    from seqcirc.engine.edges import edge_mask, run_edge_circuits, run_edges

    fm = f_model(state)
    cands = candidate_edges(state, nodes)
    base = edge_mask(state, cands)
    idx = np.flatnonzero(base)
    masks = np.repeat(base[None], len(idx) + 1, 0)  # row 0: every candidate edge
    masks[np.arange(1, len(idx) + 1), idx] = False
    paired, rows = paired_values(state, nodes)
    ratios = run_edge_circuits(state, masks, values=paired, rows=rows).mean(axis=1) / fm
    start, single = float(ratios[0]), ratios[1:]
    kept = single < threshold
    steps = tuple(
        PruneStep(0, "backward", i, float(s), removed=not bool(k), memoised=False)
        for i, (s, k) in enumerate(zip(single, kept, strict=True))
    )
    for step in steps if on_step is not None else ():
        on_step(step)  # type: ignore[misc]
    if not kept.any():
        raise EvaluationError(
            f"every edge among the found nodes leaves more than {threshold:g} of the full "
            "model's score when removed alone: the authors' edge pruning keeps none",
            code="E342",
            hint="use the iterative edge pruning (--method prune --edges), which removes "
            "them one after another",
        )
    found = np.zeros_like(base)
    found[idx[kept]] = True
    score = float(run_edges(state, found).mean()) / fm
    outcome = PruneOutcome(kept, score, steps, 1, len(cands) + 1, len(cands) + 1)
    edges = tuple(e for e, k in zip(cands, kept, strict=True) if k)
    return EdgeDiscovery(edges, score, start, len(cands), outcome, method="paper")


def paired_values(state: EvalState, nodes: Sequence[Node]) -> tuple[ValuesOf | None, int]:
    """What a removed edge carries in the single-edge tests, per prompt (a block of
    prompts -> their sender values), and prompts per chunk of the edge pass: the paired
    corrupted activation for the embeddings and `nodes`, the state's value for every other
    sender. (None, the state's rows) where the state's values are per prompt already."""
    from seqcirc.engine.memory import ForwardShape, edge_row_bytes
    from seqcirc.forward.common import Replacement
    from seqcirc.forward.select import edge_values

    if state.ablation.per_prompt_values:
        return None, state.edge_rows
    w = state.weights
    heads = torch.zeros(w.n_layers, w.n_heads, dtype=torch.bool, device=w.device)
    for v in nodes:
        if v.head is not None:
            heads[v.layer, v.head] = True
    mlps = {v.layer for v in nodes if v.head is None}
    embed, z, mlp = _corrupted_acts(state, {i for i in range(w.n_layers) if heads[i].any()}, mlps)

    def values(sl: slice) -> Senders:
        zs = tuple(
            torch.where(heads[i][:, None], z[i][sl], _own(t, sl, 4)) if i in z else _own(t, sl, 4)
            for i, t in enumerate(state.values.z)
        )
        ms = tuple(
            mlp[i][sl] if i in mlp else _own(t, sl, 3) for i, t in enumerate(state.values.mlp)
        )
        return edge_values(w, embed[sl], Replacement(zs, ms))

    if state.values.z[0].dim() == 4:  # per-prompt values already (ragged slot means)
        return values, state.edge_rows
    shape = ForwardShape.of(w, int(state.clean.shape[1]))
    scale = edge_row_bytes(shape) / edge_row_bytes(shape, per_prompt_values=True)
    return values, max(1, int(state.edge_rows * scale))


def _corrupted_acts(
    state: EvalState, head_layers: set[int], mlps: set[int]
) -> tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """One captured sweep over the corrupted prompts: the embeddings [n, S, d], hook_z of
    `head_layers` [n, S, H, dh] and hook_mlp_out of `mlps` [n, S, d], kept whole."""
    from seqcirc.engine.runner import row_chunks
    from seqcirc.forward.select import forward_nodes

    w, n = state.weights, state.n_prompts
    embed: list[torch.Tensor] = []
    z: dict[int, list[torch.Tensor]] = {i: [] for i in head_layers}
    mlp: dict[int, list[torch.Tensor]] = {i: [] for i in mlps}
    with torch.inference_mode():
        for sl in row_chunks(n, state.capture_rows):
            run = forward_nodes(w, state.corrupted[sl], state.answer_pos[sl], capture=True,
                                logits=False)  # fmt: skip
            assert run.embed is not None
            embed.append(run.embed)
            for i in head_layers:
                z[i].append(run.z[i])
            for i in mlps:
                mlp[i].append(run.mlp[i])
    state.forward_rows += n
    cat = torch.cat
    return cat(embed), {i: cat(t) for i, t in z.items()}, {i: cat(t) for i, t in mlp.items()}


def _own(t: torch.Tensor, sl: slice, per_prompt_dims: int) -> torch.Tensor:
    """The state's value `t` of the prompts `sl`, one row each."""
    if t.dim() == per_prompt_dims:
        return t[sl]
    return t.expand(sl.stop - sl.start, *t.shape)


__all__ = ["paired_values", "paper_edges"]
