"""Receiver gradients of the edge graph: what edge attribution (EAP, EAP-IG) reads.

The evaluator's edge forward (forward.gpt2.forward_edges) ablates edge s -> r by adding
r_e (v_s - a_s) to receiver r's own input, r_e the edge's removed weight (0: kept, 1:
ablated), v_s the sender's ablation value and a_s its activation in that pass. At r = 0
the derivative of the metric with respect to every removed weight is

    dm/dr_e = sum over rows and positions of g_r . (v_s - a_s),

g_r the gradient of the metric at r's own input: a head's q, k or v input (before its
layer norm), an MLP's input (before its layer norm), the final residual at the answer.
`edge_grads` computes every such sum at once from ONE forward and ONE backward: the heads
of a layer share one layer norm in the forward, and each head's q/k/v gradient is taken
back through that layer norm by hand (its Jacobian per token), so no per-receiver copy of
the residual stream is kept for the backward pass.

For EAP-IG a run may replace one sender block's output (the embeddings, the heads of a
layer, or an MLP) by the constant alpha * actual + (1 - alpha) * ablated (`Mix`), and the
differences may be taken from a reference run (`reference`, the clean run) instead of
this one, as the EAP-IG library does.

`edge_grad_fn` is the one place an architecture's implementation is chosen; GPT-2 only
for now (E302 elsewhere). A generic edge forward can serve by implementing `EdgeGradFn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import ModelWeights, Replacement, attend, gather_pos
from seqcirc.forward.gpt2 import EdgeValues, Gpt2Weights
from seqcirc.forward.nodes import forward_nodes

MetricFn = Callable[[Tensor], Tensor]  # answer logits [B, vocab] -> per-row metric [B]


@dataclass(frozen=True)
class Mix:
    """Replace one sender block's output by alpha * actual + (1 - alpha) * ablated, a
    constant (no gradient flows through the block in that run, as in the EAP-IG library).
    block: "input" (the embeddings), "attn" (every head of `layer`), "mlp" (MLP `layer`)."""

    block: Literal["input", "attn", "mlp"]
    layer: int
    alpha: float


@dataclass(frozen=True, eq=False)
class GradRun:
    """One attribution pass over a chunk of rows."""

    scores: Tensor  # [n_receivers, n_senders] float64: sum over rows of g_r . (v_s - a_s)
    metric_sum: float  # the metric summed over the rows, in this (possibly mixed) run


class EdgeGradFn(Protocol):
    def __call__(
        self,
        w: ModelWeights,
        tokens: Tensor,
        answer_pos: Tensor,
        values: EdgeValues,
        metric: MetricFn,
        *,
        mix: Mix | None = None,
        reference: EdgeValues | None = None,
    ) -> GradRun: ...


def edge_grad_fn(w: ModelWeights) -> EdgeGradFn:
    """The receiver-gradient pass of `w`'s architecture (E302 where there is none)."""
    if isinstance(w, Gpt2Weights):
        return edge_grads
    raise EvaluationError(
        f"edge attribution is not implemented for {w.architecture} models",
        code="E302",
        hint="attribution and edge discovery need the edge forward, which runs on "
        "GPT-2-architecture models (gpt2-small ... gpt2-xl, seqcirc-mini) for now",
    )


def sender_acts(w: ModelWeights, tokens: Tensor, answer_pos: Tensor) -> EdgeValues:
    """Every sender's activation [B, S, ...] in the clean run (no gradient): the
    embeddings, each head's output (z through its W_O), each MLP's output."""
    with torch.inference_mode():
        run = forward_nodes(w, tokens, answer_pos, capture=True, logits=False)
    assert run.embed is not None
    return EdgeValues.from_nodes(w, run.embed, Replacement(run.z, run.mlp))


def _mixed(mix: Mix | None, block: str, layer: int, actual: Tensor, ablated: Tensor) -> Tensor:
    if mix is None or mix.block != block or mix.layer != layer:
        return actual
    return mix.alpha * actual.detach() + (1.0 - mix.alpha) * ablated


@dataclass
class _Taped:
    """What the forward keeps for the scores: each layer's residual before its heads
    (detached), its fused q/k/v projection and the MLP probes (differentiated)."""

    resid: list[Tensor]
    qkv: list[Tensor]
    mlp_probe: list[Tensor]
    acts: EdgeValues


def _forward(w: Gpt2Weights, tokens: Tensor, answer_pos: Tensor, values: EdgeValues,
             mix: Mix | None) -> tuple[Tensor, Tensor, _Taped]:  # fmt: skip
    """Answer logits [B, vocab], the final probe [B, d], and the tape."""
    n_h, d = w.n_heads, w.d_model
    embed = w.embed(tokens)
    resid = _mixed(mix, "input", 0, embed, values.embed).detach().requires_grad_()
    tape = _Taped([], [], [], EdgeValues(embed, (), ()))
    heads, mlps = [], []
    for layer in range(w.n_layers):
        tape.resid.append(resid.detach())
        x = F.layer_norm(resid, (d,), w.ln1_w[layer], w.ln1_b[layer], w.eps)
        qkv = (x @ w.W_qkv[layer] + w.b_qkv[layer]).unflatten(-1, (3, n_h, w.d_head))
        tape.qkv.append(qkv)
        z = attend(qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :])
        # each head's output for the differences; the residual takes the fused product
        heads.append(torch.einsum("bshe,hed->bshd", z.detach(), w.W_O[layer]))
        out = z.flatten(-2) @ w.W_O[layer].flatten(0, 1)
        out = _mixed(mix, "attn", layer, out, values.head_out[layer].sum(-2))
        resid = resid + out + w.b_O[layer]
        probe = torch.zeros_like(resid, requires_grad=True)
        tape.mlp_probe.append(probe)
        out = w.mlp(layer, resid + probe)
        mlps.append(out.detach())
        resid = resid + _mixed(mix, "mlp", layer, out, values.mlp[layer])
    tape.acts = EdgeValues(embed, tuple(heads), tuple(mlps))
    final_probe = torch.zeros(resid.shape[0], d, dtype=resid.dtype, device=resid.device,
                              requires_grad=True)  # fmt: skip
    logits = w.unembed(gather_pos(resid, answer_pos) + final_probe)
    return logits, final_probe, tape


def _diffs(values: EdgeValues, ref: EdgeValues) -> Tensor:
    """(ablated - reference) of every sender [n_senders, d, B*S]: sender-major, so each
    layer's senders are one contiguous block of rows for the score products."""
    b, s, d = ref.embed.shape

    def block(t: Tensor) -> Tensor:  # [(B,) S, k, d] -> [k, d, B, S]
        return t.expand(b, s, *t.shape[-2:]).permute(2, 3, 0, 1)

    parts = [block((values.embed - ref.embed).unsqueeze(-2))]
    for v_h, a_h, v_m, a_m in zip(values.head_out, ref.head_out, values.mlp, ref.mlp,
                                  strict=True):  # fmt: skip
        parts += [block(v_h - a_h), block((v_m - a_m).unsqueeze(-2))]
    return torch.cat(parts, dim=0).reshape(-1, d, b * s)


def _receivers(w: Gpt2Weights, layer: int, resid: Tensor, g_qkv: Tensor, g_mlp: Tensor
               ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The layer's receivers' input gradients [3H + 1, d, B*S] (each head's q, k, v, then
    the MLP) and, for the heads, the per-token mean each still owes [3H, B*S].

    A head's gradient at its own input is its q/k/v gradient taken back through its
    projection and the layer norm: rstd (u - mean(u) - xhat mean(u xhat)), u = gamma W g.
    Returned without the mean(u) term, which the caller subtracts against the senders'
    per-token sums, so the only pass over [3H, d, B*S] is the one writing it."""
    b, s, d = resid.shape
    W_h, _ = w.qkv_per_head(layer)  # [3, H, d, dh]
    n_r, dh = W_h.shape[0] * W_h.shape[1], W_h.shape[-1]
    gamma = w.ln1_w[layer]
    mu = resid.mean(-1, keepdim=True)
    rstd = (resid.var(-1, unbiased=False, keepdim=True) + w.eps).rsqrt()  # [B, S, 1]
    xhat = (resid - mu) * rstd
    g = (g_qkv * rstd[..., None, None]).reshape(b * s, n_r, dh)  # rstd folded in
    wg = W_h.reshape(n_r, d, dh) * gamma[:, None]
    out = torch.empty(n_r + 1, d, b * s, dtype=resid.dtype, device=resid.device)
    torch.bmm(wg, g.permute(1, 2, 0), out=out[:n_r])  # u, rstd included: [3H, d, B*S]
    m1 = torch.einsum("brh,rh->rb", g, wg.sum(1)) / d  # mean over d of u
    proj = (xhat * gamma).reshape(b * s, d) @ w.W_qkv[layer]  # columns (q|k|v, head, dh)
    m2 = (proj.reshape(b * s, n_r, dh) * g).sum(-1).T / d  # mean over d of u xhat
    out[:n_r].addcmul_(m2[:, None, :], xhat.reshape(b * s, d).T[None], value=-1.0)
    out[n_r] = g_mlp.reshape(b * s, d).T
    return out, m1


def edge_grads(
    w: ModelWeights,
    tokens: Tensor,
    answer_pos: Tensor,
    values: EdgeValues,
    metric: MetricFn,
    *,
    mix: Mix | None = None,
    reference: EdgeValues | None = None,
) -> GradRun:
    """sum over rows of g_r . (v_s - a_s) for every receiver r and sender s [n_recv,
    n_senders] (float64), from one forward and one backward of rows `tokens` [B, S].

    values: the rows' ablation values; a_s: `reference` (e.g. the clean run's
    activations) or else this run's own; `mix`: the EAP-IG interpolation of one block."""
    assert isinstance(w, Gpt2Weights)
    n_h, n_layers = w.n_heads, w.n_layers
    with torch.enable_grad():
        logits, final_probe, tape = _forward(w, tokens, answer_pos, values, mix)
        total = metric(logits).sum()
        wrt = [*tape.qkv, *tape.mlp_probe, final_probe]
        grads = torch.autograd.grad(total, wrt, allow_unused=True, materialize_grads=True)
    n_senders = 1 + n_layers * (n_h + 1)
    per = 3 * n_h + 1
    scores = torch.zeros(n_layers * per + 1, n_senders, dtype=torch.float64, device=w.device)
    with torch.no_grad():
        diffs = _diffs(values, reference if reference is not None else tape.acts)
        flat = diffs.flatten(1)  # [n_senders, d * B * S]
        sums = diffs.sum(1)  # [n_senders, B * S]: each sender's difference summed over d
        for layer in range(n_layers):
            n_before, rows = 1 + layer * (n_h + 1), slice(layer * per, (layer + 1) * per)
            g, m1 = _receivers(w, layer, tape.resid[layer], grads[layer], grads[n_layers + layer])
            s = g.flatten(1) @ flat[: n_before + n_h].T  # [3H + 1, n_before + H]
            s[: 3 * n_h] -= m1 @ sums[: n_before + n_h].T
            s[: 3 * n_h, n_before:] = 0.0  # a head does not read its own layer
            scores[rows, : n_before + n_h] = s.double()
        b = tokens.shape[0]
        at_answer = diffs[:, :, torch.arange(b, device=w.device) * tokens.shape[1] + answer_pos]
        scores[-1] = torch.einsum("bd,ndb->n", grads[-1], at_answer).double()
    return GradRun(scores, float(total.detach()))


__all__ = ["EdgeGradFn", "GradRun", "MetricFn", "Mix", "edge_grad_fn", "edge_grads",
           "sender_acts"]  # fmt: skip
