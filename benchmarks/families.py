"""The benchmark's random models of other families at a given shape (benchmarks/gpt2_shape.py
has the GPT-2 one): GPT-NeoX (parallel attention and MLP, rotary on a quarter of each
head, as Pythia) and Llama (RMSNorm, rotary, SwiGLU, grouped-query attention with a
third as many kv heads, as Llama 3). Same layers, heads, width, vocabulary and context
as the shape; the MLP widths give about GPT-2's parameter count (4d; SwiGLU 8d/3).
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("gpt2", "neox", "llama")


def family_model(family: str, shape: Any) -> tuple[Any, str]:
    """(Hugging Face model with random weights, its architecture name); seed first."""
    import transformers as tf

    d, heads = shape.d_model, shape.n_heads
    if family == "gpt2":
        cfg = tf.GPT2Config(
            n_layer=shape.n_layers, n_head=heads, n_embd=d, vocab_size=shape.vocab,
            n_positions=shape.n_positions, initializer_range=shape.init_range,
        )  # fmt: skip
        return tf.GPT2LMHeadModel(cfg).eval(), "GPT2LMHeadModel"
    if family == "neox":
        cfg = tf.GPTNeoXConfig(
            num_hidden_layers=shape.n_layers, num_attention_heads=heads, hidden_size=d,
            intermediate_size=4 * d, vocab_size=shape.vocab,
            max_position_embeddings=shape.n_positions, rotary_pct=0.25,
            use_parallel_residual=True, initializer_range=shape.init_range,
        )  # fmt: skip
        return tf.GPTNeoXForCausalLM(cfg).eval(), "GPTNeoXForCausalLM"
    if family == "llama":
        kv = max(1, heads // 3) if heads % 3 == 0 else 1
        cfg = tf.LlamaConfig(
            num_hidden_layers=shape.n_layers, num_attention_heads=heads, num_key_value_heads=kv,
            hidden_size=d, intermediate_size=-(-8 * d // 3), vocab_size=shape.vocab,
            max_position_embeddings=shape.n_positions, initializer_range=shape.init_range,
        )  # fmt: skip
        return tf.LlamaForCausalLM(cfg).eval(), "LlamaForCausalLM"
    raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
