"""An optional on-disk cache of mean-ablation values, so a new process skips the corrupted
forward pass a task's means need (in one process seqcirc.usecases.session already keeps them).

Only mean ablation is cached: its values are per position (or pooled), [S, ...], small.
Resample ablation and patching keep every prompt's own activations, which are as large as
the run itself and cheap to recompute next to storing them; they are never written here.

One safetensors file per key (never pickle), under the cache folder (`seqcirc test
--cache-dir DIR`, `--seqcirc-cache-dir`, or SEQCIRC_CACHE_DIR; off by default). The key
covers everything that changes the means, so an entry is never stale: a hash of the
model (architecture config, every parameter's name, dtype, shape and bytes), of the
corrupted token ids and answer positions, the ablation set-up, the dtype, the device
type, the rows per chunk of the sweep (they change float summation order), and the
seqcirc and torch versions. Each file also stores its key and a hash of its tensors;
a file that fails either check, or cannot be read, is recomputed and rewritten, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqcirc.errors import InputError, SeqcircWarning
from seqcirc.plan import to_jsonable

ENV_VAR = "SEQCIRC_CACHE_DIR"
FORMAT = 1

# module -> (the parameters' identities and version counters, digest): an in-place change
# of a parameter bumps its version counter, so the memo cannot outlive the weights.
_DIGESTS: weakref.WeakKeyDictionary[Any, tuple[tuple[tuple[int, int, int], ...], str]] = (
    weakref.WeakKeyDictionary()
)


class MeansCacheWarning(SeqcircWarning):
    """A cache file was unreadable or did not match its key; it was recomputed."""

    code = "W903"


def _tensor_bytes(t: Tensor) -> memoryview:
    flat = t.detach().reshape(-1).contiguous().cpu()
    return flat.view(torch.uint8).numpy().data


def weights_digest(model: Any) -> str:
    """sha256 of a model's architecture config and every parameter (name, dtype, shape,
    bytes); computed once per loaded model and remembered while its weights are unchanged."""
    module = getattr(model, "original_model", model)
    params = list(module.named_parameters())
    stamp = tuple((id(p), p.data_ptr(), p._version) for _, p in params)
    memo = _DIGESTS.get(module)
    if memo is not None and memo[0] == stamp:
        return memo[1]
    h = hashlib.sha256(type(module).__name__.encode())
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        cfg = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
        cfg.pop("transformers_version", None)
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, p in params:
        h.update(f"\n{name}|{p.dtype}|{tuple(p.shape)}\n".encode())
        h.update(_tensor_bytes(p))
    digest = h.hexdigest()
    _DIGESTS[module] = (stamp, digest)
    return digest


def array_digest(a: Any) -> str:
    arr = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}\n".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def cache_key(
    model: Any, corrupted: Any, answer_pos: Any, ablation: Any, *, dtype: torch.dtype,
    device: torch.device, rows: int,
) -> dict[str, Any]:  # fmt: skip
    """Everything that changes the mean-ablation values of one task on one model. The
    ablation set-up as the plan writes it: a field at its default (per position) is left
    out, so keys of earlier set-ups are unchanged."""
    from seqcirc import __version__

    return {
        "format": FORMAT,
        "weights": weights_digest(model),
        "corrupted": array_digest(corrupted),
        "answer_pos": array_digest(answer_pos),
        "ablation": to_jsonable(ablation),
        "dtype": str(dtype),
        "device": torch.device(device).type,
        "rows": int(rows),
        "seqcirc": __version__,
        "torch": torch.__version__,
    }


def _payload_digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


@dataclass(frozen=True)
class Means:
    """Mean-ablation values: z [L][S,H,dh], mlp_out [L][S,d], the embeddings [S,d]."""

    z: tuple[Tensor, ...]
    mlp: tuple[Tensor, ...]
    embed: Tensor

    def tensors(self) -> dict[str, Tensor]:
        out = {"embed": self.embed}
        out.update({f"z.{i}": t for i, t in enumerate(self.z)})
        out.update({f"mlp.{i}": t for i, t in enumerate(self.mlp)})
        return out


class MeansCache:
    """A folder of mean-ablation values, one safetensors file per key."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.last_status = ""  # "hit", "stored", or "recomputed: why" (for results and tests)

    @classmethod
    def from_option(cls, folder: str | Path | None) -> MeansCache | None:
        """The cache a run uses: the option's folder, else SEQCIRC_CACHE_DIR, else none."""
        chosen = folder if folder else os.environ.get(ENV_VAR)
        return cls(chosen) if chosen else None

    def path(self, key: dict[str, Any]) -> Path:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return self.folder / f"means-{name}.safetensors"

    def load(self, key: dict[str, Any], expected: Means, device: torch.device) -> Means | None:
        """The cached means for `key`, or None (no file, or a bad one: then a warning).

        `expected`: tensors of the right names, shapes and dtype (values unused), so a file
        that is readable but not what this run needs is refused too."""
        path = self.path(key)
        if not path.is_file():
            self.last_status = ""
            return None
        try:
            got = self._read(path, key, expected)
        except (OSError, ValueError, RuntimeError) as err:
            self.last_status = f"recomputed: {err}"
            warnings.warn(
                f"means cache file {path} is unusable ({err}); recomputing it",
                MeansCacheWarning,
                stacklevel=2,
            )
            return None
        self.last_status = "hit"
        n = len(expected.z)
        on = {k: v.to(device) for k, v in got.items()}
        return Means(
            tuple(on[f"z.{i}"] for i in range(n)),
            tuple(on[f"mlp.{i}"] for i in range(n)),
            on["embed"],
        )

    @staticmethod
    def _read(path: Path, key: dict[str, Any], expected: Means) -> dict[str, Tensor]:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                meta = fh.metadata() or {}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
        except SafetensorError as err:
            raise ValueError(f"not a readable safetensors file: {err}") from None
        if meta.get("key") != json.dumps(key, sort_keys=True):
            raise ValueError("its stored key differs from this run's")
        want = expected.tensors()
        if set(tensors) != set(want):
            raise ValueError("it holds other tensors than mean-ablation values of this model")
        for name, t in want.items():
            if tensors[name].shape != t.shape or tensors[name].dtype != t.dtype:
                raise ValueError(f"tensor {name} has shape {tuple(tensors[name].shape)}")
        if meta.get("sha256") != _payload_digest(tensors):
            raise ValueError("its tensors do not match their recorded hash")
        return tensors

    def store(self, key: dict[str, Any], means: Means) -> Path:
        """Write the means atomically (a reader never sees half a file)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().cpu() for k, v in means.tensors().items()}
        meta = {"key": json.dumps(key, sort_keys=True), "sha256": _payload_digest(tensors)}
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".means-", suffix=".tmp")
            os.close(fd)
            try:
                save_file(tensors, tmp, metadata=meta)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as err:
            raise InputError(
                f"cannot write the means cache in {self.folder}: {err.strerror or err}",
                code="E903",
                hint=f"choose a writable folder with --cache-dir (or {ENV_VAR}), or leave it off",
            ) from None
        if not self.last_status.startswith("recomputed"):
            self.last_status = "stored"
        return path


__all__ = [
    "ENV_VAR",
    "Means",
    "MeansCache",
    "MeansCacheWarning",
    "array_digest",
    "cache_key",
    "weights_digest",
]
