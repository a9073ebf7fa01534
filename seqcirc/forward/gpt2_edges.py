"""Edge circuits on GPT-2 (the fast engine): the model's edge graph and one forward pass
that ablates removed edges.

Sender order: embed, then per layer heads 0..H-1 and the MLP. Receiver rows: per layer q
of heads, k of heads, v of heads, the MLP; then the logits. A sender's output is what it
writes into the residual stream (a head's z through its W_O, the layer's b_O staying in the
residual; an MLP's whole output); each receiver's input is built from its kept senders'
outputs (forward.edge_plan).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.forward.common import ModelWeights, Replacement, attend, gather_pos, require_edges
from seqcirc.forward.edge_plan import EdgePlan, Inputs, LayerPlan, kept_weights
from seqcirc.forward.gpt2 import Gpt2Weights, mlp_from_normed
from seqcirc.plan import EMBED, LOGITS, Edge, ReceiverInput

__all__ = [
    "EdgeGraph", "EdgeValues", "edge_graph", "forward_edges", "receiver_row", "removed_matrix",
    "sender_names",
]  # fmt: skip


def sender_names(w: Gpt2Weights) -> tuple[str, ...]:
    """embed, then per layer heads 0..H-1 and the MLP (the order of the residual stream)."""
    out = [EMBED]
    for layer in range(w.n_layers):
        out.extend(f"{layer}.{h}" for h in range(w.n_heads))
        out.append(f"mlp{layer}")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class EdgeGraph:
    """Every edge of the model (auto-circuit's convention: 32,491 for GPT-2 small)."""

    edges: tuple[Edge, ...]
    index: dict[Edge, int]
    rows: Tensor  # [n_edges] receiver row of each edge
    cols: Tensor  # [n_edges] sender column of each edge
    n_receivers: int
    n_senders: int

    @property
    def n_edges(self) -> int:
        return len(self.edges)


def receiver_row(w: Gpt2Weights, layer: int, inp: str, head: int | None) -> int:
    per = 3 * w.n_heads + 1
    if inp == "mlp":
        return layer * per + 3 * w.n_heads
    return layer * per + "qkv".index(inp) * w.n_heads + (head or 0)


def edge_graph(w: ModelWeights) -> EdgeGraph:
    require_edges(w)
    assert isinstance(w, Gpt2Weights)
    return _graph_of_shape(w.n_layers, w.n_heads)


@functools.lru_cache(maxsize=8)
def _graph_of_shape(n_layers: int, n_heads: int) -> EdgeGraph:
    """The graph depends on the shape alone: built once per process (32,491 Edge objects
    for GPT-2 small took about a third of a bare forward, at every prepare)."""
    senders = [EMBED]
    for layer in range(n_layers):
        senders += [*(f"{layer}.{h}" for h in range(n_heads)), f"mlp{layer}"]
    edges: list[Edge] = []
    rows: list[int] = []
    cols: list[int] = []
    n_h, per = n_heads, 3 * n_heads + 1
    for layer in range(n_layers):
        n_before = 1 + layer * (n_h + 1)
        qkv: tuple[ReceiverInput, ...] = ("q", "k", "v")
        for i, inp in enumerate(qkv):
            for h in range(n_h):
                for s in range(n_before):
                    edges.append(Edge(senders[s], f"{layer}.{h}", inp))
                    rows.append(layer * per + i * n_h + h)
                    cols.append(s)
        for s in range(n_before + n_h):
            edges.append(Edge(senders[s], f"mlp{layer}", "mlp"))
            rows.append(layer * per + 3 * n_h)
            cols.append(s)
    n_recv = n_layers * per + 1
    for s in range(len(senders)):
        edges.append(Edge(senders[s], LOGITS, "resid"))
        rows.append(n_recv - 1)
        cols.append(s)
    return EdgeGraph(
        edges=tuple(edges),
        index={e: i for i, e in enumerate(edges)},
        rows=torch.tensor(rows),
        cols=torch.tensor(cols),
        n_receivers=n_recv,
        n_senders=len(senders),
    )


def removed_matrix(graph: EdgeGraph, keep: Tensor, dtype: torch.dtype) -> Tensor:
    """[n_receivers, n_senders]: 1 where an edge exists and is removed (not kept); keep
    [R, n_edges] (R circuits): [R, n_receivers, n_senders]."""
    out = torch.zeros(*keep.shape[:-1], graph.n_receivers, graph.n_senders, dtype=dtype)
    out[..., graph.rows, graph.cols] = (~keep).to(dtype)
    return out


@dataclass(frozen=True, eq=False)
class EdgeValues:
    """Ablated sender outputs: embed [(B,)S,d], heads [L][(B,)S,H,d], mlp [L][(B,)S,d]."""

    embed: Tensor
    head_out: tuple[Tensor, ...]
    mlp: tuple[Tensor, ...]

    @classmethod
    def from_nodes(cls, w: ModelWeights, embed: Tensor, values: Replacement) -> EdgeValues:
        require_edges(w)
        assert isinstance(w, Gpt2Weights)
        heads = tuple(
            torch.einsum("...she,hed->...shd", values.z[layer], w.W_O[layer])
            for layer in range(w.n_layers)
        )
        return cls(embed, heads, values.mlp)


def forward_edges(
    w: ModelWeights,
    tokens: Tensor,
    answer_pos: Tensor,
    removed: Tensor,
    values: EdgeValues,
    *,
    logits: bool = True,
) -> Tensor:
    """Logits [B, vocab] at the answer position with the removed edges ablated (logits
    False: the residual [B, d] there before the final norm, to unembed chunks at once).

    One pass: each receiver's input is the ablated residual (every earlier sender's
    ablated value, and the attention biases) plus, for each kept edge, (actual - ablated)
    of its sender taken in this same pass (forward.edge_plan: what a circuit needs). So
    a receiver whose edges are all removed reads exactly the ablated residual.
    removed: [n_receivers, n_senders] (removed_matrix; float weights too: kept = 1 -
    removed), or [B, n_receivers, n_senders]: one removal per row (many circuits in one
    pass: _forward_edges_rows), already on the weights' device.
    """
    require_edges(w)
    assert isinstance(w, Gpt2Weights)
    if removed.dim() == 3:
        final = _forward_edges_rows(w, tokens, answer_pos, removed, values)
    else:
        final = _forward_planned(w, tokens, answer_pos, w.edge_plan(removed), values)
    return w.unembed(final) if logits else final


def _forward_planned(
    w: Gpt2Weights, tokens: Tensor, answer_pos: Tensor, plan: EdgePlan, values: EdgeValues
) -> Tensor:
    """The answer residual [B, d] of one circuit's pass. Slot 0 of `buf` [slots, B, S, d]
    holds the ablated residual so far, the next ones the needed senders' (actual -
    ablated), so a group of receivers' inputs is one product of their rows of the plan
    (1, then kept weights) by the first slots. The last layer feeds the logits alone:
    past its keys and values it runs at the answer rows only."""
    batch, seq = tokens.shape
    buf = w.W_E.new_empty(plan.n_slots, batch, seq, w.d_model)
    flat = buf.view(plan.n_slots, batch * seq * w.d_model)
    buf[0] = values.embed
    if plan.embed_needed:
        torch.sub(w.W_E[tokens] + w.W_pos[:seq], values.embed, out=buf[1])
    for layer, lp in enumerate(plan.layers[:-1]):
        ablated_heads = values.head_out[layer]  # [(B,) S, H, d]
        if lp.qkv is not None:
            out = buf[lp.head_slot : lp.head_slot + lp.heads.numel()]
            q, k, v, W_O = _qkv(w, layer, lp, _inputs(lp.qkv, flat, buf.shape))
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, h, S, dh]
            torch.bmm(z.transpose(0, 1).flatten(1, 2), W_O, out=out.view(len(W_O), -1, w.d_model))
            sel = ablated_heads.movedim(-2, 0)  # [H, (B,) S, d]
            sel = sel if lp.all_heads else sel[lp.heads]
            out -= sel if sel.dim() == 4 else sel[:, None]
        buf[0] += ablated_heads.sum(-2) + w.b_O[layer]
        if lp.mlp is not None:
            x = F.layer_norm(_inputs(lp.mlp, flat, buf.shape)[0], (w.d_model,),
                             w.ln2_w[layer], w.ln2_b[layer], w.eps)  # fmt: skip
            torch.sub(mlp_from_normed(w, layer, x), values.mlp[layer], out=buf[lp.mlp_slot])
        buf[0] += values.mlp[layer]
    ans_rows = torch.arange(batch, device=tokens.device) * seq + answer_pos
    at = flat.view(plan.n_slots, batch * seq, w.d_model)[:, ans_rows]  # [slots, B, d]
    _last_layer(w, plan.layers[-1], buf, at, answer_pos, values)
    return (plan.logits @ at.view(plan.n_slots, -1)).view(batch, w.d_model)


def _last_layer(
    w: Gpt2Weights, lp: LayerPlan, buf: Tensor, at: Tensor, answer_pos: Tensor,
    values: EdgeValues,
) -> None:  # fmt: skip
    """The last layer's slots of `at` [slots, B, d] (the answer rows of `buf`): its heads'
    queries at the answer only, over keys and values at every position."""
    layer, batch = w.n_layers - 1, at.shape[1]
    rows = torch.arange(batch, device=at.device)

    def at_answer(t: Tensor, shared_dims: int) -> Tensor:
        return t[answer_pos] if t.dim() == shared_dims else t[rows, answer_pos]

    ablated_heads = at_answer(values.head_out[layer], 3)  # [B, H, d]
    if lp.qkv is not None:
        q, k, v, W_O = _qkv(w, layer, lp, _inputs(lp.qkv, buf.view(len(buf), -1), buf.shape))
        q = q.transpose(1, 2)[rows, answer_pos][:, :, None]  # [B, h, 1, dh]
        seen = torch.arange(k.shape[2], device=at.device)[None, :] <= answer_pos[:, None]
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=seen[:, None, None])
        out = at[lp.head_slot : lp.head_slot + len(W_O)]  # [h, B, d]
        torch.bmm(z[:, :, 0].transpose(0, 1), W_O, out=out)
        sel = ablated_heads.transpose(0, 1)  # [H, B, d]
        out -= sel if lp.all_heads else sel[lp.heads]
    at[0] += ablated_heads.sum(1) + w.b_O[layer]
    mlp_abl = at_answer(values.mlp[layer], 2)  # [B, d]
    if lp.mlp is not None:
        x = (lp.mlp.kept @ at[: lp.mlp.n_slots].reshape(lp.mlp.n_slots, -1)).view(batch, -1)
        x = F.layer_norm(x, (w.d_model,), w.ln2_w[layer], w.ln2_b[layer], w.eps)
        torch.sub(mlp_from_normed(w, layer, x), mlp_abl, out=at[lp.mlp_slot])
    at[0] += mlp_abl


def _inputs(inputs: Inputs, flat: Tensor, shape: torch.Size) -> Tensor:
    """[U, B, S, d]: each distinct row of weights by the first slots."""
    return (inputs.kept @ flat[: inputs.n_slots]).view(-1, *shape[1:])


def _qkv(
    w: Gpt2Weights, layer: int, lp: LayerPlan, x: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """q, k, v [B, h, S, dh] of the needed heads, each from its own input x [U, B, S, d]
    (U distinct inputs of the 3h receivers), and those heads' W_O [h, dh, d]."""
    n_u, batch, seq, d = x.shape
    x = F.layer_norm(x, (d,), w.ln1_w[layer], w.ln1_b[layer], w.eps).view(n_u, -1, d)
    if lp.qkv is not None and lp.qkv.inverse is not None:
        x = x[lp.qkv.inverse]
    W, b, W_O = _head_weights(w, layer, lp)
    proj = torch.baddbmm(b, x, W).view(3, len(W_O), batch, seq, w.d_head)
    q, k, v = proj.transpose(1, 2).unbind(0)
    return q, k, v, W_O


def _head_weights(w: Gpt2Weights, layer: int, lp: LayerPlan) -> tuple[Tensor, Tensor, Tensor]:
    """W [3h, d, dh], b [3h, 1, dh] of the needed heads' q, k, v and their W_O [h, dh, d]:
    views when every head is needed, else copies kept with the plan (one per circuit)."""
    W, b = w.qkv_per_head(layer)  # [3, H, d, dh], [3, H, dh]
    h, d, dh = lp.heads.numel(), w.d_model, w.d_head
    if lp.all_heads:
        return W.view(3 * h, d, dh), b.reshape(3 * h, 1, dh), w.W_O[layer]
    if lp.weights is None:
        W, b, W_O = W[:, lp.heads], b[:, lp.heads], w.W_O[layer][lp.heads]
        lp.weights = (W.reshape(3 * h, d, dh), b.reshape(3 * h, 1, dh), W_O)
    return lp.weights


def _forward_edges_rows(
    w: Gpt2Weights, tokens: Tensor, answer_pos: Tensor, removed: Tensor, values: EdgeValues
) -> Tensor:
    """forward_edges with one removal per row (removed [B, n_receivers, n_senders]): the
    answer residual [B, d] before the final norm. Each receiver's input is built as in
    _forward_planned (the ablated residual plus its row's kept (actual - ablated)), every
    head and MLP computed."""
    n_h, d = w.n_heads, w.d_model
    batch, seq = tokens.shape
    kept = kept_weights(w.n_layers, n_h, removed)
    n_senders = removed.shape[-1]
    diffs = w.W_E.new_zeros(batch * seq, n_senders, d)  # actual - ablated, per sender
    diffs[:, 0] = (w.embed(tokens) - values.embed).reshape(-1, d)
    abl = values.embed.expand(batch, seq, d)  # the ablated residual so far
    per = 3 * n_h + 1

    def kept_sum(rows: Tensor, n: int) -> Tensor:
        """sum over the first n senders of rows' kept weights x their diffs [BS, r, d]."""
        d4 = diffs.view(batch, seq, n_senders, d)[:, :, :n]
        return torch.matmul(rows[:, None, :, :n], d4).reshape(batch * seq, -1, d)

    for layer in range(w.n_layers):
        n_before = 1 + layer * (n_h + 1)
        rows = kept[..., layer * per : (layer + 1) * per, :]
        x_in = abl.reshape(-1, 1, d) + kept_sum(rows[..., : 3 * n_h, :], n_before)  # [BS, 3H, d]
        x = F.layer_norm(x_in, (d,), w.ln1_w[layer], w.ln1_b[layer], w.eps)
        # [3H, BS, d] @ [3H, d, dh] -> q, k, v per head from its own input
        W_h, b_h = w.qkv_per_head(layer)
        proj = torch.bmm(x.transpose(0, 1), W_h.reshape(3 * n_h, d, w.d_head))
        proj = proj.reshape(3, n_h, batch, seq, w.d_head) + b_h[:, :, None, None]
        qkv = proj.permute(0, 2, 3, 1, 4)  # [3, B, S, H, dh]
        z = attend(qkv[0], qkv[1], qkv[2])
        head_out = torch.einsum("bshe,hed->bshd", z, w.W_O[layer])
        diffs[:, n_before : n_before + n_h] = (head_out - values.head_out[layer]).reshape(
            -1, n_h, d
        )
        abl = abl + values.head_out[layer].sum(-2) + w.b_O[layer]
        n_mlp = n_before + n_h
        x_in = abl + kept_sum(rows[..., 3 * n_h : per, :], n_mlp).view(batch, seq, d)
        x = F.layer_norm(x_in, (d,), w.ln2_w[layer], w.ln2_b[layer], w.eps)
        out = mlp_from_normed(w, layer, x)
        diffs[:, n_mlp] = (out - values.mlp[layer]).reshape(-1, d)
        abl = abl + values.mlp[layer]
    ans_rows = torch.arange(batch, device=tokens.device) * seq + answer_pos
    return gather_pos(abl, answer_pos) + torch.matmul(kept[..., -1:, :], diffs[ans_rows]).squeeze(1)
