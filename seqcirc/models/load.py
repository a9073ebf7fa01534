"""The only place seqcirc loads models: hub names, local folders, the bundled seqcirc-mini.

Every model goes through TransformerLens's `TransformerBridge.boot_transformers`, always
from a folder on disk: a local folder as given, the bundled model's folder, or a hub
model's snapshot in the Hugging Face cache (downloaded once if the hub is reachable).
Before loading, the folder is checked: safetensors weights only (pickle checkpoints can
run code when unpickled), no remote code unless `trust_remote_code=True`, a config.json
that describes the weights beside it; while and after loading, that every weight loaded
and is finite and that the folder has a tokenizer (seqcirc.models.folder_checks).

Compatibility mode (TransformerLens's folded LayerNorm and centred weights) is OFF by
default: logits then equal the Hugging Face model's, loading is faster, and seqcirc's
scores do not depend on it. The paper's score is a logit difference (centring the
unembedding shifts each row of logits by a constant, which cancels) and its ablations
replace hook_z by a mean over corrupted prompts (folding moves value biases, a constant
per head since attention weights sum to 1, which also cancels in z - mean(z)). Zero
ablation and raw logit values do differ between the modes; pass
`compatibility_mode=True` to match the numerics of the paper's HookedTransformer code.
The flag is recorded in every result's model identity.

Precision and placement: `dtype` ("float32", the default, "bfloat16", "float16") is the
dtype the weights load in (the engine accumulates the metric and the means in float32
whatever it is); `device_map` ("auto", "balanced", ..., a JSON file or a dict of module
names to devices) spreads the layers over devices through Hugging Face Accelerate,
disk offload included (into a temporary folder removed at exit). Both are recorded in
the model identity (`dtype`, and `device_map` as Accelerate placed the modules), and
`LoadedModel.single_device` says whether the hand-written forwards may run it
(seqcirc.models.device.single_device).

A model object (`seqcirc.evaluate(path, model=..., tokenizer=...)`) is wrapped by
`load_object` instead: a TransformerBridge as it is, a transformers PreTrainedModel in
a TransformerBridge built around it (in place, as TransformerLens does: its submodules
become hooked wrappers, its outputs are unchanged) with the tokenizer given.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from seqcirc.errors import InputError, ModelUnavailableError
from seqcirc.models.device import (
    AUTO,
    DEFAULT_DEVICE,
    Placement,
    check_map_modules,
    read_device_map,
    resolve_device,
    resolve_dtype,
    single_device,
)
from seqcirc.models.shapes import (
    ALIASES,
    BUNDLED_DIR,
    BUNDLED_NAME,
    CONFIG_HINT,
    ModelShape,
    config_reason,
    read_config,
    resolve_name,
    shape_from_config,
)
from seqcirc.progress import phase

DEFAULT_COMPATIBILITY_MODE = False

Source = Literal["hub", "local", "bundled", "object"]

# Weight files that are unpickled when loaded (and so may execute code).
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# What a hub snapshot needs: config, safetensors weights, tokenizer files. Never pickle.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
_FALLBACK = (
    f"connect to the Hugging Face hub once so the model is cached, point at a local folder "
    f"in Hugging Face format (config.json, model.safetensors, tokenizer), or use the "
    f"bundled model '{BUNDLED_NAME}'"
)


@dataclass(frozen=True)
class ModelIdentity:
    """What a result needs to say which model produced it."""

    name: str  # as the user wrote it
    resolved: str  # hub id, or the absolute folder path
    source: Source
    revision: str | None  # hub commit of the cached snapshot
    weights_sha256: str | None  # local and bundled folders: hash of the weights
    transformer_lens_version: str
    compatibility_mode: bool
    prepend_bos: bool
    device: str = "cpu"  # where it ran: results on a GPU may differ in the last digits
    dtype: str = "float32"  # the weights' dtype (the metric and means are float32)
    # module -> device as Accelerate placed them (None: no device map)
    device_map: tuple[tuple[str, str], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device_map"] = None if self.device_map is None else dict(self.device_map)
        return out


@dataclass(frozen=True, eq=False)
class LoadedModel:
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any  # the bridge's Hugging Face tokenizer
    shape: ModelShape
    identity: ModelIdentity

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity.to_dict(), "shape": asdict(self.shape)}

    @property
    def device_map(self) -> dict[str, str] | None:
        """Module -> device as Accelerate placed the model; None without a device map."""
        dm = self.identity.device_map
        return None if dm is None else dict(dm)

    @property
    def single_device(self) -> Any:
        """The one torch device holding every weight, or None when the model is spread
        over devices or offloaded: then only the hook-based engine can run it."""
        return single_device(self.bridge)


_CACHE: dict[tuple[object, ...], LoadedModel] = {}


def load_model(
    name_or_path: str,
    *,
    device: str = DEFAULT_DEVICE,
    dtype: object = None,
    device_map: object = None,
    trust_remote_code: bool = False,
    compatibility_mode: bool = DEFAULT_COMPATIBILITY_MODE,
    base_dir: Path | str | None = None,
) -> LoadedModel:
    """Load a model once per process; the same arguments return the same object.

    `name_or_path`: "seqcirc-mini", a hub name or alias ("gpt2-small", "EleutherAI/pythia-70m"),
    or a folder in Hugging Face format (relative paths are taken from `base_dir`, e.g. the
    directory of the .circ file that names it). `device`: "auto" (a GPU if present) or a
    torch device (seqcirc.models.device.resolve_device; E405 if not here). `dtype`:
    float32 (None), bfloat16 or float16 (E410). `device_map`: an Accelerate keyword, a
    JSON file (relative to the working folder) or a dict of module names to devices
    (seqcirc.models.device.read_device_map; E411); it excludes a `device` other than
    "auto". Raises ModelUnavailableError.
    """
    dtype_name = resolve_dtype(dtype)
    dmap = read_device_map(device_map)
    if dmap is not None and str(device or AUTO).strip().lower() != AUTO:
        raise InputError(
            f"--device {device} and --device-map exclude each other",
            code="E411",
            hint="a device map places every module itself; leave --device at auto",
        )
    device = resolve_device(device) if dmap is None else AUTO
    source, folder, resolved = _locate(name_or_path, base_dir)
    map_key = json.dumps(dmap, sort_keys=True)
    key = (source, resolved, device, dtype_name, map_key, trust_remote_code, compatibility_mode)
    if key in _CACHE:
        return _CACHE[key]
    with phase(f"load model {name_or_path}"):
        if source == "hub" and (folder is None or not any(folder.glob("*.safetensors"))):
            # Not cached, or cached without safetensors weights: fetch those (never pickle).
            folder = _download(name_or_path, resolved)
        assert folder is not None  # only an uncached hub model has no folder yet
        loaded = _load_folder(
            name_or_path, source, resolved, folder,
            placement=Placement(device, dtype_name, dmap),
            trust_remote_code=trust_remote_code, compatibility_mode=compatibility_mode,
        )  # fmt: skip
    _CACHE[key] = loaded
    return loaded


def clear_cache() -> None:
    """Forget loaded models (tests that need a fresh load)."""
    _CACHE.clear()


def _locate(name: str, base_dir: Path | str | None) -> tuple[Source, Path | None, str]:
    """(source, folder or None for an uncached hub model, resolved id)."""
    if name == BUNDLED_NAME:
        return "bundled", BUNDLED_DIR, str(BUNDLED_DIR.resolve())
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_dir():
        return "local", path, str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists():
        raise ModelUnavailableError(
            f"model folder '{name}' not found (looked for the folder {path.resolve()})",
            code="E501",
            hint="check the path (relative paths are taken from the .circ file's folder), "
            f"or use the bundled model '{BUNDLED_NAME}'",
        )
    hub_id = resolve_name(name)
    return "hub", _cached_snapshot(hub_id), hub_id


def _cached_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, found without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(hub_id, "config.json")
    except ValueError:  # not a valid repo id (e.g. a typo with spaces)
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _download(name: str, hub_id: str) -> Path:
    """Fetch a hub model's config, safetensors and tokenizer into the cache (no pickle)."""
    from huggingface_hub import constants, snapshot_download

    looked = f"the Hugging Face cache ({constants.HF_HUB_CACHE}) for '{hub_id}'"
    shown = f"'{name}'" if name == hub_id else f"'{name}' (hub id '{hub_id}')"
    close = difflib.get_close_matches(name, [*ALIASES, BUNDLED_NAME], n=1)
    fallback = _FALLBACK + (f"; did you mean '{close[0]}'?" if close and close[0] != name else "")
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailableError(
            f"model {shown} is not available: HF_HUB_OFFLINE is set and {looked} has no copy",
            code="E502",
            hint=fallback,
        )
    try:
        folder = snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS, etag_timeout=10)
    except Exception as exc:  # no network, unknown repo, gated repo: one message for all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"model {shown} is not available: not found in {looked}, and the hub "
            f"could not be reached or has no such model ({reason})",
            code="E502",
            hint=fallback,
        ) from exc
    return Path(folder)


def _check_folder(
    name: str, folder: Path, trust_remote_code: bool
) -> tuple[list[Path], ModelShape]:
    """Refuse folders that cannot be loaded safely or are not a model; return the
    safetensors files and the shape config.json gives."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelUnavailableError(
            f"model '{name}': no config.json in {folder}",
            code="E503",
            hint="a model folder must be in Hugging Face format: save it with "
            "model.save_pretrained(folder) and tokenizer.save_pretrained(folder)",
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelUnavailableError(
                f"model '{name}': refusing to load pickle weights ({', '.join(pickles)}) "
                f"from {folder}; seqcirc loads safetensors only, since unpickling can run "
                "arbitrary code",
                code="E504",
                hint="convert the weights once in a trusted environment: "
                "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder, "
                "safe_serialization=True) writes model.safetensors",
            )
        raise ModelUnavailableError(
            f"model '{name}': no weights (*.safetensors) in {folder}",
            code="E503",
            hint="save the model with model.save_pretrained(folder)",
        )
    config, shape = _read_config(name, config_path)
    if config.get("auto_map") and not trust_remote_code:
        raise ModelUnavailableError(
            f"model '{name}' needs code from its own repository (config.json has auto_map); "
            "seqcirc does not run remote code unless asked",
            code="E505",
            hint="read that code first; then pass trust_remote_code=True "
            "(on the command line: --trust-remote-code)",
        )
    return weights, shape


def _read_config(name: str, config_path: Path) -> tuple[dict[str, Any], ModelShape]:
    """config.json as a dict and the shape it gives; E503 when it is not a model's config."""
    try:
        config = read_config(config_path)
        model_type = config.get("model_type")
        if not isinstance(model_type, str) or not model_type:
            raise ValueError(
                'config.json names no model_type (a string such as "gpt2" or "llama"), '
                f"got {model_type!r}"
            )
        return config, shape_from_config(config)
    except json.JSONDecodeError as exc:
        raise ModelUnavailableError(
            f"model '{name}': {config_path} is not valid JSON ({exc})", code="E503"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(
            f"model '{name}' in {config_path.parent}: {config_reason(exc)}",
            code="E503",
            hint=CONFIG_HINT,
        ) from None


def _sha256(files: list[Path]) -> str:
    """Hash of the weights: of the one file, or of the sorted shards' names and hashes."""
    digests = []
    for path in files:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digests.append((path.name, h.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("\n".join(f"{n} {d}" for n, d in digests).encode()).hexdigest()


def _load_folder(
    name: str,
    source: Source,
    resolved: str,
    folder: Path,
    *,
    placement: Placement,
    trust_remote_code: bool,
    compatibility_mode: bool,
) -> LoadedModel:
    weights, shape = _check_folder(name, folder, trust_remote_code)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers.utils import logging as hf_logging

    from seqcirc.models import folder_checks

    # transformers' per-tensor "Loading weights" bar would interleave with seqcirc's own
    # progress and land in CI logs; seqcirc reports the load itself.
    hf_logging.disable_progress_bar()

    try:
        # Weights that are not the config's model are refused before anything is built,
        # and checked again (all loaded, all finite) while TransformerLens loads them.
        loader = folder_checks.check_before_loading(name, folder, weights, trust_remote_code)
        if loader.meta is not None:
            check_map_modules(placement.device_map, loader.meta)
        bridge = TransformerBridge.boot_transformers(
            str(folder), trust_remote_code=trust_remote_code, model_class=loader,
            **placement.boot_kwargs(),
        )  # fmt: skip
        if compatibility_mode:
            bridge.enable_compatibility_mode()
    except (ModelUnavailableError, InputError):
        raise
    except Exception as exc:  # a broken or unsupported folder: say which and why
        raise ModelUnavailableError(
            f"model '{name}' could not be loaded from {folder}: {type(exc).__name__}: {exc}",
            code="E506",
            hint="check that the folder was written by transformers' save_pretrained and that "
            "TransformerLens supports its architecture",
        ) from exc
    folder_checks.check_tokenizer(name, folder, bridge.tokenizer)
    folder_checks.check_vocab(name, folder, bridge.tokenizer, shape.d_vocab)
    bridge.eval()
    identity = ModelIdentity(
        name=name,
        resolved=resolved,
        source=source,
        revision=folder.name if source == "hub" else None,
        weights_sha256=None if source == "hub" else _sha256(weights),
        transformer_lens_version=version("transformer-lens"),
        compatibility_mode=compatibility_mode,
        prepend_bos=bool(bridge.cfg.default_prepend_bos),
        device=str(bridge.cfg.device if placement.device_map is not None else placement.device),
        dtype=placement.dtype,
        device_map=None if placement.device_map is None else _placed_map(bridge),
    )
    return LoadedModel(bridge=bridge, tokenizer=bridge.tokenizer, shape=shape, identity=identity)


def _placed_map(bridge: Any) -> tuple[tuple[str, str], ...]:
    """Module -> device as Accelerate placed them; {"": device} when it kept the model
    whole on one device (transformers then records no map)."""
    placed = getattr(bridge.original_model, "hf_device_map", None)
    if not placed:
        return (("", str(bridge.cfg.device)),)
    return tuple((k, str(v)) for k, v in placed.items())
