"""Edge circuits against a prepared state (runner.EvalState): which edges a circuit keeps,
the liveness check, and the one-pass patched forward of the state's engine
(seqcirc.forward.select: gpt2_edges.forward_edges or hooked_edges.forward_edges)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from numpy.typing import NDArray

from seqcirc.engine.runner import (
    EvalState,
    answer_columns,
    circuit_chunks,
    row_chunks,
    score_rows,
)
from seqcirc.errors import EvaluationError
from seqcirc.forward.select import (
    Senders,
    edge_logits,
    edge_values_rows,
    forward_edges,
    removed_edges,
)
from seqcirc.plan import Edge

# the sender values of the prompts of a slice, one row per prompt (run_edge_circuits)
ValuesOf = Callable[[slice], Senders]


def edge_mask(state: EvalState, edges: Iterable[Edge]) -> NDArray[np.bool_]:
    """Keep-mask [n_edges] of an edge circuit; an edge the model lacks is an error."""
    graph = state.graph
    mask = np.zeros(graph.n_edges, dtype=bool)
    for e in edges:
        i = graph.index.get(e)
        if i is None:
            raise EvaluationError(
                f"edge {e} does not exist in this model",
                code="E303",
                hint="a sender must come before its receiver (embed, L.H, mlpL -> "
                "L.H[q|k|v], mlpL[mlp], logits[resid]); an MLP receives from heads of its layer "
                "unless the block runs attention and MLP in parallel (GPT-NeoX, Phi-2)",
            )
        mask[i] = True
    return mask


def check_live_edges(state: EvalState, keep: NDArray[np.bool_]) -> None:
    graph = state.graph
    removed_senders = np.unique(graph.cols.numpy()[~keep])
    if removed_senders.size == 0:
        raise EvaluationError("the edge circuit keeps every edge: nothing to measure", code="E305")
    # sender 0 is the embedding; sender 1 + L*(H+1) + h a head, + H the MLP (either engine)
    changes = [state.embed_change]
    n_h, n_heads_total = state.weights.n_heads, state.weights.n_layers * state.weights.n_heads
    for layer in range(state.weights.n_layers):
        changes.extend(state.output_change[layer * n_h : (layer + 1) * n_h])
        changes.append(state.output_change[n_heads_total + layer])
    if not (np.asarray(changes)[removed_senders] > 0).any():
        raise EvaluationError(
            "every removed edge carries a sender whose ablated output equals its actual one",
            code="E305",
            hint="check the corrupted prompts: they must differ from the clean ones",
        )


def run_edges(state: EvalState, keep: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per-prompt metric [n] of one edge circuit (keep-mask [n_edges], edge_mask): one
    patched forward pass per chunk of prompts."""
    w = state.weights
    removed = removed_edges(w, state.graph, torch.as_tensor(keep))
    values = state.edge_values
    n = state.n_prompts
    per_prompt_values = state.ablation.per_prompt_values
    parts = []
    with torch.inference_mode():
        for sl in row_chunks(n, state.edge_rows):  # rows bounded by seqcirc.engine.memory
            idx = torch.arange(sl.start, sl.stop, device=w.device)
            rows, pos = _reads(state, idx)
            vals = edge_values_rows(values, rows) if per_prompt_values else values
            parts.append(forward_edges(w, state.clean[rows], pos, removed, vals,
                                       defer_unembed=True))  # fmt: skip
        prompts = torch.arange(n, device=w.device)
        cols = answer_columns(state, prompts)  # logit_diff: two tokens a prompt
        logits = edge_logits(w, parts, None if cols is None else cols[0])
        out = score_rows(state, logits, prompts, cols)
    state.forward_rows += n * (1 if state.reads is None else state.reads.k)
    return out


def run_edge_circuits(
    state: EvalState,
    keeps: NDArray[np.bool_],
    *,
    values: ValuesOf | None = None,
    rows: int | None = None,
) -> NDArray[np.float64]:
    """Per-prompt metric [R, n] of R edge circuits (keep-masks [R, n_edges]), batched:
    rows = circuits x prompts in chunks (seqcirc.engine.runner.circuit_chunks), each row
    with its own removal. `values`: what removed edges carry instead of the state's own,
    per prompt (a block of prompts -> their rows); `rows`: prompts per chunk then (per-prompt
    values take more memory a row: seqcirc.engine.memory.edge_row_bytes)."""
    keeps = np.asarray(keeps, dtype=bool)
    w, n = state.weights, state.n_prompts
    out = np.empty((keeps.shape[0], n))
    with torch.inference_mode():
        chunks = circuit_chunks(keeps.shape[0], n, rows or state.edge_rows)
        for circuits, prompt_blocks in chunks:
            c = circuits.stop - circuits.start
            # [c, receivers, senders], the chunk's circuits only (R of them can be large)
            removed = removed_edges(w, state.graph, torch.as_tensor(keeps[circuits]))
            for sl in prompt_blocks:
                idx = torch.arange(sl.start, sl.stop, device=w.device).repeat(c)
                prompts, pos = _reads(state, idx)
                if values is not None:
                    vals = edge_values_rows(values(sl), prompts - sl.start)
                else:
                    vals = state.edge_values
                    if state.ablation.per_prompt_values:
                        vals = edge_values_rows(vals, prompts)
                per = prompts.shape[0] // c
                removal = removed.repeat_interleave(per, 0)
                logits = forward_edges(w, state.clean[prompts], pos, removal, vals)
                out[circuits, sl] = score_rows(state, logits, idx).reshape(c, -1)
    state.forward_rows += keeps.shape[0] * n * (1 if state.reads is None else state.reads.k)
    return out


def _reads(state: EvalState, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of prompts `idx`, one per read of the metric, and their positions."""
    if state.reads is None:
        return idx, state.answer_pos[idx]
    return state.reads.expand(idx)
