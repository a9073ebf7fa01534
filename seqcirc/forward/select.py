"""Which engine runs a model, chosen here and only here, and the forwards the engine/
stage calls whichever engine holds the model.

- `fast`: the hand-written forwards (seqcirc.forward.gpt2.extract_weights: GPT-2 node
  and edge circuits, Llama node circuits), which read the weights and step layer by layer;
- `generic`: the bridge's own forward through its hook points (seqcirc.forward.hooked,
  hooked_graph, hooked_edges), for every architecture the TransformerBridge loads;
- `auto` (the default): fast where it implements the architecture, its configuration
  and the granularity (nodes or edges), generic otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from seqcirc.errors import EvaluationError, InputError
from seqcirc.forward import gpt2, gpt2_edges
from seqcirc.forward import hooked_edges as he
from seqcirc.forward import hooked_graph as hg
from seqcirc.forward.common import ModelWeights, NodeRun, Replacement, require_edges
from seqcirc.forward.gpt2 import extract_weights
from seqcirc.forward.gpt2_edges import EdgeGraph, EdgeValues
from seqcirc.forward.hooked import HookedModel
from seqcirc.forward.nodes import Sharing
from seqcirc.forward.nodes import forward_nodes as fast_forward_nodes

ENGINES = ("auto", "generic", "fast")
DEFAULT_ENGINE = "auto"

Model = ModelWeights | HookedModel
Senders = EdgeValues | he.SenderValues


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InputError(
            f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}", code="E402"
        )
    return engine


def select(bridge: Any, engine: str = DEFAULT_ENGINE, *, edges: bool = False) -> Model:
    """The model as the chosen engine runs it (see the module docstring). `fast` where
    it cannot run the model (architecture, configuration, edges on Llama) is E302."""
    check_engine(engine)
    if engine == "generic":
        return HookedModel(bridge)
    try:
        w = extract_weights(bridge)
        if edges:
            require_edges(w)
        return w
    except EvaluationError as err:
        if engine == "fast" or err.code != "E302":
            if engine == "fast" and err.code == "E302":
                err.hint = "run it with the generic engine (--engine generic, or auto, the default)"
            raise
    return HookedModel(bridge)


def engine_of(w: Model) -> str:
    return "generic" if isinstance(w, HookedModel) else "fast"


# ---------------------------------------------------------------- node circuits


def forward_nodes(
    w: Model,
    tokens: Tensor,
    answer_pos: Tensor,
    *,
    replace: Tensor | None = None,
    values: Replacement | None = None,
    capture: bool = False,
    logits: bool = True,
    share: Sharing | None = None,
    columns: Tensor | None = None,
    trim_capture: bool = False,
) -> NodeRun:
    """One node forward (seqcirc.forward.nodes.forward_nodes's contract) of either engine;
    the generic engine computes every logit and keeps `columns`, and captures the last
    layer whole (`trim_capture` only saves work: a reader of the answer sees the same)."""
    if isinstance(w, HookedModel):
        run = w.forward_nodes(tokens, answer_pos, replace=replace, values=values,
                              capture=capture, logits=logits, share=share)  # fmt: skip
        if columns is None or run.logits is None:
            return run
        return _with_logits(run, run.logits[:, columns])
    return fast_forward_nodes(w, tokens, answer_pos, replace=replace, values=values,
                              capture=capture, logits=logits, share=share,
                              columns=columns, trim_capture=trim_capture)  # fmt: skip


def _with_logits(run: NodeRun, logits: Tensor) -> NodeRun:
    return NodeRun(logits, run.resid_final, run.z, run.mlp, run.embed)


def empty_logits(w: Model, tokens: Tensor, answer_pos: Tensor, values: Replacement,
                 embed: Tensor | None, clean_embed_answer: Tensor,
                 columns: Tensor | None = None) -> Tensor:  # fmt: skip
    """Answer logits [n, vocab] with every node replaced (of `columns` only: [n, k]);
    `embed`: what replaces the embeddings at every position ([S, d] or [n, S, d]; edge
    circuits), None: each prompt keeps its own (node circuits). The fast engine needs no
    forward for it."""
    if isinstance(w, HookedModel):
        out = w.empty_logits(tokens, answer_pos, values, embed, clean_embed_answer)
        return out if columns is None else out[:, columns]
    at_embed = clean_embed_answer if embed is None else _at(embed, answer_pos, 3)
    at = Replacement(
        tuple(_at(z, answer_pos, 4) for z in values.z),
        tuple(_at(m, answer_pos, 3) for m in values.mlp),
    )
    resid = gpt2.all_replaced_resid(w, at_embed, at)
    return gpt2.unembed(w, resid.expand(tokens.shape[0], -1), columns)


def _at(t: Tensor, answer_pos: Tensor, per_prompt_dims: int) -> Tensor:
    if t.dim() == per_prompt_dims:
        return t[torch.arange(t.shape[0], device=t.device), answer_pos]
    return t[answer_pos]


# ---------------------------------------------------------------- edge circuits


def edge_graph(w: Model) -> EdgeGraph:
    return hg.edge_graph(w) if isinstance(w, HookedModel) else gpt2_edges.edge_graph(w)


def edge_values(w: Model, embed: Tensor, values: Replacement) -> Senders:
    if isinstance(w, HookedModel):
        return he.SenderValues.from_nodes(w, embed, values)
    return EdgeValues.from_nodes(w, embed, values)


def edge_values_rows(values: Senders, index: Tensor) -> Senders:
    """Per-prompt sender values at the given prompts."""
    if isinstance(values, he.SenderValues):
        return values.rows(index)
    return EdgeValues(
        values.embed[index],
        tuple(h[index] for h in values.head_out),
        tuple(m[index] for m in values.mlp),
    )


def removed_edges(w: Model, graph: EdgeGraph, keep: Tensor) -> Tensor:
    """What forward_edges removes: bool keep [n_edges], or one keep row per batch row
    [R, n_edges], for either engine; the generic engine also takes float keep weights."""
    if isinstance(w, HookedModel):
        return hg.removed_weights(graph, keep.to(w.device), w.dtype)
    return gpt2_edges.removed_matrix(graph, keep, w.dtype).to(w.device)


def forward_edges(w: Model, tokens: Tensor, answer_pos: Tensor, removed: Tensor,
                  values: Senders, *, defer_unembed: bool = False) -> Tensor:  # fmt: skip
    """Answer logits [B, vocab] of an edge pass; `defer_unembed`: a part that
    edge_logits turns into them, so that either engine unembeds every chunk's answer
    residuals in one product (the unembedding's weights read once, not once a chunk)."""
    if isinstance(w, HookedModel):
        assert isinstance(values, he.SenderValues)
        final = defer_unembed and he.defers_unembed(w)
        return he.forward_edges(w, tokens, answer_pos, removed, values, final=final)
    assert isinstance(values, EdgeValues)
    return gpt2_edges.forward_edges(
        w, tokens, answer_pos, removed, values, logits=not defer_unembed
    )


def edge_logits(w: Model, parts: list[Tensor], columns: Tensor | None = None) -> Tensor:
    """The answer logits of the chunks whose forward_edges(defer_unembed=True) gave
    `parts` (of `columns` only: [n, k])."""
    if isinstance(w, HookedModel):
        logits = he.unembed_finals(w, parts) if he.defers_unembed(w) else torch.cat(parts)
        return logits if columns is None else logits[:, columns]
    joined = torch.cat(parts)
    return gpt2.unembed(w, joined, columns)


def check_edge_structure(w: Model, tokens: Tensor) -> int:
    """The generic engine's numerical check of its edge definitions (E307 / E308); the
    prompt-rows it ran."""
    if not isinstance(w, HookedModel):
        return 0
    hg.check_structure(w, tokens)
    return min(hg.STRUCTURE_ROWS, tokens.shape[0])


__all__ = [
    "DEFAULT_ENGINE", "ENGINES", "Model", "Senders", "check_edge_structure", "check_engine",
    "edge_graph", "edge_logits", "edge_values", "edge_values_rows", "empty_logits", "engine_of",
    "forward_edges", "forward_nodes", "removed_edges", "select",
]  # fmt: skip
