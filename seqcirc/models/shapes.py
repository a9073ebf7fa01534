"""Model shapes known without loading weights, so `seqcirc check` can validate a file
offline: a table of hub models, a local folder's config.json, or the bundled model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import ModelUnavailableError

BUNDLED_NAME = "seqcirc-mini"
BUNDLED_DIR = Path(__file__).parents[1] / "bundled" / "seqcirc-mini"
CONFIG_HINT = (
    "a model folder holds the config.json that transformers' save_pretrained wrote: a JSON "
    'object with model_type ("gpt2", "llama", ...) and the sizes n_layer/num_hidden_layers, '
    "n_head/num_attention_heads, n_embd/hidden_size"
)


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
    n_kv_heads: int = 0  # key/value heads (grouped-query attention); 0 given: n_heads
    parallel: bool = False  # attention and MLP both read the block's input (GPT-NeoX, GPT-J)

    def __post_init__(self) -> None:
        if self.n_kv_heads == 0:
            object.__setattr__(self, "n_kv_heads", self.n_heads)


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
    "EleutherAI/pythia-70m": ModelShape(6, 8, 512, 64, 2048, 50304, 2048, _NEOX, parallel=True),
    "EleutherAI/pythia-160m": ModelShape(12, 12, 768, 64, 3072, 50304, 2048, _NEOX, parallel=True),
    "EleutherAI/pythia-410m": ModelShape(24, 16, 1024, 64, 4096, 50304, 2048, _NEOX, parallel=True),
    "EleutherAI/pythia-1b": ModelShape(16, 8, 2048, 256, 8192, 50304, 2048, _NEOX, parallel=True),
    "EleutherAI/pythia-1.4b": ModelShape(
        24, 16, 2048, 128, 8192, 50304, 2048, _NEOX, parallel=True
    ),
    "EleutherAI/pythia-2.8b": ModelShape(
        32, 32, 2560, 80, 10240, 50304, 2048, _NEOX, parallel=True
    ),
    "EleutherAI/pythia-6.9b": ModelShape(
        32, 32, 4096, 128, 16384, 50432, 2048, _NEOX, parallel=True
    ),
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


def read_config(path: Path) -> dict[str, Any]:
    """A config.json as a dict. Raises OSError (unreadable) or ValueError (not UTF-8,
    not JSON, not an object), each with a message that names the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:
        raise ValueError(f"{path.name} is JSON nested too deeply to read") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path.name} holds a JSON {_json_kind(config)}, not an object")
    return config


def _json_kind(value: object) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _size(config: dict[str, Any], *keys: str) -> int | None:
    """The first of `keys` that is set, as a positive whole number; None if none is set."""
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config.json: {key} must be a positive whole number, got {value!r}")
        return value
    return None


# Spellings of each size across Hugging Face configs, first match wins.
_KEYS = {
    "n_layers": ("n_layer", "num_hidden_layers", "num_layers"),
    "n_heads": ("n_head", "num_attention_heads", "num_heads"),
    "d_model": ("n_embd", "hidden_size", "d_model"),
    "n_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv"),
    "d_mlp": ("n_inner", "intermediate_size", "ffn_dim", "ffn_hidden_size"),
    "n_ctx": ("n_positions", "max_position_embeddings", "n_ctx", "max_seq_len"),
}
# Blocks whose attention and MLP both read the block's input: always (the class), or as
# a config flag says, with the class's default when config.json leaves it out.
_PARALLEL_ALWAYS = frozenset({"GPTJForCausalLM", "PhiForCausalLM", "CohereForCausalLM"})
_PARALLEL_FLAG = {
    "GPTNeoXForCausalLM": ("use_parallel_residual", True),
    "StableLmForCausalLM": ("use_parallel_residual", False),
    "FalconForCausalLM": ("parallel_attn", True),
}


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """A multimodal config keeps the language model's sizes in text_config."""
    text = config.get("text_config")
    if isinstance(text, dict) and not any(k in config for k in _KEYS["n_layers"]):
        return {**text, "architectures": config.get("architectures")}
    return config


def is_parallel(architecture: str, config: dict[str, Any] | None = None) -> bool:
    """Do this architecture's blocks run attention and MLP side by side (so the MLP of
    layer L does not read that layer's heads)?"""
    if architecture in _PARALLEL_ALWAYS:
        return True
    flag = _PARALLEL_FLAG.get(architecture)
    if flag is None:
        return False
    value = (config or {}).get(flag[0])
    return flag[1] if value is None else bool(value)


def shape_from_config(config: object) -> ModelShape:
    """Read a Hugging Face config.json (GPT-2, GPT-NeoX, GPT-J, Llama-style and the other
    spellings in _KEYS; head_dim where the config sets it; grouped-query attention).

    Raises KeyError when a size is missing and ValueError when the config is no JSON
    object or a size is no positive whole number."""
    if not isinstance(config, dict):
        raise ValueError(f"config.json holds a JSON {_json_kind(config)}, not an object")
    config = _text_config(config)
    n_layers = _size(config, *_KEYS["n_layers"])
    n_heads = _size(config, *_KEYS["n_heads"])
    d_model = _size(config, *_KEYS["d_model"])
    if n_layers is None or n_heads is None or d_model is None:
        raise KeyError("config.json lacks n_layer/num_hidden_layers, n_head or n_embd")
    n_kv = _size(config, *_KEYS["n_kv_heads"]) or n_heads
    if config.get("multi_query") and not config.get("new_decoder_architecture"):
        n_kv = 1  # Falcon, GPTBigCode: one key/value head whatever num_kv_heads says
    if n_heads % n_kv:
        raise ValueError(
            f"config.json: {n_heads} attention heads cannot share {n_kv} key/value heads "
            "(the number of heads must be a multiple of num_key_value_heads)"
        )
    archs = config.get("architectures") or ["unknown"]
    if not isinstance(archs, list) or not isinstance(archs[0], str):
        raise ValueError(f"config.json: architectures must be a list of names, got {archs!r}")
    return ModelShape(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        d_head=_size(config, "head_dim") or d_model // n_heads,
        d_mlp=_size(config, *_KEYS["d_mlp"]) or 4 * d_model,
        d_vocab=_size(config, "vocab_size") or 0,
        n_ctx=_size(config, *_KEYS["n_ctx"]) or 0,
        architecture=archs[0],
        n_kv_heads=n_kv,
        parallel=is_parallel(archs[0], config),
    )


def shape_of(name: str, base_dir: Path | None = None) -> ModelShape | None:
    """The shape of a model named in a file, without loading weights; None if unknown.

    Looks at: the bundled model, a local folder (relative to base_dir) with config.json,
    then the table of known hub models. A local config.json that cannot be read is a
    ModelUnavailableError (E503).
    """
    if name == BUNDLED_NAME:
        return shape_from_config(read_config(BUNDLED_DIR / "config.json"))
    folder = Path(name) if base_dir is None else base_dir / name
    if (folder / "config.json").is_file():
        try:
            return shape_from_config(read_config(folder / "config.json"))
        except (OSError, ValueError, KeyError) as err:
            raise ModelUnavailableError(
                f"model '{name}' in {folder}: {config_reason(err)}",
                code="E503",
                hint=CONFIG_HINT,
            ) from None
    return KNOWN_SHAPES.get(resolve_name(name))


def config_reason(err: Exception) -> str:
    """An error's message without KeyError's quotes; OSError's with the file's name."""
    if isinstance(err, OSError):
        return f"cannot read config.json ({err.strerror or err})"
    return str(err.args[0]) if err.args else type(err).__name__
