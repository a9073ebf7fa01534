"""The generic engine's edge graph on any TransformerBridge: which senders and receivers
the architecture has (docs/language.md, "one meaning per component"), and whether edges
are defined on it at all.

- senders: `embed` (the residual stream at blocks.0.hook_resid_pre), then per layer the
  heads 0..H-1 (z_h @ W_O[h], each head's term of the attention output) and the MLP
  (hook_mlp_out); the attention bias b_O is no sender;
- receivers per layer: the q input of each query head, the k and v inputs of each kv head,
  the MLP's input; then the logits. With grouped-query attention a kv head is shared by
  n_heads / n_kv_heads query heads: `s -> L.h[k]` names the kv head query head h reads,
  the query heads of one group name the same receiver, and the graph lists it under the
  group's first head;
- a block's MLP receives from its own heads, except where attention and MLP run in
  parallel (GPT-NeoX/Pythia, Phi-2): there it reads the residual stream before the block.

Edges from single heads need each head's output to be a term of a residual sum: where
a norm follows the attention output (Gemma 2, OLMo 2) they are refused (E307), as on
models whose bridge cannot give per-head q/k/v inputs before the norm (E308). Both are
checked from the bridge's structure (require_edges) and numerically on the first
prompts (check_structure). The forward that runs the graph is seqcirc.forward.hooked_edges.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.gpt2_edges import EdgeGraph, sender_names
from seqcirc.forward.hooked import HookedModel, _tolerance
from seqcirc.plan import LOGITS, Edge, ReceiverInput

# the attention bridges whose per-head q/k/v inputs TransformerLens can fork before ln1
SPLIT_QKV_BRIDGES = ("JointQKVAttentionBridge", "PositionEmbeddingsAttentionBridge")
STRUCTURE_ROWS = 2  # prompts on which the edge structure is checked numerically


@dataclass(frozen=True, eq=False)
class EdgeLayout:
    """What the edge forward reads about the architecture."""

    parallel: bool  # a block's MLP reads the residual stream before the block
    mlp_input: str  # "mlp_in": hook_mlp_in; "shared_ln1": the MLP reads ln1's output
    attn_result: bool  # the bridge gives each head's output (hook_result, use_attn_result)
    W_O: tuple[Tensor, ...]  # [H, dh, d] per layer
    b_O: tuple[Tensor | None, ...]  # [d] per layer

    def mlp_senders(self, m: HookedModel, layer: int) -> int:
        """How many senders (in sender order) an MLP of `layer` receives from."""
        return 1 + layer * (m.n_heads + 1) + (0 if self.parallel else m.n_heads)


def _post_norm_error(arch: str) -> EvaluationError:
    return EvaluationError(
        f"edge circuits are not defined on {arch}: a norm follows each attention output "
        "(post_attention_layernorm) before it joins the residual stream, so a single head's "
        "output is not a term of a residual sum and an edge from it has no standard meaning",
        code="E307",
        hint="evaluate node circuits on this model (`ablate nodes`, the default)",
    )


def _no_split_error(arch: str, why: str) -> EvaluationError:
    return EvaluationError(
        f"edge circuits need per-head q/k/v inputs, which the TransformerBridge of {arch} "
        f"cannot give: {why}",
        code="E308",
        hint="evaluate node circuits on this model (`ablate nodes`, the default)",
    )


def _mlp_input(m: HookedModel, block: Any, parallel: bool) -> str:
    subs = block.submodules or {}
    if "ln2" in subs or getattr(block, "mlp_reads_resid_directly", False):
        return "mlp_in"
    if parallel and "ln1" in subs:
        return "shared_ln1"
    raise _no_split_error(m.architecture, "no hook point before the MLP's norm")


def require_edges(m: HookedModel) -> EdgeLayout:
    """The edge layout of the model, or E307 / E308 naming the architecture."""
    if isinstance(m.edge_layout, EdgeLayout):
        return m.edge_layout
    arch, blocks = m.architecture, list(m.bridge.blocks)
    if any("ln1_post" in (b.submodules or {}) for b in blocks):
        raise _post_norm_error(arch)
    for b in blocks:
        attn = (b.submodules or {}).get("attn")
        kinds = {c.__name__ for c in type(attn).__mro__} if attn is not None else set()
        if not kinds & set(SPLIT_QKV_BRIDGES) or not getattr(attn, "supports_split_qkv_fork", 0):
            raise _no_split_error(arch, f"its attention ({type(attn).__name__}) has no fork")
        if getattr(getattr(attn, "config", None), "gated_q_proj", False):
            raise _no_split_error(arch, "gated query projections")
    parallel = bool(getattr(m.bridge.cfg, "parallel_attn_mlp", False)) or any(
        type(b).__name__ == "ParallelBlockBridge" for b in blocks
    )
    layout = EdgeLayout(
        parallel=parallel,
        mlp_input=_mlp_input(m, blocks[0], parallel),
        attn_result=all(getattr(b.attn, "supports_attn_result", False) for b in blocks),
        W_O=tuple(b.attn.W_O.detach() for b in blocks),
        b_O=tuple(None if b.attn.b_O is None else b.attn.b_O.detach() for b in blocks),
    )
    m.edge_layout = layout
    return layout


# ---------------------------------------------------------------- the graph


def receiver_row(m: HookedModel, layer: int, inp: str, head: int | None) -> int:
    """Row of a receiver: per layer q of heads, k and v of kv heads, the MLP; then logits."""
    n_h, n_kv = m.n_heads, m.n_kv_heads
    per = n_h + 2 * n_kv + 1
    if inp == "mlp":
        return layer * per + n_h + 2 * n_kv
    h = head or 0
    if inp == "q":
        return layer * per + h
    kv = h // (n_h // n_kv)
    return layer * per + n_h + (0 if inp == "k" else n_kv) + kv


@lru_cache(maxsize=16)
def receiver_senders(
    n_layers: int, n_heads: int, n_kv: int, parallel: bool
) -> tuple[Tensor, Tensor]:
    """Per receiver (receiver_row's order): how many senders come before it [R], and the
    senders whose output its input drives [R, n_heads // n_kv] (a query head, the query
    heads of a kv group, the MLP; -1 for the logits, which always count)."""
    group, per_layer = n_heads // n_kv, n_heads + 1
    before: list[int] = []
    owners: list[list[int]] = []
    for layer in range(n_layers):
        first = 1 + layer * per_layer
        before += [first] * (n_heads + 2 * n_kv) + [first + (0 if parallel else n_heads)]
        owners += [[first + h] * group for h in range(n_heads)]
        kv = [[first + g * group + i for i in range(group)] for g in range(n_kv)]
        owners += kv + kv + [[first + n_heads] * group]
    before.append(1 + n_layers * per_layer)
    owners.append([-1] * group)
    return torch.tensor(before), torch.tensor(owners)


def edge_graph(m: HookedModel) -> EdgeGraph:
    """Every edge of the model in the order of gpt2_edges.edge_graph (the same graph for GPT-2)."""
    layout = require_edges(m)
    senders = sender_names(m)  # type: ignore[arg-type]
    n_h, n_kv = m.n_heads, m.n_kv_heads
    group = n_h // n_kv
    edges: list[Edge] = []
    rows: list[int] = []
    cols: list[int] = []
    index: dict[Edge, int] = {}

    def add(sender: int, receiver: str, inp: ReceiverInput, row: int, alias: range) -> None:
        index.update({Edge(senders[sender], f"{receiver}.{h}", inp): len(edges) for h in alias})
        edges.append(Edge(senders[sender], f"{receiver}.{alias[0]}", inp))
        rows.append(row)
        cols.append(sender)

    qkv: tuple[ReceiverInput, ...] = ("q", "k", "v")
    for layer in range(m.n_layers):
        n_before = 1 + layer * (n_h + 1)
        for inp in qkv:
            heads = range(n_h) if inp == "q" else range(0, n_h, group)
            for h in heads:
                alias = range(h, h + 1) if inp == "q" else range(h, h + group)
                for s in range(n_before):
                    add(s, str(layer), inp, receiver_row(m, layer, inp, h), alias)
        for s in range(layout.mlp_senders(m, layer)):
            edges.append(Edge(senders[s], f"mlp{layer}", "mlp"))
            index[edges[-1]] = len(edges) - 1
            rows.append(receiver_row(m, layer, "mlp", None))
            cols.append(s)
    n_recv = m.n_layers * (n_h + 2 * n_kv + 1) + 1
    for s in range(len(senders)):
        edges.append(Edge(senders[s], LOGITS, "resid"))
        index[edges[-1]] = len(edges) - 1
        rows.append(n_recv - 1)
        cols.append(s)
    return EdgeGraph(
        edges=tuple(edges), index=index, rows=torch.tensor(rows), cols=torch.tensor(cols),
        n_receivers=n_recv, n_senders=len(senders),
    )  # fmt: skip


def removed_weights(graph: EdgeGraph, keep: Tensor, dtype: torch.dtype) -> Tensor:
    """Removal [n_receivers, n_senders] (keep [n_edges]) or per row [B, n_receivers,
    n_senders] (keep [B, n_edges]): 1 - keep where an edge exists (bool keep: 0 or 1), 0
    where none does. Differentiable in a float keep."""
    removed = (~keep).to(dtype) if keep.dtype == torch.bool else (1 - keep).to(dtype)
    out = removed.new_zeros(*keep.shape[:-1], graph.n_receivers, graph.n_senders)
    rows, cols = graph.rows.to(keep.device), graph.cols.to(keep.device)
    if keep.dim() == 1:
        return out.index_put((rows, cols), removed)
    batch = torch.arange(keep.shape[0], device=keep.device)[:, None]
    return out.index_put((batch, rows[None], cols[None]), removed)


@contextmanager
def split_inputs(bridge: Any, attn_result: bool = False) -> Iterator[None]:
    """TransformerLens's per-head q/k/v inputs and hook_mlp_in (and each head's output,
    hook_result, if asked: the output projection then runs per head), on for one forward."""
    cfg = bridge.cfg
    flags = ("use_split_qkv_input", "use_hook_mlp_in", "use_attn_result")
    before = {f: bool(getattr(cfg, f, False)) for f in flags}
    try:
        bridge.set_use_split_qkv_input(True)
        bridge.set_use_hook_mlp_in(True)
        if attn_result:
            bridge.set_use_attn_result(True)
        yield
    finally:
        bridge.set_use_split_qkv_input(before["use_split_qkv_input"])
        bridge.set_use_hook_mlp_in(before["use_hook_mlp_in"])
        if attn_result:
            bridge.set_use_attn_result(before["use_attn_result"])


# ---------------------------------------------------------------- the structure check


def check_structure(m: HookedModel, tokens: Tensor) -> float:
    """With TransformerLens's own cache on a few prompts: every block adds its heads'
    terms (z_h @ W_O[h]), b_O and its MLP output to the residual stream (else E307), the
    per-head q/k/v inputs are the residual stream before the block's norm and the MLP's
    input is the stream it reads (else E308). Returns the largest relative deviation."""
    layout = require_edges(m)
    names = []
    for L in range(m.n_layers):
        names += [f"blocks.{L}.hook_resid_pre", f"blocks.{L}.hook_resid_post",
                  f"blocks.{L}.attn.hook_z", f"blocks.{L}.hook_mlp_out",
                  *(f"blocks.{L}.attn.hook_{x}_input" for x in "qkv")]  # fmt: skip
        names.append(f"blocks.{L}.hook_mlp_in" if layout.mlp_input == "mlp_in"
                     else f"blocks.{L}.mlp.hook_in")  # fmt: skip
    with torch.inference_mode(), split_inputs(m.bridge):
        rows = tokens[:STRUCTURE_ROWS]
        last = torch.tensor([rows.shape[1] - 1], device=rows.device)  # no logits needed
        keep = {"logits_to_keep": last} if m.keeps_logits else {}
        _, cache = m.bridge.run_with_cache(rows, names_filter=names, **keep)
    worst_sum = worst_input = 0.0
    for L in range(m.n_layers):
        pre, post = cache[f"blocks.{L}.hook_resid_pre"], cache[f"blocks.{L}.hook_resid_post"]
        scale = float(post.abs().max()) + 1.0
        z = cache[f"blocks.{L}.attn.hook_z"]
        z = z.unflatten(-1, (m.n_heads, -1)) if z.dim() == 3 else z
        attn = torch.einsum("bshe,hed->bsd", z, layout.W_O[L].to(pre))
        if layout.b_O[L] is not None:
            attn = attn + layout.b_O[L].to(pre)  # type: ignore[union-attr]
        rest = post - pre - attn - cache[f"blocks.{L}.hook_mlp_out"]
        worst_sum = max(worst_sum, float(rest.abs().max()) / scale)
        ins = [cache[f"blocks.{L}.attn.hook_{x}_input"] - pre[:, :, None] for x in "qkv"]
        if layout.mlp_input == "mlp_in":
            reads = pre if layout.parallel else pre + attn
            ins.append(cache[f"blocks.{L}.hook_mlp_in"] - reads)
        else:
            reads = m.bridge.blocks[L].ln1.original_component(pre)
            ins.append(cache[f"blocks.{L}.mlp.hook_in"] - reads)
        worst_input = max(worst_input, max(float(t.abs().max()) for t in ins) / scale)
    tol = _tolerance(m.dtype)
    if worst_sum > tol:
        raise EvaluationError(
            f"edge circuits are not defined on {m.architecture}: a block's heads, attention "
            f"bias and MLP do not add up to what it adds to the residual stream (off by "
            f"{worst_sum:.2g} of its scale), so a single head's output is not a term of it",
            code="E307",
            hint="evaluate node circuits on this model (`ablate nodes`, the default)",
        )
    if worst_input > tol:
        raise _no_split_error(
            m.architecture, f"they differ from the residual stream by {worst_input:.2g}"
        )
    return max(worst_sum, worst_input)


__all__ = [
    "STRUCTURE_ROWS",
    "EdgeLayout",
    "check_structure",
    "edge_graph",
    "receiver_row",
    "receiver_senders",
    "removed_weights",
    "require_edges",
    "split_inputs",
]  # fmt: skip
