"""A model object given from Python (`seqcirc.evaluate(path, model=..., tokenizer=...)`,
`Session(Options(model=...))`) as a LoadedModel, the model of every circuit in the file.

Accepted: a TransformerLens `TransformerBridge` (its own tokenizer, or `tokenizer=` when
it has none), or a `transformers` `PreTrainedModel` with `tokenizer=` (a
`PreTrainedTokenizerBase`). The PreTrainedModel is put in eval mode and wrapped in a
TransformerBridge in place, as TransformerLens does (its submodules become hooked
wrappers; its outputs are unchanged; attention is switched to the eager kernel so
attention patterns can be read). The object runs in its own dtype and where its
parameters are (a device map it was loaded with included). Anything else is E412,
saying what is accepted. Its shape is read from its config, so `apply_options` checks
the file's components against it before anything runs, as for `--model`.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from typing import Any

from seqcirc.errors import InputError
from seqcirc.models.device import AUTO, resolve_device, resolve_dtype, single_device
from seqcirc.models.load import LoadedModel, ModelIdentity
from seqcirc.models.shapes import ModelShape, config_reason, shape_from_config

ACCEPTED = (
    "model= takes a model name or folder (a string), a TransformerLens TransformerBridge, "
    "or a transformers PreTrainedModel together with tokenizer= (its tokenizer)"
)

# id(model object) -> (the object, its LoadedModel): one bridge per object and process.
_OBJECTS: dict[int, tuple[Any, LoadedModel]] = {}


def is_model_object(model: object) -> bool:
    """Whether `model=` is an object (anything but a name, a path or None)."""
    from pathlib import PurePath

    return model is not None and not isinstance(model, str | PurePath)


def _error(message: str, hint: str = ACCEPTED) -> InputError:
    return InputError(message, code="E412", hint=hint)


def _kind(model: object) -> tuple[str, Any]:
    """("bridge" | "hf", the Hugging Face module) or E412 for anything else."""
    import torch
    from transformers import PreTrainedModel

    bridge_cls = _bridge_class()
    if bridge_cls is not None and isinstance(model, bridge_cls):
        return "bridge", model.original_model
    if isinstance(model, PreTrainedModel):
        return "hf", model
    if isinstance(model, torch.nn.Module):
        raise _error(
            f"model= is a torch module ({type(model).__name__}) but not a transformers "
            "PreTrainedModel: TransformerLens builds its bridge from a Hugging Face model's "
            "config and module names"
        )
    if model is None:
        raise _error("model= is None: there is no model object to evaluate")
    raise _error(f"model= got an object of type {type(model).__name__}, which is not a model")


def _bridge_class() -> Any:
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # pragma: no cover - transformer-lens is a dependency
        return None
    return TransformerBridge


def describe_object(model: object, tokenizer: object = None) -> tuple[str, ModelShape]:
    """The label circuits get (shown as their model) and the shape from the object's
    config, after checking the object and its tokenizer (E412); loads nothing."""
    kind, hf = _kind(model)
    _tokenizer(kind, model, tokenizer)
    config = getattr(hf, "config", None)
    try:
        shape = shape_from_config(config.to_dict() if config is not None else None)
    except (ValueError, KeyError) as err:
        raise _error(
            f"model= {type(hf).__name__}: its config gives no shape ({config_reason(err)})",
            hint="pass a causal language model whose config has the layer, head and width "
            "sizes (n_layer/num_hidden_layers, n_head/num_attention_heads, n_embd/hidden_size)",
        ) from None
    return f"<{_name_of(hf)}>", shape


def _name_of(hf: Any) -> str:
    """The object's hub id or folder when it was loaded from one, else its class name."""
    name = getattr(getattr(hf, "config", None), "_name_or_path", "") or ""
    return str(name) or type(hf).__name__


def _tokenizer(kind: str, model: Any, tokenizer: object) -> Any:
    """The tokenizer the object's prompts are built with (E412 when there is none)."""
    from transformers import PreTrainedTokenizerBase

    own = getattr(model, "tokenizer", None) if kind == "bridge" else None
    if own is not None and tokenizer is not None and tokenizer is not own:
        raise _error(
            "model= is a TransformerBridge with a tokenizer of its own, and tokenizer= "
            "gives another",
            hint="leave tokenizer= out: the bridge's own tokenizer (bridge.tokenizer) is used",
        )
    chosen = own if own is not None else tokenizer
    if chosen is None:
        raise _error(
            f"model= is a {type(model).__name__} without a tokenizer: seqcirc builds the "
            "prompts with the model's tokenizer",
            hint="pass tokenizer=AutoTokenizer.from_pretrained(...) (the model's own) with "
            "the model",
        )
    if not isinstance(chosen, PreTrainedTokenizerBase):
        raise _error(
            f"tokenizer= got an object of type {type(chosen).__name__}, not a transformers "
            "tokenizer",
            hint="pass a PreTrainedTokenizer or PreTrainedTokenizerFast "
            "(AutoTokenizer.from_pretrained(folder))",
        )
    return chosen


def _check_placement(hf: Any, dtype: object, device: str | None, device_map: object) -> None:
    """The object runs as it is: a dtype, device or device map other than its own is
    an error (E410, E412, E411), never a silent cast or move."""
    params = list(hf.parameters())
    own_dtype = str(params[0].dtype).removeprefix("torch.") if params else "float32"
    if dtype is not None and resolve_dtype(dtype) != own_dtype:
        raise InputError(
            f"dtype {resolve_dtype(dtype)} was asked for, but the model object is {own_dtype}",
            code="E410",
            hint="a model object runs in its own dtype: cast it first "
            f"(model.to(torch.{resolve_dtype(dtype)})) or leave dtype out",
        )
    if device_map is not None:
        raise InputError(
            "device_map was given with a model object",
            code="E411",
            hint="a model object runs where its weights are: load it with "
            "from_pretrained(..., device_map=...) instead",
        )
    wanted = str(device or AUTO).strip().lower()
    if wanted != AUTO:
        where = single_device(hf)
        if where is None or str(where) != resolve_device(wanted):
            raise _error(
                f"device {wanted} was asked for, but the model object is on "
                f"{where if where is not None else 'several devices'}",
                hint="a model object runs where its weights are: move it first "
                "(model.to(device)) or leave device at auto",
            )


def load_object(
    model: object,
    tokenizer: object = None,
    *,
    dtype: object = None,
    device: str | None = AUTO,
    device_map: object = None,
) -> LoadedModel:
    """The LoadedModel of a model object, built once per object and process (E412 for
    what is not accepted; E410/E411 for a dtype or device map that is not its own)."""
    label, shape = describe_object(model, tokenizer)
    kind, hf = _kind(model)
    _check_placement(hf, dtype, device, device_map)
    cached = _OBJECTS.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    tok = _tokenizer(kind, model, tokenizer)
    n_vocab = shape.d_vocab
    if n_vocab and len(tok) > n_vocab:
        raise _error(
            f"tokenizer= has {len(tok):,} tokens but the model's vocabulary is {n_vocab:,}: "
            "it is not this model's tokenizer",
            hint="pass the tokenizer the model was trained with",
        )
    bridge: Any = model if kind == "bridge" else _bridge_of(hf, label)
    bridge.eval()
    identity = _identity(bridge, label)
    loaded = LoadedModel(bridge=bridge, tokenizer=tok, shape=shape, identity=identity)
    _OBJECTS[id(model)] = (model, loaded)
    return loaded


def _bridge_of(hf: Any, label: str) -> Any:
    """A TransformerBridge around a PreTrainedModel, as TransformerLens's boot builds one
    for a model it is handed (eager attention, so patterns can be hooked)."""
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformer_lens.model_bridge.sources._hf_format import (
        determine_architecture_from_hf_config,
    )
    from transformer_lens.utilities.attn_implementation import force_eager_attention

    try:
        architecture = determine_architecture_from_hf_config(hf.config)
    except (ValueError, AttributeError) as err:
        raise _error(
            f"model= {type(hf).__name__}: TransformerLens does not support this "
            f"architecture ({str(err).splitlines()[0]})",
            hint="pass a causal language model of an architecture TransformerLens supports",
        ) from None
    hf.eval()
    force_eager_attention(hf)
    return build_bridge_from_module(hf, architecture, hf_config=hf.config, model_name=label)


def _identity(bridge: Any, label: str) -> ModelIdentity:
    hf = bridge.original_model
    params = list(hf.parameters())
    placed = getattr(hf, "hf_device_map", None)
    where = single_device(hf)
    return ModelIdentity(
        name=label,
        resolved=_name_of(hf),
        source="object",
        revision=None,
        weights_sha256=_params_sha256(hf) if where is not None else None,
        transformer_lens_version=version("transformer-lens"),
        compatibility_mode=bool(getattr(bridge, "compatibility_mode", False)),
        prepend_bos=bool(bridge.cfg.default_prepend_bos),
        device=str(where if where is not None else bridge.cfg.device),
        dtype=str(params[0].dtype).removeprefix("torch.") if params else "float32",
        device_map=tuple((k, str(v)) for k, v in placed.items()) if placed else None,
    )


def _params_sha256(module: Any) -> str:
    """sha256 of every parameter's name, dtype, shape and bytes (an object has no files)."""
    import torch

    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(f"{name}|{p.dtype}|{tuple(p.shape)}\n".encode())
        flat = p.detach().reshape(-1).contiguous().cpu()
        h.update(flat.view(torch.uint8).numpy().data)
    return h.hexdigest()


def clear_objects() -> None:
    """Forget wrapped objects (tests)."""
    _OBJECTS.clear()
