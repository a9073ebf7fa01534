"""What one edge circuit's pass needs (forward.gpt2_edges.forward_edges), worked out once per
circuit from its removed matrix.

The pass writes each receiver's input as the ablated residual (every earlier sender's
ablated value plus the layers' attention biases) plus, over the senders whose edge to it
is kept, each one's (actual - ablated). So only a kept edge costs work, and nothing
cancels: a receiver with every edge removed gets exactly the ablated residual. What follows
from that:

- a sender (head, MLP, the embeddings) none of whose kept out-edges reaches a needed
  receiver needs no slot in the pass's (actual - ablated) buffer, and a head or MLP no
  computation; a head's q, k, v inputs are needed when the head is (the logits always);
- receivers of a layer with the same kept row share one input (layer-normed once).

Sender order as forward.gpt2: embed, then per layer heads 0..H-1 and the MLP. Receiver
rows: per layer q of heads, k of heads, v of heads, the MLP; then the logits. Slot 0 is
the ablated residual; a needed sender's slot is 1 + its rank among the needed senders, so
slots keep sender order and a layer's needed heads have consecutive slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Inputs:
    """The inputs of a group of receivers: weights [U, n] of the first n slots (the
    ablated residual's 1, then the kept weights of the needed senders before them), one
    row per distinct input; `inverse` [r]: each receiver's row (None: one row each, in
    order)."""

    kept: Tensor
    inverse: Tensor | None

    @property
    def n_slots(self) -> int:
        return int(self.kept.shape[1])


@dataclass(eq=False)
class LayerPlan:
    """One layer: the heads computed (their q, k, v receivers, q then k then v, heads in
    order within each) and whether the MLP is."""

    heads: Tensor  # [h] needed heads, ascending
    all_heads: bool
    qkv: Inputs | None  # None: no head of the layer is needed
    head_slot: int  # slot of the first needed head
    mlp: Inputs | None  # None: the MLP is not needed
    mlp_slot: int
    # the needed heads' weights (forward.gpt2 fills it: the plan lives as long as they may)
    weights: tuple[Tensor, Tensor, Tensor] | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class EdgePlan:
    layers: tuple[LayerPlan, ...]
    embed_needed: bool  # then in slot 1
    logits: Tensor  # [1, n_slots] the logits receiver's row (1, then kept weights)
    n_slots: int  # the ablated residual and the needed senders


def kept_weights(n_layers: int, n_heads: int, removed: Tensor) -> Tensor:
    """[..., n_receivers, n_senders]: 1 - removed where an edge exists, 0 elsewhere."""
    per = 3 * n_heads + 1
    n_recv, n_send = removed.shape[-2:]
    senders = torch.arange(n_send, device=removed.device)
    layer_of = torch.arange(n_recv, device=removed.device) // per
    n_before = 1 + layer_of * (n_heads + 1)
    n_before = n_before + n_heads * ((torch.arange(n_recv, device=removed.device) % per) == per - 1)
    n_before[-1] = n_send  # the logits receive from every sender
    exists = senders[None, :] < n_before[:, None]
    return torch.where(exists, 1 - removed, torch.zeros_like(removed))


def edge_plan(n_layers: int, n_heads: int, removed: Tensor) -> EdgePlan:
    """The plan of a removed matrix [n_receivers, n_senders] (forward.gpt2_edges.removed_matrix,
    or any float weights: kept = 1 - removed)."""
    kept = kept_weights(n_layers, n_heads, removed)
    needed_send = _needed(n_layers, n_heads, kept != 0)
    slots = torch.cumsum(needed_send.long(), 0)  # 1 + rank
    with_resid = torch.cat([torch.ones_like(kept[:, :1]), kept], 1)
    needed = torch.cat([needed_send.new_ones(1), needed_send])  # columns of with_resid
    per, n_h = 3 * n_heads + 1, n_heads
    layers = []
    for layer in range(n_layers):
        n_before = 1 + layer * (n_h + 1)
        heads = torch.nonzero(needed_send[n_before : n_before + n_h]).flatten()
        qkv = None
        if heads.numel():
            rows = layer * per + (torch.arange(3)[:, None] * n_h + heads.cpu()[None, :]).flatten()
            qkv = _distinct(
                with_resid[rows.to(kept.device), : 1 + n_before][:, needed[: 1 + n_before]]
            )
        n_mlp = n_before + n_h
        mlp = None
        if needed_send[n_mlp]:
            row = with_resid[layer * per + 3 * n_h, : 1 + n_mlp][needed[: 1 + n_mlp]]
            mlp = Inputs(row[None], None)
        layers.append(LayerPlan(
            heads=heads, all_heads=int(heads.numel()) == n_h, qkv=qkv,
            head_slot=int(slots[n_before + heads[0]]) if heads.numel() else 0,
            mlp=mlp, mlp_slot=int(slots[n_mlp]),
        ))  # fmt: skip
    return EdgePlan(
        layers=tuple(layers),
        embed_needed=bool(needed_send[0]),
        logits=with_resid[-1:, needed],
        n_slots=1 + int(needed_send.sum()),
    )


def _needed(n_layers: int, n_heads: int, nonzero: Tensor) -> Tensor:
    """Needed senders [n_senders], from the logits back: a sender is needed when it keeps
    an edge to a needed receiver; a needed head needs its q, k, v, an MLP its input."""
    n_recv, n_send = nonzero.shape
    per, n_h = 3 * n_heads + 1, n_heads
    recv = torch.zeros(n_recv, dtype=torch.bool, device=nonzero.device)
    send = torch.zeros(n_send, dtype=torch.bool, device=nonzero.device)
    recv[-1] = True
    for layer in reversed(range(n_layers)):
        n_before = 1 + layer * (n_h + 1)
        mlp = n_before + n_h
        send[mlp] = nonzero[recv, mlp].any()
        recv[layer * per + 3 * n_h] = send[mlp]
        send[n_before:mlp] = nonzero[recv, n_before:mlp].any(0)
        qkv = recv[layer * per : layer * per + 3 * n_h].view(3, n_h)
        qkv |= send[n_before:mlp][None, :]
    send[0] = nonzero[recv, 0].any()
    return send


def _distinct(kept: Tensor) -> Inputs:
    """One row per distinct kept row when that saves a third of the rows: receivers that
    share an input share its product and layer norm, at the price of copying the normed
    inputs out to every receiver (about a third of what a row's product and norm cost)."""
    unique, inverse = torch.unique(kept, dim=0, return_inverse=True)
    if 3 * unique.shape[0] > 2 * kept.shape[0]:
        return Inputs(kept.contiguous(), None)
    return Inputs(unique, inverse)


__all__ = ["EdgePlan", "Inputs", "LayerPlan", "edge_plan", "kept_weights"]
