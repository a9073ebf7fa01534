"""The generic engine's one-pass edge forward on any TransformerBridge, through its hook
points (the graph it runs is seqcirc.forward.hooked_graph; the fast forward, GPT-2 only,
is forward/gpt2.py).

A receiver's input is what its senders add to the residual stream, each as in this
pass where its edge is kept and ablated where it is removed (the standard formulation,
as gpt2.forward_edges, which moves the input by ablated - actual instead; the sums are
the same, the rounding is not: see _EdgePass): per-head q/k/v inputs before the block's
norm (TransformerLens's `hook_q_input`/`hook_k_input`/`hook_v_input` with
`use_split_qkv_input`), the MLP's at `hook_mlp_in` (before its norm), the logits' at
`ln_final.hook_in`. A receiver with no removed edge keeps its input in this pass, bit
for bit. Each head's output is read at `hook_result` (`use_attn_result`) where the
bridge gives it, else computed from hook_z and W_O.

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


Rebuilt = tuple[Tensor, Tensor | None]  # receivers' inputs [B, S, r, d], where to use them


class _Outputs:
    """Each sender's (actual - ablated) output as it is computed, [B, S, n, d] as the fast
    engine keeps them.

    Without autograd they go into one buffer and a receiver group's kept share is one
    matrix product; with autograd (keep weights being differentiated) they stay separate
    blocks, one product each, summed: a buffer written in place after a product has read
    it could not be differentiated."""

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

    def weighted(self, w: Tensor, n: int) -> Tensor:
        """Σ_j w[..., r, j] * (actual_j - ablated_j) over the first n senders: [B, S, r, d]
        (w [r, N] for every row, or [B, r, N] per row)."""
        parts = [(0, self.buf[:, :, :n])] if self.buf is not None else self.blocks
        total: Tensor | None = None
        for col, d in parts:
            if col >= n:
                break
            k = min(d.shape[2], n - col)
            wk = w[..., col : col + k].to(d)
            part = torch.matmul(wk if wk.dim() == 2 else wk[:, None], d[:, :, :k])
            total = part if total is None else total + part.to(total.device)
        assert total is not None, "a receiver before its first sender"
        return total


# ---------------------------------------------------------------- the forward


class _EdgePass:
    """One edge forward's hooks: each sender's (actual - ablated) output recorded as it
    is computed; each receiver into which some edge is removed gets its input rebuilt from
    its senders (the kept ones' outputs in this pass, the removed ones' ablated outputs),
    the others keep theirs.

    Rebuilt, not moved: Σ_j kept_j (actual_j - ablated_j) + Σ_j ablated_j + the
    attention biases before it. Moving the input (x - Σ_removed (actual - ablated), the
    same sum) cancels: where few edges are kept and their senders are zero-ablated the
    input is nearly 0, and an RMSNorm (no mean to subtract, eps ~ 1e-6) turns the
    cancellation's rounding into 1e-4 .. 1e-3 of the logits; rebuilt, it is exactly the
    kept senders' outputs (0 where none is kept). Σ_j ablated_j over a receiver's senders
    is a prefix of the sender order, computed once per pass (`_base`)."""

    def __init__(self, m: HookedModel, layout: EdgeLayout, removed: Tensor,
                 values: SenderValues) -> None:  # fmt: skip
        self.m, self.layout, self.removed, self.values = m, layout, removed, values
        self.outputs = _Outputs(removed.shape[-1])
        self.resid_pre: dict[int, Tensor] = {}
        self.bases: dict[tuple[int, bool], Tensor] = {}
        self.per_layer = m.n_heads + 2 * m.n_kv_heads + 1
        # which receivers (per row) have a removed edge: removal is 0 off the graph
        self.changed = (removed != 0).any(-1)  # [R] or [B, R]
        self.changed_cpu = self.changed.cpu()  # one transfer, for the per-group choice
        self.every = removed.requires_grad  # differentiated: every input rebuilt

    def _base(self, layer: int, own_heads: bool) -> Tensor:
        """Σ ablated outputs of the senders before `layer` (and its heads if own_heads),
        plus those layers' attention biases: [P, S, d], summed in float32 at least (a
        half-precision model's values, added up over the layers, round once)."""
        key = (layer, own_heads)
        if key not in self.bases:
            v, b_O = self.values, self.layout.b_O
            acc = torch.promote_types(v.embed.dtype, torch.float32)
            if own_heads:
                base = self._base(layer, False) + v.heads[layer].sum(2, dtype=acc)
                bias = b_O[layer]
                base = base if bias is None else base + bias.to(base)
            elif layer == 0:
                base = v.embed[:, :, 0].to(acc)
            else:
                base = self._base(layer - 1, True) + v.mlp[layer - 1][:, :, 0].to(acc)
            self.bases[key] = base
        return self.bases[key]

    def rebuilt(self, r0: int, r1: int, layer: int, own_heads: bool) -> Rebuilt | None:
        """Receivers r0..r1-1 (their senders: those before `layer`, and its heads if
        own_heads): (inputs rebuilt [B, S, r, d], mask [1 or B, 1, r, 1] of those to
        rebuild, None for all), or None where no row removes an edge into them."""
        m = self.m
        n = 1 + layer * (m.n_heads + 1) + (m.n_heads if own_heads else 0)
        changed = self.changed_cpu[..., r0:r1]
        if not self.every and not bool(changed.any()):
            return None
        kept = self.outputs.weighted(1 - self.removed[..., r0:r1, :], n)
        inputs = kept.add_(self._base(layer, own_heads)[:, :, None].to(kept))
        if self.every or bool(changed.all()):
            return inputs, None  # no select: a pass over [B, S, r, d] saved
        mask = self.changed[..., r0:r1].to(inputs.device)
        mask = mask[None, None, :, None] if mask.dim() == 1 else mask[:, None, :, None]
        return inputs, mask

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
        self.outputs.add(0, x[:, :, None] - self.values.embed.to(x))

    def keep_resid(self, layer: int) -> Hook:
        def hook(x: Tensor) -> None:
            self.resid_pre[layer] = x

        return hook

    def qkv(self, layer: int, which: str) -> Hook:
        m = self.m
        spans = {"q": (0, m.n_heads), "k": (m.n_heads, m.n_heads + m.n_kv_heads),
                 "v": (m.n_heads + m.n_kv_heads, m.n_heads + 2 * m.n_kv_heads)}  # fmt: skip

        def hook(x: Tensor) -> Tensor | None:  # x [B, S, heads, d]
            a, b = spans[which]  # one product per input: a contiguous result for the bridge
            r0 = layer * self.per_layer
            found = self.rebuilt(r0 + a, r0 + b, layer, False)
            if found is None:
                return None
            inputs, mask = found
            if mask is None:
                return inputs.to(x)
            return torch.where(mask.to(x.device), inputs.to(x), x)

        return hook

    def heads(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1)

        def hook(z: Tensor) -> None:
            z = z.unflatten(-1, (self.m.n_heads, -1)) if z.dim() == 3 else z
            out = torch.einsum("bshe,hed->bshd", z, self.layout.W_O[layer].to(z))
            self.outputs.add(col, out - self.values.heads[layer].to(out))

        return hook

    def results(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1)

        def hook(out: Tensor) -> None:  # [B, S, H, d]: each head's term, computed once
            self.outputs.add(col, out - self.values.heads[layer].to(out))

        return hook

    def mlp_in(self, layer: int) -> Hook:
        r = layer * self.per_layer + self.per_layer - 1
        own_heads = not self.layout.parallel

        def hook(x: Tensor) -> Tensor | None:
            found = self.rebuilt(r, r + 1, layer, own_heads)
            if found is None:
                return None
            inputs, mask = found
            if self.layout.mlp_input == "mlp_in":
                return _chosen(inputs, mask, x)
            resid = _chosen(inputs, mask, self.resid_pre[layer])  # the MLP reads ln1's output
            normed: Tensor = self.m.bridge.blocks[layer].ln1.original_component(resid)
            return normed.to(x)

        return hook

    def mlp_out(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1) + self.m.n_heads

        def hook(x: Tensor) -> None:
            self.outputs.add(col, x[:, :, None] - self.values.mlp[layer].to(x))

        return hook

    def logits(self, x: Tensor) -> Tensor | None:
        r = self.removed.shape[-2] - 1
        found = self.rebuilt(r, r + 1, self.m.n_layers, False)
        return None if found is None else _chosen(*found, x)


def _chosen(inputs: Tensor, mask: Tensor | None, x: Tensor) -> Tensor:
    """One receiver's input [B, S, d]: rebuilt (inputs [B, S, 1, d]) where mask says."""
    if mask is None:
        return inputs[:, :, 0].to(x)
    return torch.where(mask[:, :, 0].to(x.device), inputs[:, :, 0].to(x), x)


def forward_edges(m: HookedModel, tokens: Tensor, answer_pos: Tensor, removed: Tensor,
                  values: SenderValues) -> Tensor:  # fmt: skip
    """Logits [B, vocab] at the answer position with the removed edges ablated, in one
    pass. removed: removed_weights' [n_receivers, n_senders] or per row [B, ...]."""
    layout = require_edges(m)
    run = _EdgePass(m, layout, removed, values)
    if not run.every and not bool(run.changed_cpu.any()):
        return m.logits_at(tokens, answer_pos)  # nothing removed: the clean run, bit for bit
    with split_inputs(m.bridge, layout.attn_result), m.hooks(run.hooks()):
        return m.logits_at(tokens, answer_pos)


__all__ = ["SenderValues", "forward_edges"]
