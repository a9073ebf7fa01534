"""Edge circuits on any TransformerBridge through its hook points: the generic engine's
edge graph and one-pass edge forward (the fast one, GPT-2 only, is forward/gpt2.py).

The graph follows the architecture (docs/language.md, "one meaning per component"):
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

A receiver's input is its input in this pass plus, for each removed edge, the sender's
ablated output minus its output in this pass (the standard formulation, as
gpt2.forward_edges): per-head q/k/v inputs before the block's norm (TransformerLens's
`hook_q_input`/`hook_k_input`/`hook_v_input` with `use_split_qkv_input`), the MLP's at
`hook_mlp_in` (before its norm), the logits' at `ln_final.hook_in`.

Edges from single heads need each head's output to be a term of a residual sum: where
a norm follows the attention output (Gemma 2, OLMo 2) they are refused (E307), as on
models whose bridge cannot give per-head q/k/v inputs before the norm (E308). Both are
checked from the bridge's structure and again numerically on the first prompts.

Removal is a float per (row and) edge: removed = 1 - keep, 1 ablates, 0 keeps, values
between interpolate; the forward is differentiable in it (run it outside inference mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import Replacement
from seqcirc.forward.gpt2 import EdgeGraph, sender_names
from seqcirc.forward.hooked import FINAL, RESID_START, Hook, HookedModel, _tolerance
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


def edge_graph(m: HookedModel) -> EdgeGraph:
    """Every edge of the model in the order of gpt2.edge_graph (the same graph for GPT-2)."""
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


# ---------------------------------------------------------------- ablated sender outputs


@dataclass(frozen=True, eq=False)
class SenderValues:
    """Ablated sender outputs, position-major as the residual stream: embed [P, S, 1, d],
    heads [L][P, S, H, d], mlp [L][P, S, 1, d]; P = 1 (shared by every row) or one per
    prompt."""

    embed: Tensor
    heads: tuple[Tensor, ...]
    mlp: tuple[Tensor, ...]
    per_prompt: bool

    @classmethod
    def from_nodes(cls, m: HookedModel, embed: Tensor, values: Replacement) -> SenderValues:
        layout = require_edges(m)
        per = values.z[0].dim() == 4
        zs = values.z if per else tuple(z[None] for z in values.z)
        heads = tuple(
            torch.einsum("pshe,hed->pshd", z, layout.W_O[layer].to(z)) for layer, z in enumerate(zs)
        )
        lead = (lambda t: t[:, :, None]) if per else (lambda t: t[None, :, None])
        return cls(lead(embed), heads, tuple(lead(t) for t in values.mlp), per)

    def rows(self, index: Tensor) -> SenderValues:
        if not self.per_prompt:
            return self
        return SenderValues(
            self.embed[index], tuple(h[index] for h in self.heads),
            tuple(t[index] for t in self.mlp), True,
        )  # fmt: skip


class _Diffs:
    """Each sender's (ablated - actual) as it is computed, [B, S, n, d] as the fast
    engine keeps them.

    Without autograd they go into one buffer and a receiver group's shift is one matrix
    product; with autograd (keep weights being differentiated) they stay separate blocks,
    one product each, summed: a buffer written in place after a product has read it could
    not be differentiated."""

    def __init__(self, n_senders: int) -> None:
        self.n_senders = n_senders
        self.grad = torch.is_grad_enabled()
        self.blocks: list[tuple[int, Tensor]] = []
        self.buf: Tensor | None = None

    def add(self, col: int, d: Tensor) -> None:
        if self.grad:
            self.blocks.append((col, d))
            return
        if self.buf is None:
            self.buf = d.new_empty(*d.shape[:2], self.n_senders, d.shape[-1])
        self.buf[:, :, col : col + d.shape[2]] = d

    def shift(self, w: Tensor, n: int) -> Tensor | None:
        """Σ_j w[..., r, j] * diff_j over the first n senders: [B, S, r, d] (w [r, N] for
        every row, or [B, r, N] per row); None before any sender."""
        parts = [(0, self.buf[:, :, :n])] if self.buf is not None else self.blocks
        total: Tensor | None = None
        for col, d in parts:
            if col >= n:
                break
            k = min(d.shape[2], n - col)
            wk = w[..., col : col + k].to(d)
            part = torch.matmul(wk if wk.dim() == 2 else wk[:, None], d[:, :, :k])
            total = part if total is None else total + part.to(total.device)
        return total


# ---------------------------------------------------------------- the forward


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


class _EdgePass:
    """One edge forward's hooks: each sender's (ablated - actual) recorded as it is
    computed, each receiver's input moved by the removed share of those differences."""

    def __init__(self, m: HookedModel, layout: EdgeLayout, removed: Tensor,
                 values: SenderValues) -> None:  # fmt: skip
        self.m, self.layout, self.removed, self.values = m, layout, removed, values
        self.diffs = _Diffs(removed.shape[-1])
        self.attn_delta: dict[int, Tensor | None] = {}
        self.resid_pre: dict[int, Tensor] = {}
        self.per_layer = m.n_heads + 2 * m.n_kv_heads + 1

    def delta(self, r0: int, r1: int, n_senders: int) -> Tensor | None:
        """The shift of receivers r0..r1-1 from the first n_senders senders: [B, S, r, d]."""
        return self.diffs.shift(self.removed[..., r0:r1, :], n_senders)

    def hooks(self) -> list[tuple[str, Hook]]:
        m = self.m
        out: list[tuple[str, Hook]] = [(RESID_START, self.embed), (FINAL, self.logits)]
        for layer in range(m.n_layers):
            attn = f"blocks.{layer}.attn"
            out += [(f"{attn}.hook_{x}_input", self.qkv(layer, x)) for x in "qkv"]
            if self.layout.attn_result:
                out.append((f"{attn}.hook_result", self.results(layer)))
            else:
                out.append((f"{attn}.hook_z", self.heads(layer)))
            out.append((f"blocks.{layer}.hook_mlp_out", self.mlp_out(layer)))
            if self.layout.mlp_input == "mlp_in":
                out.append((f"blocks.{layer}.hook_mlp_in", self.mlp_in(layer)))
            else:
                out.append((f"blocks.{layer}.mlp.hook_in", self.mlp_in(layer)))
                if layer > 0:
                    out.append((f"blocks.{layer}.hook_resid_pre", self.keep_resid(layer)))
        return out

    def embed(self, x: Tensor) -> None:
        self.resid_pre[0] = x
        self.diffs.add(0, self.values.embed.to(x) - x[:, :, None])

    def keep_resid(self, layer: int) -> Hook:
        def hook(x: Tensor) -> None:
            self.resid_pre[layer] = x

        return hook

    def qkv(self, layer: int, which: str) -> Hook:
        m = self.m
        spans = {"q": (0, m.n_heads), "k": (m.n_heads, m.n_heads + m.n_kv_heads),
                 "v": (m.n_heads + m.n_kv_heads, m.n_heads + 2 * m.n_kv_heads)}  # fmt: skip

        def hook(x: Tensor) -> Tensor | None:  # x [B, S, heads, d]
            if layer not in self.attn_delta:
                r0 = layer * self.per_layer
                n_before = 1 + layer * (m.n_heads + 1)
                self.attn_delta[layer] = self.delta(r0, r0 + spans["v"][1], n_before)
            delta = self.attn_delta[layer]
            if delta is None:
                return None
            a, b = spans[which]
            return x + delta[:, :, a:b].to(x)

        return hook

    def heads(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1)

        def hook(z: Tensor) -> None:
            z = z.unflatten(-1, (self.m.n_heads, -1)) if z.dim() == 3 else z
            out = torch.einsum("bshe,hed->bshd", z, self.layout.W_O[layer].to(z))
            self.diffs.add(col, self.values.heads[layer].to(out) - out)

        return hook

    def results(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1)

        def hook(out: Tensor) -> None:  # [B, S, H, d]: each head's term, computed once
            self.diffs.add(col, self.values.heads[layer].to(out) - out)

        return hook

    def mlp_in(self, layer: int) -> Hook:
        r = layer * self.per_layer + self.per_layer - 1
        n = self.layout.mlp_senders(self.m, layer)

        def hook(x: Tensor) -> Tensor | None:
            delta = self.delta(r, r + 1, n)
            if self.layout.mlp_input == "mlp_in":
                return None if delta is None else x + delta[:, :, 0].to(x)
            block = self.m.bridge.blocks[layer]
            resid = self.resid_pre[layer]
            resid = resid if delta is None else resid + delta[:, :, 0].to(resid)
            normed: Tensor = block.ln1.original_component(resid)
            return normed.to(x)

        return hook

    def mlp_out(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1) + self.m.n_heads

        def hook(x: Tensor) -> None:
            self.diffs.add(col, self.values.mlp[layer].to(x) - x[:, :, None])

        return hook

    def logits(self, x: Tensor) -> Tensor | None:
        r = self.removed.shape[-2] - 1
        delta = self.delta(r, r + 1, self.removed.shape[-1])
        return None if delta is None else x + delta[:, :, 0].to(x)


def forward_edges(m: HookedModel, tokens: Tensor, answer_pos: Tensor, removed: Tensor,
                  values: SenderValues) -> Tensor:  # fmt: skip
    """Logits [B, vocab] at the answer position with the removed edges ablated, in one
    pass. removed: removed_weights' [n_receivers, n_senders] or per row [B, ...]."""
    layout = require_edges(m)
    run = _EdgePass(m, layout, removed, values)
    with split_inputs(m.bridge, layout.attn_result), m.hooks(run.hooks()):
        return m.logits_at(tokens, answer_pos)


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
        _, cache = m.bridge.run_with_cache(tokens[:STRUCTURE_ROWS], names_filter=names)
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
    "EdgeLayout", "SenderValues", "check_structure", "edge_graph", "forward_edges",
    "receiver_row", "removed_weights", "require_edges", "split_inputs",
]  # fmt: skip
