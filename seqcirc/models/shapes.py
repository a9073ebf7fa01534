"""Model shapes known without loading weights, so `seqcirc check` can validate a file
offline: a table of hub models, a local folder's config.json, or the bundled model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BUNDLED_NAME = "seqcirc-mini"
BUNDLED_DIR = Path(__file__).parents[1] / "bundled" / "seqcirc-mini"


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    architecture: str


# Friendly names -> Hugging Face hub ids.
ALIASES: dict[str, str] = {
    "gpt2-small": "gpt2",
    "gpt2": "gpt2",
    "gpt2-medium": "gpt2-medium",
    "gpt2-large": "gpt2-large",
    "gpt2-xl": "gpt2-xl",
    "pythia-70m": "EleutherAI/pythia-70m",
    "pythia-160m": "EleutherAI/pythia-160m",
    "pythia-410m": "EleutherAI/pythia-410m",
    "pythia-1b": "EleutherAI/pythia-1b",
    "pythia-1.4b": "EleutherAI/pythia-1.4b",
    "pythia-2.8b": "EleutherAI/pythia-2.8b",
    "pythia-6.9b": "EleutherAI/pythia-6.9b",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
}

_NEOX = "GPTNeoXForCausalLM"

# Shapes of the hub models above, from their published config.json files.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "gpt2": ModelShape(12, 12, 768, 64, 3072, 50257, 1024, "GPT2LMHeadModel"),
    "gpt2-medium": ModelShape(24, 16, 1024, 64, 4096, 50257, 1024, "GPT2LMHeadModel"),
    "gpt2-large": ModelShape(36, 20, 1280, 64, 5120, 50257, 1024, "GPT2LMHeadModel"),
    "gpt2-xl": ModelShape(48, 25, 1600, 64, 6400, 50257, 1024, "GPT2LMHeadModel"),
    "EleutherAI/pythia-70m": ModelShape(6, 8, 512, 64, 2048, 50304, 2048, _NEOX),
    "EleutherAI/pythia-160m": ModelShape(12, 12, 768, 64, 3072, 50304, 2048, _NEOX),
    "EleutherAI/pythia-410m": ModelShape(24, 16, 1024, 64, 4096, 50304, 2048, _NEOX),
    "EleutherAI/pythia-1b": ModelShape(16, 8, 2048, 256, 8192, 50304, 2048, _NEOX),
    "EleutherAI/pythia-1.4b": ModelShape(24, 16, 2048, 128, 8192, 50304, 2048, _NEOX),
    "EleutherAI/pythia-2.8b": ModelShape(32, 32, 2560, 80, 10240, 50304, 2048, _NEOX),
    "EleutherAI/pythia-6.9b": ModelShape(32, 32, 4096, 128, 16384, 50432, 2048, _NEOX),
    "meta-llama/Llama-2-7b-hf": ModelShape(
        32, 32, 4096, 128, 11008, 32000, 4096, "LlamaForCausalLM"
    ),
    "meta-llama/Llama-2-7b-chat-hf": ModelShape(
        32, 32, 4096, 128, 11008, 32000, 4096, "LlamaForCausalLM"
    ),
}


def resolve_name(name: str) -> str:
    """Friendly alias -> hub id; anything else is returned unchanged."""
    return ALIASES.get(name, name)


def shape_from_config(config: dict) -> ModelShape:
    """Read a Hugging Face config.json (GPT-2, GPT-NeoX and Llama key spellings)."""
    n_layers = config.get("n_layer", config.get("num_hidden_layers"))
    n_heads = config.get("n_head", config.get("num_attention_heads"))
    d_model = config.get("n_embd", config.get("hidden_size"))
    if n_layers is None or n_heads is None or d_model is None:
        raise KeyError("config.json lacks n_layer/num_hidden_layers, n_head or n_embd")
    d_mlp = config.get("n_inner") or config.get("intermediate_size") or 4 * d_model
    archs = config.get("architectures") or ["unknown"]
    return ModelShape(
        n_layers=int(n_layers),
        n_heads=int(n_heads),
        d_model=int(d_model),
        d_head=int(d_model) // int(n_heads),
        d_mlp=int(d_mlp),
        d_vocab=int(config.get("vocab_size", 0)),
        n_ctx=int(config.get("n_positions", config.get("max_position_embeddings", 0))),
        architecture=str(archs[0]),
    )


def shape_of(name: str, base_dir: Path | None = None) -> ModelShape | None:
    """The shape of a model named in a file, without loading weights; None if unknown.

    Looks at: the bundled model, a local folder (relative to base_dir) with config.json,
    then the table of known hub models.
    """
    if name == BUNDLED_NAME:
        return shape_from_config(json.loads((BUNDLED_DIR / "config.json").read_text()))
    folder = Path(name) if base_dir is None else base_dir / name
    if (folder / "config.json").is_file():
        return shape_from_config(json.loads((folder / "config.json").read_text()))
    return KNOWN_SHAPES.get(resolve_name(name))
