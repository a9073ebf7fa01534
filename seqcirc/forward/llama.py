"""The steps of a Llama-architecture model (LlamaForCausalLM: Llama 1/2/3-style without
rope scaling, TinyLlama, ...) that the node forward (seqcirc.forward.nodes) runs.

The forward mirrors transformers' LlamaModel: RMSNorm before attention and MLP, rotary
position embeddings on q and k (no position embedding in the residual stream),
grouped-query attention (a kv head serves n_heads / n_kv_heads query heads), a SwiGLU
MLP (down(silu(gate(x)) * up(x))), a final RMSNorm, an untied or tied unembedding.
Biases are read where the config has attention_bias / mlp_bias.

Intervention points match TransformerLens hook names, as for GPT-2: a head is ablated
at `blocks.L.attn.hook_z` (its z per query head, before o_proj; o_proj's bias, if any,
stays), an MLP at `blocks.L.hook_mlp_out` (its whole output). The embeddings are not a
node. Edge circuits are not implemented for Llama (E302).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import (
    Layers,
    WeightsBase,
    attend,
    attend_at,
    gather_pos,
    head_columns,
    unembed_bias,
    vocab_columns,
)

ARCHITECTURE = "LlamaForCausalLM"
# rope types this forward computes: plain rope, and linear position interpolation.
ROPE_TYPES = ("default", "linear")


@dataclass(frozen=True, eq=False)
class LlamaWeights(WeightsBase):
    """The weights of a Llama-architecture model; per-layer tuples are views of the
    model's own parameters (no copies), matrices laid out for `x @ W`."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    eps: float
    max_positions: int
    inv_freq: Tensor  # [d_head / 2] rotary frequencies (float32), positions pre-scaled
    W_E: Tensor  # [vocab, d]
    ln1_w: Layers  # [d]
    W_Q: Layers  # [d, H * dh]
    W_K: Layers  # [d, Hkv * dh]
    W_V: Layers  # [d, Hkv * dh]
    b_Q: Layers | None  # [H * dh] where attention_bias
    b_K: Layers | None
    b_V: Layers | None
    W_O: Layers  # [H, dh, d]
    b_O: Layers  # [d] (zeros without attention_bias)
    ln2_w: Layers
    W_gate: Layers  # [d, d_mlp]
    W_up: Layers  # [d, d_mlp]
    W_down: Layers  # [d_mlp, d]
    b_gate: Layers | None  # where mlp_bias
    b_up: Layers | None
    b_down: Layers | None
    lnf_w: Tensor
    W_U: Tensor  # [d, vocab]
    b_U: Tensor  # [vocab]

    @property
    def architecture(self) -> str:
        return ARCHITECTURE

    @property
    def d_mlp(self) -> int:
        return int(self.W_up[0].shape[-1])

    @property
    def n_ctx(self) -> int:
        return self.max_positions

    @property
    def supports_edges(self) -> bool:
        return False

    def embed(self, tokens: Tensor) -> Tensor:
        return self.W_E[tokens]  # no position embedding: rope rotates q and k

    def attention(
        self, layer: int, resid: Tensor, query_pos: Tensor | None = None,
        heads: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        n_h, n_kv, dh = self.n_heads, self.n_kv_heads, self.d_head
        x = rms_norm(resid, self.ln1_w[layer], self.eps)
        cos, sin = self.rotary(resid.shape[1])
        W_Q, b_Q = self.W_Q[layer], _bias(self.b_Q, layer)
        W_K, b_K = self.W_K[layer], _bias(self.b_K, layer)
        W_V, b_V = self.W_V[layer], _bias(self.b_V, layer)
        kv_of = torch.arange(n_h, device=x.device) // (n_h // n_kv)  # as repeat_kv
        if heads is not None:  # only those query heads and the kv heads they read
            kv_heads, kv_of = torch.unique(kv_of[heads], return_inverse=True)
            q_cols, kv_cols = head_columns(heads, dh), head_columns(kv_heads, dh)
            W_Q, b_Q = W_Q[:, q_cols], None if b_Q is None else b_Q[q_cols]
            W_K, b_K = W_K[:, kv_cols], None if b_K is None else b_K[kv_cols]
            W_V, b_V = W_V[:, kv_cols], None if b_V is None else b_V[kv_cols]
            n_h, n_kv = int(heads.shape[0]), int(kv_heads.shape[0])
        k = _linear(x, W_K, b_K).unflatten(-1, (n_kv, dh))
        v = _linear(x, W_V, b_V).unflatten(-1, (n_kv, dh))
        k = _rotate(k, cos[:, None], sin[:, None])
        if n_kv != n_h:  # query head h reads kv head kv_of[h]
            k, v = k[:, :, kv_of], v[:, :, kv_of]
        if query_pos is None:
            q = _linear(x, W_Q, b_Q).unflatten(-1, (n_h, dh))
            return attend(_rotate(q, cos[:, None], sin[:, None]), k, v)
        x_q = gather_pos(x, query_pos)[:, None]  # [B, 1, d]: the one query per row
        q = _linear(x_q, W_Q, b_Q).unflatten(-1, (n_h, dh))
        q = _rotate(q, cos[query_pos][:, None, None], sin[query_pos][:, None, None])
        return attend_at(q, k, v, query_pos)

    def mlp(self, layer: int, resid: Tensor) -> Tensor:
        x = rms_norm(resid, self.ln2_w[layer], self.eps)
        gate = _linear(x, self.W_gate[layer], _bias(self.b_gate, layer))
        up = _linear(x, self.W_up[layer], _bias(self.b_up, layer))
        return _linear(F.silu(gate) * up, self.W_down[layer], _bias(self.b_down, layer))

    def unembed(self, resid: Tensor, columns: Tensor | None = None) -> Tensor:
        W_U, b_U = vocab_columns(self.W_U, self.b_U, columns)
        return rms_norm(resid, self.lnf_w, self.eps) @ W_U + b_U

    def rotary(self, seq: int) -> tuple[Tensor, Tensor]:
        """cos, sin [S, dh] at positions 0..S-1, as transformers' LlamaRotaryEmbedding."""
        pos = torch.arange(seq, device=self.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq.to(self.device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """transformers' LlamaRMSNorm: normalise in float32, scale in the input's dtype."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _bias(b: Layers | None, layer: int) -> Tensor | None:
    return None if b is None else b[layer]


def _linear(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    return x @ W if b is None else x @ W + b


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x [B, S, H, dh] (halves rotated, not interleaved pairs); cos
    and sin broadcast to it ([S, 1, dh] for every position, [B, 1, 1, dh] for one)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _unsupported(what: str, hint: str) -> EvaluationError:
    return EvaluationError(
        f"Llama config {what} is not supported by the evaluator's forward", code="E302", hint=hint
    )


def _rope_inv_freq(cfg: Any, d_head: int) -> Tensor:
    """Rotary frequencies from the config (transformers 5 `rope_parameters`, or the older
    `rope_theta` / `rope_scaling`); E302 for rope types not implemented here."""
    params = dict(getattr(cfg, "rope_parameters", None) or {})
    scaling = dict(getattr(cfg, "rope_scaling", None) or {})
    theta = float(params.get("rope_theta", getattr(cfg, "rope_theta", None) or 10000.0))
    rope_type = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    rope_type = rope_type or "default"
    if rope_type not in ROPE_TYPES:
        raise _unsupported(
            f"rope_scaling type {rope_type!r}",
            f"the forward implements rope types {', '.join(ROPE_TYPES)}; models with other "
            "rope scaling (llama3, yarn, dynamic, longrope) cannot be evaluated yet",
        )
    given = params.get("factor", scaling.get("factor"))
    factor = float(given) if rope_type == "linear" and given is not None else 1.0
    partial = float(getattr(cfg, "partial_rotary_factor", 1.0) or 1.0)
    if partial != 1.0:
        raise _unsupported(
            f"partial_rotary_factor={partial}", "rope on every head dimension is supported"
        )
    exponent = torch.arange(0, d_head, 2, dtype=torch.int64).to(torch.float32) / d_head
    # linear scaling divides positions by the factor: the same as dividing frequencies
    return 1.0 / (theta**exponent) / factor


def extract_llama_weights(hf: Any) -> LlamaWeights:
    """Llama weights from the bridge's Hugging Face LlamaForCausalLM."""
    cfg = hf.config
    if cfg.hidden_act != "silu":
        raise _unsupported(f"hidden_act={cfg.hidden_act!r}", "the MLP must be SwiGLU (silu)")
    layers = list(hf.model.layers)
    n_layers, d = len(layers), int(cfg.hidden_size)
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    d_head = int(getattr(cfg, "head_dim", None) or d // n_heads)
    if n_heads % n_kv:
        raise _unsupported(
            f"num_key_value_heads={n_kv} with {n_heads} heads", "heads must split into kv groups"
        )
    eps = float(cfg.rms_norm_eps)
    inv_freq = _rope_inv_freq(cfg, d_head)

    def per_layer(get: Callable[[Any], Tensor]) -> Layers:
        return tuple(get(b).detach() for b in layers)

    def weight_T(get: Callable[[Any], Any]) -> Layers:  # nn.Linear stores [out, in]
        return per_layer(lambda b: get(b).weight.T)

    def bias(get: Callable[[Any], Any]) -> Layers | None:
        if getattr(get(layers[0]), "bias", None) is None:
            return None
        return per_layer(lambda b: get(b).bias)

    o_bias = bias(lambda b: b.self_attn.o_proj)
    zeros = layers[0].self_attn.o_proj.weight.new_zeros(d)
    return LlamaWeights(
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_model=d,
        d_head=d_head,
        eps=eps,
        max_positions=int(cfg.max_position_embeddings),
        inv_freq=inv_freq,
        W_E=hf.model.embed_tokens.weight.detach(),
        ln1_w=per_layer(lambda b: b.input_layernorm.weight),
        W_Q=weight_T(lambda b: b.self_attn.q_proj),
        W_K=weight_T(lambda b: b.self_attn.k_proj),
        W_V=weight_T(lambda b: b.self_attn.v_proj),
        b_Q=bias(lambda b: b.self_attn.q_proj),
        b_K=bias(lambda b: b.self_attn.k_proj),
        b_V=bias(lambda b: b.self_attn.v_proj),
        W_O=per_layer(lambda b: b.self_attn.o_proj.weight.T.reshape(n_heads, d_head, d)),
        b_O=o_bias if o_bias is not None else tuple(zeros for _ in layers),
        ln2_w=per_layer(lambda b: b.post_attention_layernorm.weight),
        W_gate=weight_T(lambda b: b.mlp.gate_proj),
        W_up=weight_T(lambda b: b.mlp.up_proj),
        W_down=weight_T(lambda b: b.mlp.down_proj),
        b_gate=bias(lambda b: b.mlp.gate_proj),
        b_up=bias(lambda b: b.mlp.up_proj),
        b_down=bias(lambda b: b.mlp.down_proj),
        lnf_w=hf.model.norm.weight.detach(),
        W_U=hf.lm_head.weight.detach().T,
        b_U=unembed_bias(hf),
    )
