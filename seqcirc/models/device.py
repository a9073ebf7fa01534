"""Where and in what precision seqcirc runs a model, checked here once so every command
fails the same way: the device (`--device auto|cpu|cuda[:i]|mps`, E405), the dtype
(`--dtype float32|bfloat16|float16`, E410) and a device map (`--device-map
auto|balanced|FILE`, E411) that spreads a model's layers over devices through Hugging
Face Accelerate.

Every command with `--device` (test, discover, compare, the pytest plugin) resolves it
through `resolve_device`, called by seqcirc.models.load.load_model, which also resolves
the dtype and the device map.

The rule for engines (`single_device`): the evaluator's hand-written forwards
(seqcirc/forward/) read a model's weights as tensors, so they run a model only when
every parameter is materialised on one device. A model spread over several devices,
or with weights offloaded by Accelerate (held on the meta device and loaded per call),
runs through TransformerLens's hook points instead, whose module calls Accelerate
wraps so that each layer runs on its own device; replacement tensors are made on the
device of the activation they replace.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError

AUTO = "auto"
DEFAULT_DEVICE = AUTO
_HINT = "use --device auto (a GPU when one is present, else the CPU) or --device cpu"

# The dtypes a model may run in; the metric and the means are accumulated in float32.
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_DTYPE = "float32"
# Accelerate's placement strategies (`--device-map auto`); anything else is a JSON file.
DEVICE_MAP_KEYWORDS = ("auto", "balanced", "balanced_low_0", "sequential")
DeviceMap = str | dict[str, str | int]
_MAP_HINT = (
    "--device-map takes auto, balanced, balanced_low_0, sequential, or a JSON file "
    'mapping module names to devices, e.g. {"transformer.wte": "cpu", "transformer.h.0": '
    '"cpu", "transformer.h.1": "disk", ...}; devices: cpu, disk, cuda, cuda:N (or N), mps'
)


def resolve_device(spec: str | None) -> str:
    """`auto` -> "cuda" if torch sees a CUDA GPU, else "cpu"; any other spec is checked
    (a torch device string whose backend is present here) and returned canonical."""
    import torch

    spec = (spec or AUTO).strip().lower()
    if spec == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise InputError(
            f"unknown device {spec!r}",
            code="E405",
            hint="a torch device: auto, cpu, cuda, cuda:1, mps",
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
            raise InputError(
                f"device {spec!r} is not available here: {why} (torch {torch.__version__})",
                code="E405",
                hint=_HINT,
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(
                f"device {spec!r} is not available here: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}",
                code="E405",
                hint=_HINT,
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(
                f"device {spec!r} is not available here (no Apple GPU / MPS backend)",
                code="E405",
                hint=_HINT,
            )
    elif dev.type != "cpu":
        raise InputError(
            f"device {spec!r} is not supported", code="E405", hint="use auto, cpu, cuda or mps"
        )
    return str(dev)


def synchronize(device: object) -> None:
    """Wait for queued GPU work (before reading a timer); nothing on the CPU."""
    import torch

    dev = torch.device(str(device))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


# ---- dtype ------------------------------------------------------------------------


def resolve_dtype(spec: object) -> str:
    """The dtype's name ("float32", "bfloat16", "float16"); None is float32. A torch
    dtype is accepted too (the Python API). E410 for anything else."""
    if spec is None:
        return DEFAULT_DTYPE
    name = str(spec).strip().lower().removeprefix("torch.")
    if name not in DTYPES:
        raise InputError(
            f"unknown dtype {spec!r}",
            code="E410",
            hint=f"use one of {', '.join(DTYPES)} (the metric and the means are "
            "accumulated in float32 whatever the model's dtype)",
        )
    return name


def torch_dtype(name: str) -> Any:
    """The torch dtype of a name resolve_dtype returned."""
    import torch

    return getattr(torch, resolve_dtype(name))


# ---- device maps ------------------------------------------------------------------


def read_device_map(spec: object, base_dir: Path | None = None) -> DeviceMap | None:
    """`--device-map`: None, one of DEVICE_MAP_KEYWORDS, a JSON file (relative paths from
    `base_dir`, else the working folder) or, from Python, a mapping of module names to
    devices. Returns the keyword or the checked map; E411 names what is wrong. Module
    names are checked against the model when it loads (check_map_modules)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return _check_map(dict(spec), "the device map")
    if not isinstance(spec, str | Path) or not str(spec).strip():
        raise _map_error(f"a device map must be a keyword or a JSON file, not {spec!r}")
    text = str(spec).strip()
    if text.lower() in DEVICE_MAP_KEYWORDS:
        return text.lower()
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise _map_error(
            f"device map {text!r} is no keyword and {what} (looked for the file {path})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _map_error(f"device map file {path} is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise _map_error(
            f"device map file {path} holds a JSON {type(data).__name__}, not an object "
            "of module names to devices"
        )
    return _check_map(data, f"device map file {path}")


def _map_error(message: str, hint: str = _MAP_HINT) -> InputError:
    return InputError(message, code="E411", hint=hint)


def _check_map(data: dict[Any, Any], where: str) -> dict[str, str | int]:
    if not data:
        raise _map_error(f"{where} is empty: it places no module")
    out: dict[str, str | int] = {}
    for module, device in data.items():
        if not isinstance(module, str):
            raise _map_error(f"{where}: module names are strings, not {module!r}")
        out[module] = _check_map_device(module, device, where)
    kinds = {"gpu" if isinstance(d, int) or d.startswith(("cuda", "mps")) else d
             for d in out.values()}  # fmt: skip
    if "gpu" in kinds and kinds & {"cpu", "disk"}:
        raise _map_error(
            f"{where} mixes GPU devices with cpu/disk offload, which TransformerBridge "
            "refuses (offload is verified on CPU-only machines)",
            hint="map every module to a GPU (several GPUs are fine), or every module to "
            "cpu and disk",
        )
    return out


def _check_map_device(module: str, device: object, where: str) -> str | int:
    """One device of a map: cpu, disk, cuda[:N], N (a CUDA index) or mps, present here."""
    if isinstance(device, int) and not isinstance(device, bool):
        spec = f"cuda:{device}"
    elif isinstance(device, str):
        spec = device.strip().lower()
    else:
        raise _map_error(f"{where}: module {module!r} has device {device!r}, not a name")
    if spec == "disk":
        return spec
    if spec == "meta":
        raise _map_error(
            f"{where}: module {module!r} on 'meta', which holds no weights to run",
            hint='use "disk" to keep a module\'s weights off memory (they are read per call)',
        )
    try:
        resolved = resolve_device(spec) if spec != AUTO else None
    except InputError as err:
        raise _map_error(f"{where}: module {module!r}: {err.message}") from None
    if resolved is None:
        raise _map_error(f"{where}: module {module!r} has device 'auto'; name a device")
    return device if isinstance(device, int) else resolved


def check_map_modules(device_map: DeviceMap | None, model: Any) -> None:
    """E411 unless every key of an explicit map names a module of `model` (a model built
    on the meta device will do), every parameter is placed, and tied parameters (GPT-2's
    wte and lm_head) are placed together."""
    import difflib

    if not isinstance(device_map, dict):
        return
    modules = {name for name, _ in model.named_modules()}
    unknown = [k for k in device_map if k not in modules]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(modules), n=1)
        raise _map_error(
            f"the device map names {len(unknown)} module(s) the model does not have: "
            f"{', '.join(repr(k) for k in unknown[:4])}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"the model's top-level modules: {_top_modules(modules)}",
        )
    place = {name: _placed(name, device_map) for name, _ in model.named_parameters()}
    unplaced = [name for name, dev in place.items() if dev is None]
    if unplaced:
        raise _map_error(
            f"the device map places no device for {len(unplaced)} parameter(s): "
            f"{', '.join(unplaced[:4])}",
            hint="map every module (or a module above it) to a device",
        )
    for target, source in (getattr(model, "all_tied_weights_keys", None) or {}).items():
        a, b = _placed(target, device_map), _placed(source, device_map)
        if a is not None and b is not None and a != b:
            raise _map_error(
                f"the device map splits tied parameters: {target} on {a!r} but "
                f"{source} on {b!r} (they are one tensor)",
                hint="map the modules of tied parameters to the same device",
            )


def _placed(param: str, device_map: dict[str, str | int]) -> str | int | None:
    """The device of a parameter: its longest module prefix in the map."""
    parts = param.split(".")
    for cut in range(len(parts), -1, -1):
        key = ".".join(parts[:cut])
        if key in device_map:
            return device_map[key]
    return None


def _top_modules(modules: set[str]) -> str:
    depth = {m for m in modules if m and m.count(".") <= 1 and not m.split(".")[-1].isdigit()}
    return ", ".join(sorted(depth)[:8])


def single_device(model: Any) -> Any:
    """The torch device holding every parameter of `model` (a TransformerBridge or a
    torch module), or None when they are spread over devices or offloaded (Accelerate
    leaves offloaded parameters on the meta device). The hand-written forwards run a
    model only when this is not None (the rule in this module's docstring)."""
    module = getattr(model, "original_model", model)
    devices = {p.device for p in module.parameters()}
    if len(devices) != 1:
        return None
    (device,) = devices
    return None if device.type == "meta" else device


# ---- placement of a loaded folder ------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where and in what dtype a folder's weights load: one device, or a device map."""

    device: str  # resolved; "auto" when a device map places the modules
    dtype: str
    device_map: DeviceMap | None

    def boot_kwargs(self) -> dict[str, Any]:
        """TransformerBridge.boot_transformers' placement arguments."""
        kwargs: dict[str, Any] = {"dtype": torch_dtype(self.dtype)}
        if self.device_map is None:
            kwargs["device"] = self.device
            return kwargs
        kwargs["device_map"] = self.device_map
        if not isinstance(self.device_map, dict) or "disk" in self.device_map.values():
            kwargs["offload_folder"] = offload_folder()
        return kwargs


_OFFLOAD: list[str] = []  # the process's offload folder, made on first use


def offload_folder() -> str:
    """One temporary folder per process for disk-offloaded weights, removed at exit."""
    if not _OFFLOAD:
        _OFFLOAD.append(tempfile.mkdtemp(prefix="seqcirc-offload-"))
        atexit.register(shutil.rmtree, _OFFLOAD[0], ignore_errors=True)
    return _OFFLOAD[0]
