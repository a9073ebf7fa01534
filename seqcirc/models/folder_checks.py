"""Checks that a model folder holds the model its config.json describes, so that a
mismatch is an error and never a silently different model.

Before any weight is read: the tensor names and shapes in the safetensors headers
against the model the config describes, built on the meta device (no memory). That
stops a config of another architecture (a GPT-2 folder whose config says llama would
allocate a 7B model and initialise it randomly), other sizes, and missing layers before
anything big is built. While loading: transformers' own account of missing, unexpected
and mismatched tensors, and that every weight is finite. After loading: that the folder
had a tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from seqcirc.errors import ModelUnavailableError

MAX_LAYERS = 1000  # more than any model has (the checker's cap on layers too)
_SHOWN = 4  # tensor names quoted in a message; the rest are counted
_LAYER = re.compile(r"\.(\d+)\.")  # the block index in "transformer.h.3.attn.c_attn.weight"
# Buffers older checkpoints saved that transformers drops on load (not parameters).
_DROPPED = (r"rotary_emb\.inv_freq", r"(^|\.)position_ids$")
_SAVE_HINT = (
    "config.json must describe the saved weights (model_type, n_layer/num_hidden_layers, "
    "n_embd/hidden_size, vocab_size): save the model and its config together with "
    "model.save_pretrained(folder)"
)

Shapes = dict[str, tuple[int, ...]]


def check_before_loading(
    name: str, folder: Path, files: list[Path], trust_remote_code: bool
) -> CheckedLoader:
    """Compare the weights files with the config's model; return the loader to hand
    TransformerLens (boot's model_class) for the checks while loading."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    cls = _model_class(config)
    present = _header_shapes(name, files)
    n_layers = getattr(config, "num_hidden_layers", None)
    if isinstance(n_layers, int) and n_layers > MAX_LAYERS:  # even its meta model is slow
        raise ModelUnavailableError(
            f"model '{name}': the weights in {folder} do not match its config.json: "
            f"config.json says {n_layers:,} layers, the weights hold {_n_layers(present)}",
            code="E507",
            hint=_SAVE_HINT,
        )
    meta = _meta_model(cls, config, trust_remote_code)
    if meta is not None:
        _compare(name, folder, config, meta, present)
    return CheckedLoader(name, folder, cls, meta)


def _model_class(config: Any) -> Any:
    """The transformers class TransformerLens loads this config with."""
    from transformer_lens.model_bridge.sources._hf_format import (
        determine_architecture_from_hf_config,
    )
    from transformer_lens.model_bridge.sources.transformers.helpers import (
        get_hf_model_class_for_architecture,
    )

    return get_hf_model_class_for_architecture(determine_architecture_from_hf_config(config))


def _header_shapes(name: str, files: list[Path]) -> Shapes:
    """Tensor name -> shape from the safetensors headers (no tensor is read)."""
    from safetensors import safe_open

    shapes: Shapes = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 (a safetensors handle)
                    shapes[key] = tuple(fh.get_slice(key).get_shape())
        except Exception as exc:  # SafetensorError, OSError: a damaged or truncated file
            raise ModelUnavailableError(
                f"model '{name}': cannot read the weights file {path}: {exc}",
                code="E506",
                hint="the file is damaged or not safetensors; save the model again with "
                "model.save_pretrained(folder)",
            ) from None
    return shapes


def _meta_model(cls: Any, config: Any, trust_remote_code: bool) -> Any:
    """The config's model with shapes only (meta tensors); None if it cannot be built so
    (loading then reports the problem, or the checks while loading catch a mismatch)."""
    import torch

    kwargs = {"trust_remote_code": True} if trust_remote_code else {}
    try:
        with torch.device("meta"):
            return cls.from_config(config, **kwargs)
    except Exception:
        return None


def _compare(name: str, folder: Path, config: Any, meta: Any, present: Shapes) -> None:
    """Raise E507 for what is certain before loading: other shapes, no tensor of the
    config's architecture at all, or tensors missing while none is left over (with
    tensors left over, transformers' renaming of old checkpoints may account for them:
    its report while loading decides)."""
    expected: Shapes = {k: tuple(t.shape) for k, t in meta.state_dict().items()}
    held = list(present)  # as the files name them, for messages
    present = _with_prefix(present, expected, getattr(meta, "base_model_prefix", ""))
    tied = set(getattr(meta, "all_tied_weights_keys", None) or ())
    params = {k for k, _ in meta.named_parameters(remove_duplicate=False)} - tied
    mismatched = sorted((k for k in expected.keys() & present.keys() if expected[k] != present[k]),
                        key=_natural)  # fmt: skip
    if mismatched:
        shown = "; ".join(
            f"{k} is {list(present[k])} in the weights but {list(expected[k])} by the config"
            for k in mismatched[:_SHOWN]
        )
        more = f"; ... and {len(mismatched) - _SHOWN} more" if len(mismatched) > _SHOWN else ""
        raise ModelUnavailableError(
            f"model '{name}': the weights in {folder} do not match its config.json: "
            f"{len(mismatched)} tensors have other shapes than the config implies: {shown}{more}",
            code="E507",
            hint=_SAVE_HINT,
        )
    if not params & present.keys():
        n_params = sum(t.numel() for _, t in meta.named_parameters())
        raise ModelUnavailableError(
            f"model '{name}': the weights in {folder} are not the model its config.json "
            f"describes: config.json says model_type {config.model_type!r} "
            f"({type(meta).__name__}, {n_params:,} parameters), whose tensors are named like "
            f"{_few(params)}, but the weights hold none of those (they hold {_few(held)})",
            code="E507",
            hint=_SAVE_HINT,
        )
    ignore_missing = _patterns(getattr(meta, "_keys_to_ignore_on_load_missing", None))
    ignore_unexpected = _patterns(getattr(meta, "_keys_to_ignore_on_load_unexpected", None))
    missing = {k for k in params - present.keys() if not ignore_missing(k)}
    unexpected = {k for k in present.keys() - expected.keys() if not ignore_unexpected(k)}
    if missing and not unexpected:
        raise names_error(name, folder, missing, (), params, present)


def _with_prefix(present: Shapes, expected: Shapes, prefix: str) -> Shapes:
    """A checkpoint of the bare model (no "transformer." prefix) loads into the model with
    an LM head: compare its names with the prefix added, as transformers loads them."""
    head = prefix + "."
    if not prefix or any(k.startswith(head) for k in present):
        return present
    prefixed = {head + k: shape for k, shape in present.items()}
    return prefixed if prefixed.keys() & expected.keys() else present


def _patterns(patterns: Iterable[str] | None) -> Any:
    """A test: does a tensor name match one of transformers' ignore patterns (or a
    buffer old checkpoints saved)?"""
    regex = re.compile("|".join(f"({p})" for p in (*(patterns or ()), *_DROPPED)))
    return lambda key: regex.search(key) is not None


class CheckedLoader:
    """Stands in for the transformers class TransformerLens loads with (boot's
    `model_class`): loads through it, asks for transformers' loading report, and
    refuses a model whose weights did not all load or are not finite."""

    def __init__(self, name: str, folder: Path, cls: Any, meta: Any = None) -> None:
        self.name, self.folder, self.cls = name, folder, cls
        self.meta = meta  # the config's model on the meta device (device maps are checked on it)

    def from_pretrained(self, path: str, **kwargs: Any) -> Any:
        model, info = self.cls.from_pretrained(path, output_loading_info=True, **kwargs)
        named = dict(model.named_parameters(remove_duplicate=False))
        # A missing buffer (an attention mask, rotary frequencies) is rebuilt from the
        # config; a missing parameter would be random.
        missing = {k for k in info.get("missing_keys", ()) if k in named}
        unexpected = set(info.get("unexpected_keys", ()))
        unexpected |= {k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())}
        if missing or unexpected:
            held = (set(named) - missing) | unexpected
            raise names_error(self.name, self.folder, missing, unexpected, named, held)
        check_finite(self.name, self.folder, model)
        return model


def names_error(name: str, folder: Path, missing: Collection[str], unexpected: Collection[str],
                implied: Iterable[str], held: Iterable[str]) -> ModelUnavailableError:  # fmt: skip
    """E507 naming a few missing and unexpected tensors, with counts, and the layers
    the config implies against those the weights hold when they differ."""
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} tensors the config implies are not in the weights ({_few(missing)})"
        )
    if unexpected:
        parts.append(
            f"{len(unexpected)} tensors in the weights are not in the model it describes "
            f"({_few(unexpected)})"
        )
    want, have = _n_layers(implied), _n_layers(held)
    if want and have and want != have:
        parts.append(f"config.json implies {want} layers, the weights hold {have}")
    return ModelUnavailableError(
        f"model '{name}': the weights in {folder} do not match its config.json: "
        + "; ".join(parts)
        + ". Loading would leave missing tensors randomly initialised and ignore the others",
        code="E507",
        hint=_SAVE_HINT,
    )


def check_finite(name: str, folder: Path, model: Any) -> None:
    """E508 when a weight holds NaN or an infinity (a damaged or diverged checkpoint)."""
    import torch

    bad = [
        k
        for k, p in model.named_parameters()
        if p.device.type != "meta" and not bool(torch.isfinite(p).all())
    ]
    if bad:
        raise ModelUnavailableError(
            f"model '{name}': the weights in {folder} are not finite: {len(bad)} tensors hold "
            f"NaN or infinite values ({_few(bad, in_order=True)})",
            code="E508",
            hint="the checkpoint is damaged, or was saved after training diverged; "
            "save a good checkpoint again",
        )


def check_tokenizer(name: str, folder: Path, tokenizer: Any) -> None:
    """E503 when the folder has no tokenizer (transformers then builds an empty one)."""
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    special = set(getattr(tokenizer, "all_special_tokens", ()))
    if not any(token not in special for token in vocab):
        raise ModelUnavailableError(
            f"model '{name}': no tokenizer in {folder}: the tokenizer transformers built "
            f"from it has no vocabulary ({len(vocab)} special tokens only)",
            code="E503",
            hint="save the tokenizer beside the model: tokenizer.save_pretrained(folder) "
            "writes tokenizer.json and tokenizer_config.json",
        )


def check_vocab(name: str, folder: Path, tokenizer: Any, d_vocab: int) -> None:
    """E503 when the tokenizer has more tokens than the model has embeddings (its ids
    past the vocabulary would fail in the first forward, without a word why)."""
    if d_vocab and len(tokenizer) > d_vocab:
        raise ModelUnavailableError(
            f"model '{name}': the tokenizer in {folder} has {len(tokenizer):,} tokens but "
            f"the model's vocabulary is {d_vocab:,} (config.json vocab_size)",
            code="E503",
            hint="save the model's own tokenizer beside it: tokenizer.save_pretrained(folder)",
        )


def _n_layers(names: Iterable[str]) -> int:
    return len({int(m.group(1)) for k in names if (m := _LAYER.search(k))})


def _natural(key: str) -> list[Any]:
    """Sort key putting h.2 before h.10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _few(names: Iterable[str], *, in_order: bool = False) -> str:
    listed = list(names) if in_order else sorted(names, key=_natural)
    shown = ", ".join(listed[:_SHOWN])
    return shown + (f", ... and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else "")
