"""Models and components of a circuit section: the model a section names (hub name,
bundled model, local folder) resolved to its shape without weights, and heads and MLP
ranges checked against that shape."""

from __future__ import annotations

import json
from pathlib import Path

from seqcirc.checks.context import CheckContext
from seqcirc.checks.diagnostics import suggest
from seqcirc.checks.resolved import ResolvedModel
from seqcirc.errors import InputError
from seqcirc.language import ast
from seqcirc.language.vocab import LIMITS
from seqcirc.models import shapes
from seqcirc.plan import ModelRef, Node
from seqcirc.source import Span

# sanity caps when a model's shape cannot be known offline
MAX_LAYERS_UNKNOWN = LIMITS["layers"]
MAX_HEADS_UNKNOWN = LIMITS["heads"]


def resolve_model(ck: CheckContext, model: ast.ModelName) -> ResolvedModel | None:
    name = model.name
    folder = ck.base / name
    if model.quoted or (folder / "config.json").is_file():
        cfg = folder / "config.json"
        try:
            shape = shapes.shape_from_config(shapes.read_config(cfg))
        except (OSError, ValueError, KeyError, TypeError) as err:
            ck.error(
                "E202",
                f"cannot read the model folder `{name}`: {err}",
                model.span,
                "a local model is a folder with a Hugging Face config.json, relative to this file",
            )
            return None
        return ResolvedModel(ModelRef(name, "local"), shape)
    if name == shapes.BUNDLED_NAME:
        try:
            return ResolvedModel(ModelRef(name, "bundled"), shapes.shape_of(name))
        except (OSError, ValueError, KeyError) as err:
            ck.warn(
                "W300",
                f"bundled model unavailable: {err}",
                model.span,
                "layer and head checks were skipped",
            )
            return ResolvedModel(ModelRef(name, "bundled"), None)
    hub = shapes.resolve_name(name)
    if hub in shapes.KNOWN_SHAPES:
        return ResolvedModel(ModelRef(name, "hub"), shapes.KNOWN_SHAPES[hub])
    if "/" in name:  # an organisation/name hub id seqcirc has no table entry for
        ck.warn(
            "W300",
            f"the shape of `{name}` is not known offline; layer and head checks skipped",
            model.span,
            "quote a local folder with a config.json to check it fully",
        )
        return ResolvedModel(ModelRef(name, "hub"), None)
    cached = _cached_shape(hub)
    if cached is not None:  # a hub model this machine has a copy of
        return ResolvedModel(ModelRef(name, "hub"), cached)
    ck.error(
        "E202",
        f"unknown model `{name}`",
        model.span,
        _unknown_hint(name, 'a local checkpoint folder is written in quotes: on "./my-model"'),
    )
    return None


def _unknown_hint(name: str, folders: str) -> str:
    names = [*shapes.ALIASES, shapes.BUNDLED_NAME]
    return suggest(name, names) or "known models: " + ", ".join(names) + "; " + folders


def _cached_shape(hub_id: str) -> shapes.ModelShape | None:
    """The shape of a hub model from its config.json in the Hugging Face cache, found
    without the network; None when there is no copy (or no huggingface_hub)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(hub_id, "config.json")
        if not isinstance(hit, str):
            return None
        return shapes.shape_from_config(json.loads(Path(hit).read_text(encoding="utf-8")))
    except (ImportError, OSError, ValueError, KeyError, TypeError):
        return None


def resolve_model_option(name: str, base: Path | None = None) -> ResolvedModel:
    """A model named on the command line (`--model NAME`), decided as `on NAME` in a file
    is (resolve_model): a folder with a config.json, the bundled model, a known hub name
    or alias, an org/name hub id, or a hub model in the local cache. Otherwise the same
    E202, as an InputError (exit 2), before any model is loaded."""
    folder = base or Path()
    ck = CheckContext("<command line>", folder, {}, {}, {}, [])
    quoted = (folder / name).is_dir()  # a folder is read as a quoted one would be
    model = resolve_model(ck, ast.ModelName(name, quoted, Span("<command line>", 1, 1)))
    if ck.diags or model is None:
        first = ck.diags[0]
        hint = first.hint
        if not quoted:
            hint = _unknown_hint(name, "or the path of a folder with a config.json")
        raise InputError(f"--model: {first.message}", code=first.code, hint=hint)
    return model


# ---- components ---------------------------------------------------------------
def check_head(ck: CheckContext, head: ast.HeadRef, shape: shapes.ModelShape | None) -> bool:
    if shape is None:
        if head.head >= MAX_HEADS_UNKNOWN:
            ck.error(
                "E220",
                f"head {head.text} is out of range",
                head.span,
                f"seqcirc accepts at most {MAX_HEADS_UNKNOWN} heads per layer",
            )
            return False
        return _sane(ck, head.layer, head.span)
    if head.layer >= shape.n_layers:
        ck.error(
            "E221",
            f"layer {head.layer} is out of range in head {head.text}",
            head.span,
            f"the model has {shape.n_layers} layers (0-{shape.n_layers - 1})",
        )
        return False
    if head.head >= shape.n_heads:
        ck.error(
            "E220",
            f"head {head.text} is out of range",
            head.span,
            f"the model has {shape.n_heads} heads per layer (0-{shape.n_heads - 1})",
        )
        return False
    return True


def _sane(ck: CheckContext, layer: int, span: Span) -> bool:
    if layer >= MAX_LAYERS_UNKNOWN:
        ck.error(
            "E221",
            f"layer {layer} is out of range",
            span,
            f"seqcirc accepts at most {MAX_LAYERS_UNKNOWN} layers",
        )
        return False
    return True


def mlp_nodes(ck: CheckContext, rng: ast.MlpRange, shape: shapes.ModelShape | None) -> list[Node]:
    hi = rng.lo if rng.hi is None else rng.hi
    if hi < rng.lo:
        ck.error(
            "E221",
            f"empty layer range {rng.lo}..{hi}",
            rng.span,
            f"write the smaller layer first: {hi}..{rng.lo}",
        )
        return []
    if shape is not None and hi >= shape.n_layers:
        ck.error(
            "E221",
            f"MLP layer {hi} is out of range",
            rng.span,
            f"the model has {shape.n_layers} layers (0-{shape.n_layers - 1})",
        )
        return []
    if shape is None and not _sane(ck, hi, rng.span):
        return []
    return [Node(layer) for layer in range(rng.lo, hi + 1)]
