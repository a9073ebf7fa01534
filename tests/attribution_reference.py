"""A slow, independent reference for edge attribution: a GPT-2 forward written out from
the Hugging Face model's own parameters, head by head, in which every receiver (each
head's q, k and v input, each MLP's input, the final residual) reads its own copy of the
residual stream plus a zero tensor that plain autograd differentiates against. The
score of edge s -> r is then the gradient at r's input dotted with (ablated - clean) of
s, summed over positions and averaged over prompts, by hand.

It shares nothing with seqcirc.forward (no weights class, no fused projections, its own
ablation values from its own corrupted run)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _ln(x: Tensor, ln: torch.nn.Module) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)


def _senders(hf: torch.nn.Module) -> list[str]:
    cfg = hf.config
    out = ["embed"]
    for layer in range(cfg.n_layer):
        out += [f"{layer}.{h}" for h in range(cfg.n_head)] + [f"mlp{layer}"]
    return out


def run(hf: torch.nn.Module, tokens: Tensor, answer_pos: Tensor, *,
        values: dict[str, Tensor] | None = None, replace: tuple[str, float] | None = None,
        ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
    """Answer logits, every receiver's zero probe (requires grad), every sender's output.

    replace (block, alpha): the block's output ("input", "attn{L}", "mlp{L}") becomes the
    constant alpha * actual + (1 - alpha) * values[...] (EAP-IG's interpolations)."""
    cfg, tr = hf.config, hf.transformer
    n_h, d = cfg.n_head, cfg.n_embd
    dh = d // n_h
    seq = tokens.shape[1]
    probes: dict[str, Tensor] = {}
    outs: dict[str, Tensor] = {}

    def probe(name: str, like: Tensor) -> Tensor:
        probes[name] = torch.zeros_like(like, requires_grad=True)
        return like + probes[name]

    def mix(block: str, names: list[str], acts: list[Tensor]) -> list[Tensor]:
        if replace is None or replace[0] != block:
            return acts
        a = replace[1]
        assert values is not None
        return [a * x.detach() + (1 - a) * values[n] for n, x in zip(names, acts, strict=True)]

    x0 = tr.wte.weight[tokens] + tr.wpe.weight[:seq]
    outs["embed"] = x0.detach()
    resid = mix("input", ["embed"], [x0])[0]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    for layer, block in enumerate(tr.h):
        W, b = block.attn.c_attn.weight, block.attn.c_attn.bias
        Wo = block.attn.c_proj.weight
        heads = []
        for h in range(n_h):
            qkv = []
            for t, letter in enumerate("qkv"):
                cols = slice(t * d + h * dh, t * d + (h + 1) * dh)
                x = _ln(probe(f"{layer}.{h}[{letter}]", resid), block.ln_1)
                qkv.append(x @ W[:, cols] + b[cols])
            q, k, v = qkv
            att = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
            att = att.masked_fill(~causal, float("-inf")).softmax(-1)
            heads.append((att @ v) @ Wo[h * dh : (h + 1) * dh])
        names = [f"{layer}.{h}" for h in range(n_h)]
        for n, o in zip(names, heads, strict=True):
            outs[n] = o.detach()
        heads = mix(f"attn{layer}", names, heads)
        resid = resid + sum(heads) + block.attn.c_proj.bias
        m_in = _ln(probe(f"mlp{layer}[mlp]", resid), block.ln_2)
        hidden = F.gelu(m_in @ block.mlp.c_fc.weight + block.mlp.c_fc.bias, approximate="tanh")
        m_out = hidden @ block.mlp.c_proj.weight + block.mlp.c_proj.bias
        outs[f"mlp{layer}"] = m_out.detach()
        resid = resid + mix(f"mlp{layer}", [f"mlp{layer}"], [m_out])[0]
    final = resid[torch.arange(tokens.shape[0]), answer_pos]
    logits = _ln(probe("logits[resid]", final), tr.ln_f) @ hf.lm_head.weight.T
    return logits, probes, outs


def ablation_values(hf: torch.nn.Module, corrupted: Tensor, answer_pos: Tensor,
                    value: str) -> dict[str, Tensor]:  # fmt: skip
    """Each sender's ablation value from the corrupted run: its mean per position, each
    prompt's own (resample), or zero."""
    with torch.no_grad():
        _, _, outs = run(hf, corrupted, answer_pos)
    if value == "mean":
        return {k: v.mean(0) for k, v in outs.items()}
    if value == "zero":
        return {k: torch.zeros_like(v[0]) for k, v in outs.items()}
    return outs


Metric = Callable[[Tensor], Tensor]  # answer logits -> per-prompt metric


def scores(hf: torch.nn.Module, clean: Tensor, answer_pos: Tensor, metric: Metric,
           values: dict[str, Tensor], runs: list[tuple[str, float] | None],
           ) -> dict[str, float]:  # fmt: skip
    """`str(Edge)` -> score: the mean over runs (each an interpolation, None: the clean run)
    of the gradient at the receiver dotted with (value - clean) of the sender, summed over
    positions and averaged over prompts."""
    with torch.no_grad():
        _, _, clean_outs = run(hf, clean, answer_pos)
    diff = {s: values[s] - clean_outs[s] for s in clean_outs}
    total: dict[str, float] = {}
    senders = _senders(hf)
    for replace in runs:
        logits, probes, _ = run(hf, clean, answer_pos, values=values, replace=replace)
        names = list(probes)
        grads = torch.autograd.grad(metric(logits).sum(), [probes[n] for n in names],
                                    allow_unused=True)  # fmt: skip
        for name, g in zip(names, grads, strict=True):
            receiver = name.split("[")[0]
            for s in _upstream(senders, receiver, name.endswith("[mlp]")):
                if g is None:
                    val = 0.0
                elif receiver == "logits":
                    d = diff[s][torch.arange(clean.shape[0]), answer_pos]
                    val = float((g * d).sum() / clean.shape[0])
                else:
                    val = float((g * diff[s]).sum() / clean.shape[0])
                key = f"{s}->{name}"
                total[key] = total.get(key, 0.0) + val / len(runs)
    return total


def _upstream(senders: list[str], receiver: str, is_mlp: bool) -> list[str]:
    """The senders before a receiver: earlier layers; an MLP also reads its layer's heads."""
    if receiver == "logits":
        return senders
    layer = int(receiver[3:]) if is_mlp else int(receiver.split(".")[0])
    out = []
    for s in senders:
        s_layer = -1 if s == "embed" else int(s[3:] if s.startswith("mlp") else s.split(".")[0])
        if s_layer < layer or (is_mlp and s_layer == layer and not s.startswith("mlp")):
            out.append(s)
    return out
