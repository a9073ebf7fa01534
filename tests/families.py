"""Tiny random Hugging Face models of every family that both the installed transformers
and TransformerLens's TransformerBridge support, built in code (no download).

Each family is one row of FAMILIES: its transformers class, the config that makes it
tiny (2 layers, d_model 32, 4 query heads, grouped-query attention where the family has
it) and the settings that make its quirks visible (soft-capping small enough to bend the
logits, a sliding window shorter than the prompts, partial rotary, biases). `build`
gives the model with large random weights, so every ablation moves the logits; `save`
writes it as a folder seqcirc loads (config.json, model.safetensors and a tokenizer whose
task words are single tokens: the word-level one the task tests use, or for Qwen2 a
byte-level BPE, since transformers 5 reloads any tokenizer beside a qwen2 config as its
own Qwen2Tokenizer, which would split the word-level vocabulary into letters). README's
table of supported architectures lists these rows (scripts/architectures.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tests.tasks_fixtures import word_level_tokenizer

D_MODEL, N_LAYERS, N_HEADS, N_KV, D_HEAD, D_MLP, N_CTX = 32, 2, 4, 2, 8, 48, 64

_ROPE = dict(
    hidden_size=D_MODEL, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
    intermediate_size=D_MLP, max_position_embeddings=N_CTX,
)  # fmt: skip
_GQA = dict(_ROPE, num_key_value_heads=N_KV)


@dataclass(frozen=True)
class Family:
    """One architecture family: README's row and how to build its tiny model."""

    key: str  # short id, used in test ids and file names
    name: str  # README's name for it
    hf_class: str  # the transformers model class (config.json's architectures[0])
    config_class: str
    config: dict[str, Any]
    exercises: str  # what this family adds that others do not
    examples: str  # hub models of this family
    tokens: dict[str, Any] = field(default_factory=dict)  # bos/eos/pad ids in the config
    tokenizer: str = "word"  # "word" (word-level) or "qwen2" (byte-level BPE, Qwen2Tokenizer)

    def hf_config(self, vocab_size: int) -> Any:
        import transformers

        cls = getattr(transformers, self.config_class)
        cfg = cls(vocab_size=vocab_size, **self.config, **self.tokens)
        cfg.architectures = [self.hf_class]
        return cfg


_IDS = dict(bos_token_id=1, eos_token_id=1, pad_token_id=0)

FAMILIES: tuple[Family, ...] = (
    Family(
        "gpt2",
        "GPT-2",
        "GPT2LMHeadModel",
        "GPT2Config",
        dict(n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_inner=D_MLP, n_positions=N_CTX),
        "learned positions, fused qkv (Conv1D), LayerNorm",
        "gpt2, gpt2-medium ... gpt2-xl",
        dict(bos_token_id=1, eos_token_id=1),
    ),
    Family(
        "neox",
        "GPT-NeoX",
        "GPTNeoXForCausalLM",
        "GPTNeoXConfig",
        dict(_ROPE, rotary_pct=0.5, use_parallel_residual=True),
        "parallel attention and MLP, partial rotary (half of each head), fused per-head qkv",
        "EleutherAI/pythia-70m ... pythia-12b",
        _IDS,
    ),
    Family(
        "llama",
        "Llama",
        "LlamaForCausalLM",
        "LlamaConfig",
        dict(_GQA, rope_theta=500.0),
        "grouped-query attention, RMSNorm, SwiGLU",
        "meta-llama/Llama-2-7b-hf, Llama-3.x",
        _IDS,
    ),
    Family(
        "qwen2",
        "Qwen2",
        "Qwen2ForCausalLM",
        "Qwen2Config",
        dict(_GQA),
        "q/k/v biases with grouped-query attention",
        "Qwen/Qwen2-0.5B, Qwen2.5-*",
        dict(bos_token_id=0, eos_token_id=0),
        "qwen2",
    ),
    Family(
        "mistral",
        "Mistral",
        "MistralForCausalLM",
        "MistralConfig",
        dict(_GQA, sliding_window=4),
        "sliding-window attention (a window of 4 tokens here)",
        "mistralai/Mistral-7B-v0.1",
        _IDS,
    ),
    Family(
        "gemma2",
        "Gemma 2",
        "Gemma2ForCausalLM",
        "Gemma2Config",
        dict(
            _GQA,
            head_dim=D_HEAD,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=5.0,
            query_pre_attn_scalar=D_HEAD,
            sliding_window=4,
        ),
        "attention and final-logit soft-capping, post-attention and post-MLP norms, "
        "embeddings scaled by sqrt(d_model), tied embeddings, RMSNorm (1 + w), "
        "alternating sliding-window layers",
        "google/gemma-2-2b, gemma-2-9b",
        dict(bos_token_id=1, eos_token_id=1, pad_token_id=0),
    ),
    Family(
        "olmo2",
        "OLMo 2",
        "Olmo2ForCausalLM",
        "Olmo2Config",
        dict(_GQA),
        "norms after attention and MLP only (none before), q/k norms over all heads",
        "allenai/OLMo-2-0425-1B",
        _IDS,
    ),
    Family(
        "phi3",
        "Phi-3",
        "Phi3ForCausalLM",
        "Phi3Config",
        dict(_GQA, partial_rotary_factor=0.5),
        "fused qkv_proj and gate_up_proj, partial rotary",
        "microsoft/Phi-3-mini-4k-instruct",
        _IDS,
    ),
    Family(
        "gptj",
        "GPT-J",
        "GPTJForCausalLM",
        "GPTJConfig",
        dict(
            n_layer=N_LAYERS,
            n_head=N_HEADS,
            n_embd=D_MODEL,
            n_inner=D_MLP,
            n_positions=N_CTX,
            rotary_dim=4,
        ),
        "parallel attention and MLP sharing one LayerNorm, interleaved partial rotary",
        "EleutherAI/gpt-j-6b",
        dict(bos_token_id=1, eos_token_id=1),
    ),
    Family(
        "qwen3",
        "Qwen3",
        "Qwen3ForCausalLM",
        "Qwen3Config",
        dict(_GQA, head_dim=D_HEAD),
        "per-head q/k RMSNorm",
        "Qwen/Qwen3-0.6B ... Qwen3-32B",
        _IDS,
    ),
    Family(
        "gemma3",
        "Gemma 3 (text)",
        "Gemma3ForCausalLM",
        "Gemma3TextConfig",
        dict(
            _GQA,
            head_dim=D_HEAD,
            query_pre_attn_scalar=D_HEAD,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"],
        ),
        "per-head q/k norms, pre and post norms, scaled embeddings, local and global rope",
        "google/gemma-3-1b-pt",
        _IDS,
    ),
    Family(
        "granite",
        "Granite",
        "GraniteForCausalLM",
        "GraniteConfig",
        dict(
            _GQA,
            residual_multiplier=0.5,
            embedding_multiplier=2.0,
            attention_multiplier=0.3,
            logits_scaling=2.0,
        ),
        "multipliers: embeddings x2, each attention and MLP output x0.5 before the residual "
        "add, attention scale 0.3, logits / 2",
        "ibm-granite/granite-3.0-2b-base",
        _IDS,
    ),
    Family(
        "cohere",
        "Cohere",
        "CohereForCausalLM",
        "CohereConfig",
        dict(_GQA, logit_scale=0.5),
        "parallel attention and MLP sharing one bias-free LayerNorm, interleaved rotary, "
        "logit scale",
        "CohereForAI/c4ai-command-r-v01",
        _IDS,
    ),
    Family(
        "phi",
        "Phi-2",
        "PhiForCausalLM",
        "PhiConfig",
        dict(_ROPE, partial_rotary_factor=0.5),
        "parallel attention and MLP sharing one LayerNorm, biases everywhere, partial rotary",
        "microsoft/phi-2, phi-1_5",
        _IDS,
    ),
)

BY_KEY = {f.key: f for f in FAMILIES}


def tokenizer(family: Family | None = None) -> Any:
    """A tokenizer whose task words are single tokens: word-level (tests/tasks_fixtures.py),
    or for the "qwen2" kind a byte-level BPE Qwen2Tokenizer whose merges make each task
    word with its leading space ("Ġword") and each name at a prompt's start one token."""
    if family is None or family.tokenizer == "word":
        return word_level_tokenizer()
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    from seqcirc.tasks.sets import NAMES
    from tests.tasks_fixtures import BOS, UNK, prefix_merges, task_vocabulary

    words = [w for w in task_vocabulary() if w not in (UNK, BOS, ".", ",")]
    vocab: dict[str, int] = {"<|endoftext|>": 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    # bare names only: a bare Spanish month's merges ("ma" of "marzo") would split "Emma"
    merges = prefix_merges(["Ġ" + w for w in words] + list(NAMES), vocab)
    end = "<|endoftext|>"
    return Qwen2Tokenizer(vocab=vocab, merges=merges, bos_token=end, eos_token=end, unk_token=None)


def build(family: Family, vocab_size: int, seed: int = 0) -> Any:
    """The family's tiny model in eval mode, with large random weights: norm weights
    around 1 (Gemma's (1 + w) norms around 1 too), everything else N(0, 0.3^2)."""
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, family.hf_class)(family.hf_config(vocab_size)).eval()
    one_plus = family.key.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln" in name:
                p.uniform_(-0.5, 0.5) if one_plus else p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.3)
    return model


def bridge_of(model: Any) -> Any:
    """A TransformerBridge around an in-memory model (no copy: it wraps these modules)."""
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    return build_bridge_from_module(model, model.config.architectures[0], hf_config=model.config)


def save(family: Family, folder: Path, seed: int = 0) -> Any:
    """The family's tiny model and its tokenizer as a folder seqcirc loads."""
    tok = tokenizer(family)
    model = build(family, len(tok), seed)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return model
