"""A tiny random Llama (LlamaForCausalLM) and a Llama-2-style tokenizer, built in code.

The tokenizer is transformers' own LlamaTokenizer (Metaspace "▁" pre-tokenizer, BPE)
over merges that make exactly the task words single pieces with their leading "▁":
months, number words, names and template words, as in Llama-2's vocabulary; digits
stay single characters, so a numeral splits into "▁" + "5" as Llama-2 splits it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from seqcirc.tasks.sets import NAMES, ORDERED_SETS, TEMPLATES
from tests.tasks_fixtures import prefix_merges

WORDS = (
    *NAMES, *ORDERED_SETS["months"], *ORDERED_SETS["number_words"],
    *(w for t in TEMPLATES.values() for w in t.split()),
)  # fmt: skip


def llama_tokenizer() -> LlamaTokenizer:
    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for ch in sorted(set("▁.,0123456789" + "".join(WORDS))):
        vocab.setdefault(ch, len(vocab))
    merges = prefix_merges(["▁" + w for w in WORDS], vocab)
    return LlamaTokenizer(vocab=vocab, merges=merges)


def tiny_llama(vocab_size: int, seed: int = 0, **overrides: Any) -> LlamaForCausalLM:
    """3 layers, 4 query heads sharing 2 kv heads, d_model 64, a non-default rope theta
    (so a forward that ignored the config would be caught); large random weights so
    every ablation moves the logits visibly."""
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rope_theta=500.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False,
    )  # fmt: skip
    kwargs.update(overrides)
    model = LlamaForCausalLM(LlamaConfig(**kwargs)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.3)
    return model


def bridge_of_llama(hf: LlamaForCausalLM):  # type: ignore[no-untyped-def]
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    return build_bridge_from_module(hf, "LlamaForCausalLM", hf_config=hf.config)


def save_tiny_llama(folder: Path) -> LlamaForCausalLM:
    """The tiny Llama and its tokenizer in Hugging Face format (safetensors)."""
    tok = llama_tokenizer()
    model = tiny_llama(len(tok))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return model
