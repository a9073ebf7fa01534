"""Which torch device seqcirc runs on: `auto` (a GPU when one is present, else the CPU),
or a device the user names, checked here once so every command fails the same way.

Every command with `--device` (test, discover, compare, the pytest plugin) resolves it
through `resolve_device`, called by seqcirc.models.load.load_model.
"""

from __future__ import annotations

from seqcirc.errors import InputError

AUTO = "auto"
DEFAULT_DEVICE = AUTO
_HINT = "use --device auto (a GPU when one is present, else the CPU) or --device cpu"


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
