"""Receiver gradients of the edge graph: what edge attribution (EAP, EAP-IG) reads.

The evaluator's edge forward (forward.gpt2_edges.forward_edges) ablates edge s -> r by adding
r_e (v_s - a_s) to receiver r's own input, r_e the edge's removed weight (0: kept, 1:
ablated), v_s the sender's ablation value and a_s its activation in that pass. At r = 0
the derivative of the metric with respect to every removed weight is

    dm/dr_e = sum over rows and positions of g_r . (v_s - a_s),

g_r the gradient of the metric at r's own input: a head's q, k or v input (before its
layer norm), an MLP's input (before its layer norm), the final residual at the answer.
One forward and one backward give every g_r: the heads of a layer share one layer norm
in the forward, and each head's q/k/v gradient is taken back through it by hand (its
Jacobian per token), so no per-receiver copy of the residual stream is kept; the MLP and
logits inputs get zero probes autograd differentiates against. The sums are then one
matrix product per layer against the (ablated - actual) differences of every earlier
sender (`contract`; `edge_grads` does both for EAP, layer by layer).

For EAP-IG a run may replace one sender block's output (the embeddings, the heads of a
layer, or an MLP) by the constant alpha * actual + (1 - alpha) * ablated (`Mix`); the
receivers' gradients are summed over the runs (`ReceiverGrads`) and contracted once with
the differences from the clean run, as the EAP-IG library takes them.

`edge_grad_fn` is the one place an architecture's implementation (`EdgeGradImpl`) is
chosen: these passes on GPT-2; on the generic engine's models EAP alone, by autograd of
the generic edge forward's float keep weights at r = 0 (`generic_edge_grads`); E302
elsewhere. Another edge forward serves by giving the same three passes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import ModelWeights, NodeRun, Replacement, attend, gather_pos
from seqcirc.forward.gpt2 import Gpt2Weights
from seqcirc.forward.gpt2_edges import EdgeValues
from seqcirc.forward.nodes import forward_nodes

# answer logits [B, vocab] (or [B, k]: the `columns` the metric reads) -> metric [B]
MetricFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Mix:
    """Replace one sender block's output by alpha * actual + (1 - alpha) * ablated, a
    constant (no gradient flows through the block in that run, as in the EAP-IG library).
    block: "input" (the embeddings), "attn" (every head of `layer`), "mlp" (MLP `layer`)."""

    block: Literal["input", "attn", "mlp"]
    layer: int
    alpha: float


@dataclass(eq=False)
class ReceiverGrads:
    """The metric's gradient at every receiver's own input, summed over runs (EAP-IG's
    steps share the sender differences, so they are contracted once).

    GPT-2: per layer G [3H + 1, B*S, d] (each head's q, k, v, then the MLP; the heads'
    without the layer norm's mean term) and M1 [3H, B*S] (that term, per token), and the
    final residual's [B, d]."""

    layers: list[tuple[Tensor, Tensor]]
    final: Tensor
    metric_sum: float
    runs: int


@dataclass(frozen=True)
class EdgeGradImpl:
    """An architecture's attribution passes: `receiver_grads` (one forward and one
    backward, added into an earlier result), `contract` (the sums of g_r . (v_s - a_s)
    [n_receivers, n_senders], float64, from the gradients, the ablation values and the
    reference activations of the same rows) and `edge_grads` (both at once for EAP);
    `scratch`, where taken, is a reusable buffer for the sender differences."""

    receiver_grads: Callable[..., ReceiverGrads]
    contract: Callable[..., Tensor]
    edge_grads: Callable[..., tuple[Tensor, NodeRun | None]]  # EAP: one pass, contracted as it goes


def edge_grad_fn(w: object, method: str = "eap") -> EdgeGradImpl:
    """The attribution passes of `w`'s architecture: all of them on the hand-written GPT-2
    edge forward; EAP alone (`generic_edge_grads`) on the generic engine's models; E302
    for the rest."""
    from seqcirc.forward.hooked import HookedModel

    if isinstance(w, Gpt2Weights):
        return EdgeGradImpl(receiver_grads, contract, edge_grads)
    if isinstance(w, HookedModel) and method == "eap":
        return EdgeGradImpl(_refused, _refused, generic_edge_grads)
    if isinstance(w, HookedModel):
        raise EvaluationError(
            f"{method} is not implemented on the generic engine's models "
            f"({getattr(w, 'architecture', 'this architecture')})",
            code="E302",
            hint="use --method eap (or exact) here; the integrated-gradient methods run on "
            "GPT-2-architecture models",
        )
    raise EvaluationError(
        f"edge attribution is not implemented for {getattr(w, 'architecture', 'these')} models",
        code="E302",
        hint="attribution and edge discovery need the edge forward, which runs on "
        "GPT-2-architecture models (gpt2-small ... gpt2-xl, seqcirc-mini) for now",
    )


def _refused(*_args: object, **_kwargs: object) -> NoReturn:
    raise AssertionError("edge_grad_fn gives the generic engine EAP alone")


def generic_edge_grads(
    w: object, tokens: Tensor, answer_pos: Tensor, values: object, metric: MetricFn,
    *, columns: Tensor | None = None, scratch: Tensor | None = None,
) -> tuple[Tensor, None]:  # fmt: skip
    """EAP on the generic engine: the derivative of the summed metric with respect to
    every edge's removed weight at r = 0, by autograd through its edge forward
    (forward.hooked_edges, float keep weights), [n_receivers, n_senders] float64 (0 where
    no edge is); one forward and one backward. No clean run comes back (None): the
    generic engine's attribution prepares first."""
    from seqcirc.forward import hooked_edges as he
    from seqcirc.forward import hooked_graph as hg
    from seqcirc.forward.hooked import HookedModel

    assert isinstance(w, HookedModel) and isinstance(values, he.SenderValues)
    graph = hg.edge_graph(w)
    keep = torch.ones(graph.n_edges, dtype=w.dtype, device=tokens.device, requires_grad=True)
    with torch.enable_grad():
        removed = hg.removed_weights(graph, keep, w.dtype)
        logits = he.forward_edges(w, tokens, answer_pos, removed, values)
        if columns is not None:
            logits = logits.gather(1, columns)
        (g_keep,) = torch.autograd.grad(metric(logits).sum(), keep)
    scores = torch.zeros(graph.n_receivers, graph.n_senders, dtype=torch.float64,
                         device=tokens.device)  # fmt: skip
    scores[graph.rows.to(tokens.device), graph.cols.to(tokens.device)] = -g_keep.double()
    return scores, None


def sender_run(w: ModelWeights, tokens: Tensor, answer_pos: Tensor) -> NodeRun:
    """The rows' clean run (no gradient): answer logits and every activation captured."""
    with torch.inference_mode():
        return forward_nodes(w, tokens, answer_pos, capture=True, logits=True)


def sender_acts_of(w: ModelWeights, run: NodeRun) -> EdgeValues:
    """Every sender's activation [B, S, ...] in a captured run: the embeddings, each
    head's output (z through its W_O), each MLP's output."""
    assert run.embed is not None
    return EdgeValues.from_nodes(w, run.embed, Replacement(run.z, run.mlp))


def _mixed(mix: Mix | None, block: str, layer: int, actual: Tensor, ablated: Tensor) -> Tensor:
    if mix is None or mix.block != block or mix.layer != layer:
        return actual
    return mix.alpha * actual.detach() + (1.0 - mix.alpha) * ablated


@dataclass
class _Taped:
    """What the forward keeps for the scores: each layer's residual before its heads,
    its heads' z and its MLP's output (detached), its fused q/k/v projection and MLP probe
    (differentiated), and the embeddings."""

    embed: Tensor
    resid: list[Tensor]
    z: list[Tensor]
    mlp_out: list[Tensor]
    qkv: list[Tensor]
    mlp_probe: list[Tensor]
    final: Tensor


def _forward(w: Gpt2Weights, tokens: Tensor, answer_pos: Tensor, values: EdgeValues,
             mix: Mix | None, columns: Tensor | None) -> tuple[Tensor, Tensor, _Taped]:  # fmt: skip
    """Answer logits [B, vocab] (or of `columns` [B, k] only), the final probe [B, d], and
    the tape (its `final`: the residual at the answer)."""
    n_h, d = w.n_heads, w.d_model
    embed = w.embed(tokens)
    resid = _mixed(mix, "input", 0, embed, values.embed).detach().requires_grad_()
    tape = _Taped(embed, [], [], [], [], [], embed)
    for layer in range(w.n_layers):
        tape.resid.append(resid.detach())
        x = F.layer_norm(resid, (d,), w.ln1_w[layer], w.ln1_b[layer], w.eps)
        qkv = (x @ w.W_qkv[layer] + w.b_qkv[layer]).unflatten(-1, (3, n_h, w.d_head))
        tape.qkv.append(qkv)
        z = attend(qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :])
        tape.z.append(z.detach())
        out = z.flatten(-2) @ w.W_O[layer].flatten(0, 1)
        out = _mixed(mix, "attn", layer, out, values.head_out[layer].sum(-2))
        resid = resid + out + w.b_O[layer]
        probe = torch.zeros_like(resid, requires_grad=True)
        tape.mlp_probe.append(probe)
        out = w.mlp(layer, resid + probe)
        tape.mlp_out.append(out.detach())
        resid = resid + _mixed(mix, "mlp", layer, out, values.mlp[layer])
    final_probe = torch.zeros(resid.shape[0], d, dtype=resid.dtype, device=resid.device,
                              requires_grad=True)  # fmt: skip
    final = gather_pos(resid, answer_pos) + final_probe
    tape.final = final.detach()
    if columns is None:
        return w.unembed(final), final_probe, tape
    x = F.layer_norm(final, (w.d_model,), w.lnf_w, w.lnf_b, w.eps)
    logits = torch.einsum("bd,bkd->bk", x, w.W_U.T[columns]) + w.b_U[columns]
    return logits, final_probe, tape


def _diffs(
    w: Gpt2Weights, values: EdgeValues, embed: Tensor, mlp: Sequence[Tensor], *,
    z: Sequence[Tensor] | None = None, heads: Sequence[Tensor] = (), scratch: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """(ablated - actual) of every sender [n_senders, B*S, d], sender-major, so each
    layer's senders are one contiguous block of rows for the score products. The heads'
    actual outputs: from their z [B, S, H, dh] (each through its W_O, written in place)
    or given, [B, S, H, d]. `scratch`: a 1-D buffer to write into when it is large
    enough (reused across chunks: a fresh tensor this large is page-faulted anew)."""
    b, s, d = embed.shape
    n_h = w.n_heads
    shape = (1 + w.n_layers * (n_h + 1), b, s, d)
    numel = shape[0] * b * s * d
    if scratch is not None and scratch.numel() >= numel:
        out = scratch[:numel].view(shape)
    else:
        out = torch.empty(shape, dtype=embed.dtype, device=embed.device)
    torch.sub(values.embed, embed, out=out[0])
    for layer in range(w.n_layers):
        i = 1 + layer * (n_h + 1)
        block = out[i : i + n_h]  # [H, B, S, d]
        v_h = values.head_out[layer]  # [(B,) S, H, d]
        v_h = v_h.permute(2, 0, 1, 3) if v_h.dim() == 4 else v_h.permute(1, 0, 2)[:, None]
        if z is not None:
            z_h = z[layer].reshape(b * s, n_h, -1).transpose(0, 1).contiguous()
            torch.bmm(z_h, w.W_O[layer], out=block.view(n_h, b * s, d))
            torch.sub(v_h, block, out=block)
        else:
            torch.sub(v_h, heads[layer].permute(2, 0, 1, 3), out=block)
        torch.sub(values.mlp[layer], mlp[layer], out=out[i + n_h])
    return out.reshape(-1, b * s, d)


_SCALED: weakref.WeakKeyDictionary[Gpt2Weights, dict[int, Tensor]] = weakref.WeakKeyDictionary()


def _scaled_qkv(w: Gpt2Weights, layer: int) -> Tensor:
    """Each receiver's q/k/v weights times the layer norm's gain, [3H, dh, d] (cached)."""
    cache = _SCALED.setdefault(w, {})
    if layer not in cache:  # W_qkv [d, 3d], columns (q|k|v, head, dh)
        scaled = (w.W_qkv[layer] * w.ln1_w[layer][:, None]).T.contiguous()
        cache[layer] = scaled.reshape(3 * w.n_heads, w.d_head, w.d_model)
    return cache[layer]


def _receivers(w: Gpt2Weights, layer: int, resid: Tensor, g_qkv: Tensor, g_mlp: Tensor,
               out: Tensor) -> Tensor:  # fmt: skip
    """The layer's receivers' input gradients, written to `out` [3H + 1, B*S, d] (each
    head's q, k, v, then the MLP: one buffer for every layer, since fresh large tensors
    are page-faulted anew), and, for the heads, the per-token mean each owes [3H, B*S].

    A head's gradient at its own input is its q/k/v gradient taken back through its
    projection and the layer norm: rstd (u - mean(u) - xhat mean(u xhat)), u = gamma W g.
    Returned without the mean(u) term, which the caller subtracts against the senders'
    per-token sums, so the only pass over [3H, B*S, d] is the one writing it."""
    b, s, d = resid.shape
    wg_t = _scaled_qkv(w, layer)  # [3H, dh, d]
    n_r, dh = wg_t.shape[:2]
    mu = resid.mean(-1, keepdim=True)
    rstd = (resid.var(-1, unbiased=False, keepdim=True) + w.eps).rsqrt()  # [B, S, 1]
    xhat = ((resid - mu) * rstd).reshape(b * s, d)
    g = (g_qkv * rstd[..., None, None]).reshape(b * s, n_r, dh)  # rstd folded in
    u = torch.bmm(g.transpose(0, 1).contiguous(), wg_t, out=out[:n_r])  # [3H, B*S, d]
    m1 = torch.einsum("brh,rh->rb", g, wg_t.sum(-1)) / d  # mean over d of u
    m2 = torch.einsum("rbd,bd->rb", u, xhat) / d  # mean over d of u xhat
    u.addcmul_(m2[:, :, None], xhat[None], value=-1.0)
    out[n_r] = g_mlp.reshape(b * s, d)
    return m1


def receiver_grads(
    w: ModelWeights,
    tokens: Tensor,
    answer_pos: Tensor,
    values: EdgeValues,
    metric: MetricFn,
    *,
    mix: Mix | None = None,
    columns: Tensor | None = None,
    into: ReceiverGrads | None = None,
) -> ReceiverGrads:
    """One forward and one backward of rows `tokens` [B, S]: every receiver's input
    gradient of the summed metric, added into `into` if given.

    values: the rows' ablation values (for `mix`, the EAP-IG interpolation of one block);
    `columns` [B, k]: the only logits `metric` reads (logit difference: 2 of the
    vocabulary), so the rest of the unembedding is skipped."""
    assert isinstance(w, Gpt2Weights)
    n_h, n_layers = w.n_heads, w.n_layers
    with torch.enable_grad():
        logits, final_probe, tape = _forward(w, tokens, answer_pos, values, mix, columns)
        total = metric(logits).sum()
        wrt = [*tape.qkv, *tape.mlp_probe, final_probe]
        grads = torch.autograd.grad(total, wrt, allow_unused=True, materialize_grads=True)
    b, s, d = tape.resid[0].shape
    with torch.no_grad():
        layers = []
        temp = None if into is None else torch.empty(3 * n_h + 1, b * s, d, dtype=w.dtype,
                                                     device=w.device)  # fmt: skip
        for layer in range(n_layers):
            g_qkv, g_mlp = grads[layer], grads[n_layers + layer]
            if into is None:
                buf = torch.empty(3 * n_h + 1, b * s, d, dtype=w.dtype, device=w.device)
                layers.append((buf, _receivers(w, layer, tape.resid[layer], g_qkv, g_mlp, buf)))
                continue
            assert temp is not None
            m1 = _receivers(w, layer, tape.resid[layer], g_qkv, g_mlp, temp)
            into.layers[layer][0].add_(temp)
            into.layers[layer][1].add_(m1)
    if into is None:
        return ReceiverGrads(layers, grads[-1], float(total.detach()), 1)
    into.final += grads[-1]
    into.metric_sum += float(total.detach())
    into.runs += 1
    return into


def contract(
    w: ModelWeights, grads: ReceiverGrads, values: EdgeValues, reference: EdgeValues,
    tokens: Tensor, answer_pos: Tensor, scratch: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """sum over rows (and runs) of g_r . (v_s - a_s) for every receiver r and sender s
    [n_receivers, n_senders], float64; a_s from `reference`: one matrix product per layer
    against the differences of every sender before it."""
    assert isinstance(w, Gpt2Weights)
    n_h, n_layers = w.n_heads, w.n_layers
    with torch.no_grad():
        diffs = _diffs(w, values, reference.embed, reference.mlp, heads=reference.head_out,
                       scratch=scratch)  # fmt: skip
        flat, sums = diffs.flatten(1), diffs.sum(-1)
        scores = torch.zeros(n_layers * (3 * n_h + 1) + 1, diffs.shape[0], dtype=torch.float64,
                             device=w.device)  # fmt: skip
        for layer, (g, m1) in enumerate(grads.layers):
            _layer_scores(scores, layer, n_h, g, m1, flat, sums)
        scores[-1] = _final_scores(grads.final, diffs, tokens, answer_pos)
    return scores


def edge_grads(
    w: ModelWeights, tokens: Tensor, answer_pos: Tensor, values: EdgeValues, metric: MetricFn,
    *, columns: Tensor | None = None, scratch: Tensor | None = None,
) -> tuple[Tensor, NodeRun]:  # fmt: skip
    """EAP's one pass: the scores [n_receivers, n_senders] (float64) of rows `tokens`,
    differences from this same clean run, each layer's receivers contracted as soon as
    they are known (one buffer for all layers: fresh large tensors are page-faulted);
    and that clean run (answer logits [B, vocab], every activation: what prepare's
    clean sweep would give)."""
    assert isinstance(w, Gpt2Weights)
    n_h, n_layers = w.n_heads, w.n_layers
    with torch.enable_grad():
        logits, final_probe, tape = _forward(w, tokens, answer_pos, values, None, columns)
        total = metric(logits).sum()
        wrt = [*tape.qkv, *tape.mlp_probe, final_probe]
        grads = torch.autograd.grad(total, wrt, allow_unused=True, materialize_grads=True)
    per = 3 * n_h + 1
    with torch.no_grad():
        diffs = _diffs(w, values, tape.embed, tape.mlp_out, z=tape.z, scratch=scratch)
        flat, sums = diffs.flatten(1), diffs.sum(-1)
        g = torch.empty(per, *diffs.shape[1:], dtype=diffs.dtype, device=diffs.device)
        scores = torch.zeros(n_layers * per + 1, diffs.shape[0], dtype=torch.float64,
                             device=w.device)  # fmt: skip
        for layer in range(n_layers):
            m1 = _receivers(w, layer, tape.resid[layer], grads[layer], grads[n_layers + layer], g)
            _layer_scores(scores, layer, n_h, g, m1, flat, sums)
        scores[-1] = _final_scores(grads[-1], diffs, tokens, answer_pos)
        full = logits.detach() if columns is None else w.unembed(tape.final)
    run = NodeRun(full, tape.final, tuple(tape.z), tuple(tape.mlp_out), tape.embed)
    return scores, run


def _layer_scores(scores: Tensor, layer: int, n_h: int, g: Tensor, m1: Tensor, flat: Tensor,
                  sums: Tensor) -> None:  # fmt: skip
    """One layer's rows of the score matrix: its receivers' gradients [3H + 1, B*S, d]
    (less the heads' mean terms m1) against every earlier sender's differences."""
    per, n_before = 3 * n_h + 1, 1 + layer * (n_h + 1)
    s = g.flatten(1) @ flat[: n_before + n_h].T  # [3H + 1, n_before + H]
    s[: 3 * n_h] -= m1 @ sums[: n_before + n_h].T
    s[: 3 * n_h, n_before:] = 0.0  # a head does not read its own layer
    scores[layer * per : (layer + 1) * per, : n_before + n_h] = s.double()


def _final_scores(g_final: Tensor, diffs: Tensor, tokens: Tensor, answer_pos: Tensor) -> Tensor:
    rows = torch.arange(tokens.shape[0], device=tokens.device) * tokens.shape[1] + answer_pos
    return torch.einsum("bd,nbd->n", g_final, diffs[:, rows]).double()


__all__ = ["EdgeGradImpl", "MetricFn", "Mix", "ReceiverGrads", "contract", "edge_grad_fn",
           "edge_grads", "generic_edge_grads", "receiver_grads", "sender_acts_of",
           "sender_run"]  # fmt: skip
