"""The generic engine's one-pass edge forward on any TransformerBridge, through its hook
points (the graph it runs is seqcirc.forward.hooked_graph; the fast forward, GPT-2 only,
is forward/gpt2.py).

A receiver's input is what its senders add to the residual stream, each as in this
pass where its edge is kept and ablated where it is removed (the standard formulation,
as gpt2_edges.forward_edges, which moves the input by ablated - actual instead; the sums are
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
from seqcirc.forward.hooked_graph import EdgeLayout, receiver_senders, require_edges, split_inputs

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


# a product reads only the senders its receivers read where they are at most 1 / SPARSE of
# those before them: gathering them costs a pass over what it saves reading
SPARSE = 3
Rebuilt = tuple[Tensor, Tensor | None]  # receivers' inputs [B, S, r, d], where to use them


class _Outputs:
    """Each sender's (actual - ablated) output as it is computed.

    Without autograd: only the senders some receiver reads with a non-zero keep weight
    (`live`; the others' outputs reach every receiver as their ablated value, which the
    base holds), sender-major in one buffer [n_live, B, S, d], so that a receiver group's
    kept share is one matrix product [r, n_live] x [n_live, B*S*d]. With autograd (keep
    weights being differentiated) every sender's block [B, S, k, d] stays separate, one
    product each, summed: a buffer written in place after a product has read it could
    not be differentiated, and a zero keep weight still has a gradient."""

    def __init__(self, removed: Tensor, live: Tensor) -> None:
        self.grad = torch.is_grad_enabled()
        self.removed = removed
        self.blocks: list[tuple[int, Tensor]] = []
        self.buf: Tensor | None = None
        self.live = live.tolist()  # [N] bool: the senders kept in the buffer
        self.slot = [0, *torch.cumsum(live, 0).tolist()]  # buffer rows before each sender
        self.live_cols = live.nonzero()[:, 0].to(removed.device)
        self.w: Tensor | None = None  # keep weights [..., R, n_live], the buffer's dtype
        self.read = torch.empty(0, dtype=torch.bool)  # [R, n_live]: w != 0 in some row

    def any_live(self, col: int, k: int) -> bool:
        return self.grad or any(self.live[col : col + k])

    def add(self, col: int, actual: Tensor, ablated: Tensor) -> None:
        """Senders col..col+k-1: their outputs actual [B, S, k, d], ablated [P, S, k, d]."""
        if self.grad:
            self.blocks.append((col, actual - ablated.to(actual)))
            return
        k = actual.shape[2]
        live = self.live[col : col + k]
        if not any(live):
            return
        if self.buf is None:
            B, S, _, d = actual.shape
            self.buf = actual.new_empty(self.slot[-1], B, S, d)
        if not all(live):
            sel = torch.tensor([i for i in range(k) if live[i]], device=actual.device)
            actual, ablated = actual.index_select(2, sel), ablated.index_select(2, sel)
        s0 = self.slot[col]
        out = self.buf[s0 : s0 + actual.shape[2]]
        torch.sub(actual.permute(2, 0, 1, 3), ablated.to(actual).permute(2, 0, 1, 3), out=out)

    def weighted(self, r0: int, r1: int, n: int) -> Tensor | None:
        """Σ_j keep[..., r, j] * (actual_j - ablated_j) over the first n senders into
        receivers r0..r1-1: [B, S, r, d] (None: nothing kept, all 0)."""
        if self.grad:
            return self._weighted_blocks(1 - self.removed[..., r0:r1, :], n)
        m = self.slot[n]
        if m == 0 or self.buf is None:
            return None
        if self.w is None:
            self.w = (1 - self.removed).index_select(-1, self.live_cols).to(self.buf)
            read = self.w != 0
            self.read = (read.any(0) if read.dim() == 3 else read).cpu()  # [R, n_live]
        w, buf = self.w[..., r0:r1, :m], self.buf[:m]
        cols = self.read[r0:r1, :m].any(0).nonzero()[:, 0]
        if cols.numel() == 0:
            return None
        if cols.numel() <= m // SPARSE:  # few senders read (an MLP's, the logits' input)
            cols = cols.to(w.device)
            w, buf = w.index_select(-1, cols), buf.index_select(0, cols)
        k, B, S, d = buf.shape
        if w.dim() == 2:  # one removal for every row: [r, k] x [k, B*S*d]
            return torch.mm(w, buf.view(k, -1)).view(-1, B, S, d).permute(1, 2, 0, 3)
        per_row = torch.bmm(w, buf.view(k, B, S * d).transpose(0, 1))  # [B, r, S*d]
        return per_row.view(B, -1, S, d).permute(0, 2, 1, 3)

    def _weighted_blocks(self, w: Tensor, n: int) -> Tensor:
        total: Tensor | None = None
        for col, d in self.blocks:
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
    is a prefix of the sender order, computed once per pass (`_base`).

    Without autograd, a sender no receiver reads with a non-zero keep weight (in any row)
    is dead: every receiver gets its ablated value, so its actual output is never used,
    and the inputs of its own receivers (a head's q, its kv group's k and v if every head
    of the group is dead, an MLP's input) are left as they are."""

    def __init__(self, m: HookedModel, layout: EdgeLayout, removed: Tensor,
                 values: SenderValues) -> None:  # fmt: skip
        self.m, self.layout, self.removed, self.values = m, layout, removed, values
        self.resid_pre: dict[int, Tensor] = {}
        self.bases: dict[tuple[int, bool], Tensor] = {}
        self.per_layer = m.n_heads + 2 * m.n_kv_heads + 1
        self.every = removed.requires_grad  # differentiated: every input rebuilt
        before, owners = receiver_senders(m.n_layers, m.n_heads, m.n_kv_heads, layout.parallel)
        before, owners = before.to(removed.device), owners.to(removed.device)
        n = removed.shape[-1]
        if self.every:
            live = torch.ones(n, dtype=torch.bool, device=removed.device)
        else:  # read by some receiver with a non-zero keep weight, in some row
            read = (removed != 1) & (torch.arange(n, device=removed.device) < before[:, None])
            live = read.any(0).any(0) if read.dim() == 3 else read.any(0)
        self.outputs = _Outputs(removed, live)
        # which receivers (per row) have a removed edge and drive a live sender
        drives = torch.cat([live, live.new_ones(1)])[owners].any(-1)  # -1: the logits
        self.changed = (removed != 0).any(-1) & drives  # [R] or [B, R]
        self.changed_cpu = self.changed.cpu()  # one transfer, for the per-group choice
        self.qkv_kept: tuple[int, int, Tensor | None] | None = None  # layer, first, share
        self.answer_pos: Tensor | None = None  # where the final residual is kept, if it is
        self.final: Tensor | None = None

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

    def rebuilt(self, r0: int, r1: int, layer: int, own_heads: bool, like: Tensor,
                qkv: bool = False) -> Rebuilt | None:  # fmt: skip
        """Receivers r0..r1-1 (their senders: those before `layer`, and its heads if
        own_heads): (inputs rebuilt [B, S, r, d], mask [1 or B, 1, r, 1] of those to
        rebuild, None for all), or None where no row removes an edge into them. `like`:
        the hook's tensor (rows, dtype); `qkv`: one of the layer's q/k/v inputs, whose
        kept shares are one product for the three."""
        m = self.m
        n = 1 + layer * (m.n_heads + 1) + (m.n_heads if own_heads else 0)
        changed = self.changed_cpu[..., r0:r1]
        if not self.every and not bool(changed.any()):
            return None
        kept = self._qkv_kept(r0, r1, layer, n) if qkv else self.outputs.weighted(r0, r1, n)
        base = self._base(layer, own_heads)[:, :, None]
        if kept is None:  # nothing kept: every sender's ablated output
            inputs = base.to(like.dtype).expand(like.shape[0], -1, r1 - r0, -1).contiguous()
        elif self.every:
            inputs = (kept + base.to(kept)).contiguous()
        else:  # one pass, contiguous for the bridge
            inputs = torch.add(kept, base.to(kept), out=kept.new_empty(kept.shape))
        if self.every or bool(changed.all()):
            return inputs, None  # no select: a pass over [B, S, r, d] saved
        mask = self.changed[..., r0:r1].to(inputs.device)
        mask = mask[None, None, :, None] if mask.dim() == 1 else mask[:, None, :, None]
        return inputs, mask

    def _qkv_kept(self, r0: int, r1: int, layer: int, n: int) -> Tensor | None:
        """Receivers r0..r1-1's kept share, of one product over the layer's q/k/v receivers
        from its first to its last to rebuild (computed at the first of its hooks)."""
        if self.qkv_kept is None or self.qkv_kept[0] != layer:
            lo, count = layer * self.per_layer, self.per_layer - 1
            first, last = 0, count
            if not self.every:  # from the first input (q, k, v) with a receiver to rebuild
                h, kv = self.m.n_heads, self.m.n_kv_heads
                span = self.changed_cpu[..., lo : lo + count].reshape(-1, count).any(0)
                inputs = [(a, b) for a, b in ((0, h), (h, h + kv), (h + kv, count))
                          if bool(span[a:b].any())]  # fmt: skip
                first, last = inputs[0][0], inputs[-1][1]
            kept = self.outputs.weighted(lo + first, lo + last, n)
            self.qkv_kept = (layer, lo + first, kept)
        _, lo, kept = self.qkv_kept
        return None if kept is None else kept[:, :, r0 - lo : r1 - lo]

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
        self.outputs.add(0, x[:, :, None], self.values.embed)

    def keep_resid(self, layer: int) -> Hook:
        def hook(x: Tensor) -> None:
            self.resid_pre[layer] = x

        return hook

    def qkv(self, layer: int, which: str) -> Hook:
        m = self.m
        spans = {"q": (0, m.n_heads), "k": (m.n_heads, m.n_heads + m.n_kv_heads),
                 "v": (m.n_heads + m.n_kv_heads, m.n_heads + 2 * m.n_kv_heads)}  # fmt: skip

        def hook(x: Tensor) -> Tensor | None:  # x [B, S, heads, d]
            a, b = spans[which]
            r0 = layer * self.per_layer
            found = self.rebuilt(r0 + a, r0 + b, layer, False, x, qkv=True)
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
            if not self.outputs.any_live(col, self.m.n_heads):
                return
            z = z.unflatten(-1, (self.m.n_heads, -1)) if z.dim() == 3 else z
            out = torch.einsum("bshe,hed->bshd", z, self.layout.W_O[layer].to(z))
            self.outputs.add(col, out, self.values.heads[layer])

        return hook

    def results(self, layer: int) -> Hook:
        col = 1 + layer * (self.m.n_heads + 1)

        def hook(out: Tensor) -> None:  # [B, S, H, d]: each head's term, computed once
            self.outputs.add(col, out, self.values.heads[layer])

        return hook

    def mlp_in(self, layer: int) -> Hook:
        r = layer * self.per_layer + self.per_layer - 1
        own_heads = not self.layout.parallel

        def hook(x: Tensor) -> Tensor | None:
            found = self.rebuilt(r, r + 1, layer, own_heads, x)
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
            self.outputs.add(col, x[:, :, None], self.values.mlp[layer])

        return hook

    def logits(self, x: Tensor) -> Tensor | None:
        r = self.removed.shape[-2] - 1
        found = self.rebuilt(r, r + 1, self.m.n_layers, False, x)
        x = x if found is None else _chosen(*found, x)
        if self.answer_pos is not None:  # the final residual at the answer, unembedded later
            rows = torch.arange(x.shape[0], device=x.device)
            self.final = x[rows, self.answer_pos.to(x.device)]
        return None if found is None else x


def _chosen(inputs: Tensor, mask: Tensor | None, x: Tensor) -> Tensor:
    """One receiver's input [B, S, d]: rebuilt (inputs [B, S, 1, d]) where mask says."""
    if mask is None:
        return inputs[:, :, 0].to(x)
    return torch.where(mask[:, :, 0].to(x.device), inputs[:, :, 0].to(x), x)


def defers_unembed(m: HookedModel) -> bool:
    """Whether forward_edges can give the final residuals for unembed_finals: the model
    unembeds only the positions asked for (here none), and a residual [B, d] is told
    from logits [B, vocab] by its width."""
    return m.keeps_logits and m.d_model != m.d_vocab


def forward_edges(m: HookedModel, tokens: Tensor, answer_pos: Tensor, removed: Tensor,
                  values: SenderValues, *, final: bool = False) -> Tensor:  # fmt: skip
    """Logits [B, vocab] at the answer position with the removed edges ablated, in one
    pass. removed: removed_weights' [n_receivers, n_senders] or per row [B, ...].
    `final` (where defers_unembed): the final residual [B, d] at the answer instead, for
    unembed_finals, so that the chunks of a pass read the unembedding once, not once
    each; where nothing is removed, still the clean run's logits, to the bit."""
    layout = require_edges(m)
    run = _EdgePass(m, layout, removed, values)
    if not run.every and not bool(run.changed_cpu.any()):
        return m.logits_at(tokens, answer_pos)  # nothing removed: the clean run, bit for bit
    run.answer_pos = answer_pos if final else None
    with split_inputs(m.bridge, layout.attn_result), m.hooks(run.hooks()):
        if not final:
            return m.logits_at(tokens, answer_pos)
        m.bridge(tokens, logits_to_keep=answer_pos[:0])  # no position unembedded
    assert run.final is not None
    return run.final


def unembed_finals(m: HookedModel, parts: list[Tensor]) -> Tensor:
    """The answer logits [n, vocab] of forward_edges(final=True)'s parts (final residuals,
    or logits where nothing was removed): the model's own final norm and unembedding,
    once for all the residuals."""
    finals = [p for p in parts if p.shape[-1] != m.d_vocab]
    if not finals:
        return torch.cat(parts)
    done = iter(m.unembed(torch.cat(finals)).split([p.shape[0] for p in finals]))
    return torch.cat([p if p.shape[-1] == m.d_vocab else next(done) for p in parts])


__all__ = ["SenderValues", "defers_unembed", "forward_edges", "unembed_finals"]
