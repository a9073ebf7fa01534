"""seqcirc.models.device: `auto` picks the GPU when there is one; a device that is not here is
an InputError E405 with a hint, raised where models are loaded."""

from __future__ import annotations

import pytest
import torch

from seqcirc.errors import EXIT_BAD_INPUT, InputError
from seqcirc.models.device import resolve_device


def test_auto_is_cuda_exactly_when_torch_sees_a_gpu() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == want
    assert resolve_device(None) == want
    assert resolve_device(" CPU ") == "cpu"
    assert resolve_device("cpu:0") == "cpu:0"


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu", "meta"])
def test_unknown_devices_are_input_errors(spec: str) -> None:
    with pytest.raises(InputError) as err:
        resolve_device(spec)
    assert err.value.code == "E405" and err.value.exit_code == EXIT_BAD_INPUT
    assert err.value.hint


def test_cuda_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="not available here") as err:
        resolve_device("cuda")
    assert err.value.code == "E405" and "--device cpu" in (err.value.hint or "")
    assert resolve_device("auto") == "cpu"


def test_a_gpu_index_past_the_last_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(InputError, match="cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_load_model_resolves_the_device() -> None:
    from seqcirc.models.load import load_model

    with pytest.raises(InputError) as err:
        load_model("seqcirc-mini", device="tpu")
    assert err.value.code == "E405"
