"""Where each Hugging Face family keeps what the slow reference (tests/reference_hf.py)
hooks: blocks, norms, the q/k/v projections (fused ones split per family), the output
projection, the MLP and what the block adds to the residual stream. Read off the
transformers 5 modeling files; tests/test_forward_families.py checks every layout
against TransformerLens's hooks on the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

Sizes = dict[str, int]  # d, H (query heads), KV (kv heads), dh (head width), L (layers)


@dataclass(frozen=True)
class QKV:
    """A module whose output holds q, k and/or v of every head: the chain of modules that
    computes it from the attention's normed input (paths from the block), and for each
    kind where head i's slice starts, offset + i * stride (d_head wide), from the sizes."""

    chain: tuple[str, ...]
    parts: dict[str, Callable[[Sizes], tuple[int, int]]]  # kind -> sizes -> (offset, stride)


@dataclass(frozen=True)
class Layout:
    """Module paths of one family (blocks and the final norm from the model; the rest
    from a block)."""

    blocks: str = "model.layers"
    final_norm: str = "model.norm"
    attn_norm: str | None = "input_layernorm"  # None: attention reads the residual (OLMo 2)
    qkv: tuple[QKV, ...] = ()
    out_proj: str = "self_attn.o_proj"
    attn_post_norm: str | None = None
    mlp: str = "mlp"
    mlp_norm: str | None = "post_attention_layernorm"  # == attn_norm: shared with attention
    mlp_out: str = "mlp"  # the module whose output the block adds to the residual stream
    parallel: bool = False  # attention and MLP both read the block's input
    resid_scale: str | None = None  # config attribute scaling each sublayer's output


def _head(s: Sizes) -> tuple[int, int]:
    return 0, s["dh"]


def separate(prefix: str = "self_attn.", norms: bool = False) -> tuple[QKV, ...]:
    """q_proj, k_proj, v_proj; with `norms`, q_norm and k_norm over all heads at once
    (OLMo 2), part of the chain. Per-head norms (Qwen3, Gemma 3) come after the view
    into heads, outside the hooked module, so HF applies them itself."""
    q = (prefix + "q_proj", prefix + "q_norm") if norms else (prefix + "q_proj",)
    k = (prefix + "k_proj", prefix + "k_norm") if norms else (prefix + "k_proj",)
    return QKV(q, {"q": _head}), QKV(k, {"k": _head}), QKV((prefix + "v_proj",), {"v": _head})


LLAMA = Layout(qkv=separate())
POST_NORMS = replace(
    LLAMA, attn_post_norm="post_attention_layernorm", mlp_norm="pre_feedforward_layernorm",
    mlp_out="post_feedforward_layernorm",
)  # fmt: skip
SHARED_NORM = dict(mlp_norm="input_layernorm", parallel=True)

GPT2_QKV = QKV(
    ("attn.c_attn",),
    {"q": lambda s: (0, s["dh"]), "k": lambda s: (s["d"], s["dh"]),
     "v": lambda s: (2 * s["d"], s["dh"])},
)  # fmt: skip
NEOX_QKV = QKV(  # per head: [q | k | v]
    ("attention.query_key_value",),
    {"q": lambda s: (0, 3 * s["dh"]), "k": lambda s: (s["dh"], 3 * s["dh"]),
     "v": lambda s: (2 * s["dh"], 3 * s["dh"])},
)  # fmt: skip
PHI3_QKV = QKV(  # [q of every head | k of every kv head | v of every kv head]
    ("self_attn.qkv_proj",),
    {"q": lambda s: (0, s["dh"]), "k": lambda s: (s["H"] * s["dh"], s["dh"]),
     "v": lambda s: ((s["H"] + s["KV"]) * s["dh"], s["dh"])},
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {
    "GPT2LMHeadModel": Layout(
        blocks="transformer.h", final_norm="transformer.ln_f", attn_norm="ln_1",
        qkv=(GPT2_QKV,), out_proj="attn.c_proj", mlp_norm="ln_2",
    ),
    "GPTNeoXForCausalLM": Layout(
        blocks="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm", qkv=(NEOX_QKV,),
        out_proj="attention.dense", parallel=True,
    ),
    "LlamaForCausalLM": LLAMA,
    "Qwen2ForCausalLM": LLAMA,
    "MistralForCausalLM": LLAMA,
    "Qwen3ForCausalLM": LLAMA,
    "Phi3ForCausalLM": replace(LLAMA, qkv=(PHI3_QKV,)),
    "Gemma2ForCausalLM": POST_NORMS,
    "Gemma3ForCausalLM": POST_NORMS,
    "Olmo2ForCausalLM": replace(
        POST_NORMS, attn_norm=None, qkv=separate(norms=True), mlp_norm=None,
    ),
    "GPTJForCausalLM": Layout(
        blocks="transformer.h", final_norm="transformer.ln_f", attn_norm="ln_1",
        qkv=separate("attn."), out_proj="attn.out_proj", mlp_norm="ln_1", parallel=True,
    ),
    "GraniteForCausalLM": replace(LLAMA, resid_scale="residual_multiplier"),
    "CohereForCausalLM": replace(LLAMA, **SHARED_NORM),
    "PhiForCausalLM": replace(
        LLAMA, final_norm="model.final_layernorm", out_proj="self_attn.dense", **SHARED_NORM
    ),
}  # fmt: skip


def sizes(config: Any) -> Sizes:
    """d (model width), H (query heads), KV (kv heads), dh (head width), L (layers)."""

    def get(*keys: str) -> int:
        return next(getattr(config, k) for k in keys if getattr(config, k, None))

    d, heads = get("hidden_size", "n_embd"), get("num_attention_heads", "n_head")
    kv = getattr(config, "num_key_value_heads", None) or heads
    dh = getattr(config, "head_dim", None) or d // heads
    return dict(d=d, H=heads, KV=kv, dh=dh, L=get("num_hidden_layers", "n_layer"))
