"""The generic engine's one-pass edge forward on any TransformerBridge, through its hook
points (the graph it runs is seqcirc.forward.hooked_graph; the fast forward, GPT-2 only,
is forward/gpt2.py).

A receiver's input is its input in this pass plus, for each removed edge, the sender's
ablated output minus its output in this pass (the standard formulation, as
gpt2.forward_edges): per-head q/k/v inputs before the block's norm (TransformerLens's
`hook_q_input`/`hook_k_input`/`hook_v_input` with `use_split_qkv_input`), the MLP's at
`hook_mlp_in` (before its norm), the logits' at `ln_final.hook_in`. Each head's output
is read at `hook_result` (`use_attn_result`) where the bridge gives it, else computed
from hook_z and W_O.

Removal is a float per (row and) edge: removed = 1 - keep, 1 ablates, 0 keeps, values
between interpolate; the forward is differentiable in it (run it outside inference mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqcirc.forward.common import Replacement
from seqcirc.forward.hooked import FINAL, RESID_START, Hook, HookedModel
from seqcirc.forward.hooked_graph import EdgeLayout, require_edges, split_inputs

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


__all__ = ["SenderValues", "forward_edges"]
