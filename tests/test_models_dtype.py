"""Dtypes (`--dtype`, `dtype=`): the weights load in float32, bfloat16 or float16; the
means are accumulated in float32; the dtype is in the model identity and the means-cache
key; and bfloat16 and float16 results stay within the tolerance docs/statistics.md
states of float32's on the bundled model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.engine.means_cache import MeansCache
from seqcirc.engine.prepare import _Acts, prepare
from seqcirc.errors import EXIT_BAD_INPUT, InputError
from seqcirc.forward.common import NodeRun
from seqcirc.models.device import DTYPES, resolve_dtype, torch_dtype
from seqcirc.models.load import load_model
from seqcirc.plan import AblationSpec
from seqcirc.usecases.session import Options, Session
from tests.mini_circuits import needs_bundled
from tests.planted import bridge_of, planted_hf, planted_task

# docs/statistics.md, "Precision": the largest difference from float32 the suite accepts.
RATIO_TOL = {"bfloat16": 0.01, "float16": 0.001}  # faithfulness (a ratio of means)
MEAN_TOL = {"bfloat16": 0.01, "float16": 0.001}  # F(M), F(C), relative to |F(M)|
PROMPT_TOL = {"bfloat16": 0.25, "float16": 0.03}  # one prompt's logit difference

CIRC = """seed 0
task months = sequence(months, template=all, members=4, prompts=96, seed=0, start=8, range=12)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)

circuit c on seqcirc-mini {
  ablate nodes mean(corrupted) per position direction complement
  heads 0.0, 0.1, 1.0, 1.1
  mlp 0..2
  expect faithfulness >= 0.8
}
"""


@pytest.mark.parametrize(
    ("spec", "want"),
    [(None, "float32"), ("bfloat16", "bfloat16"), (" Float16 ", "float16"),
     (torch.bfloat16, "bfloat16"), ("torch.float32", "float32")],
)  # fmt: skip
def test_dtype_names(spec: object, want: str) -> None:
    assert resolve_dtype(spec) == want
    assert torch_dtype(want) == getattr(torch, want)


@pytest.mark.parametrize("spec", ["float64", "fp8", "half", torch.int8, 16])
def test_other_dtypes_are_e410(spec: object) -> None:
    with pytest.raises(InputError) as err:
        resolve_dtype(spec)
    assert err.value.code == "E410" and err.value.exit_code == EXIT_BAD_INPUT
    assert all(name in (err.value.hint or "") for name in DTYPES)


def _run(value: float, dtype: torch.dtype, rows: int) -> NodeRun:
    """A captured run whose every activation is `value` (one row per call)."""
    t = torch.full((rows, 3, 2), value, dtype=dtype)
    return NodeRun(None, t[:, 0], (t[..., None],), (t,), t)


@pytest.mark.parametrize(
    ("dtype", "value", "n"),
    [(torch.bfloat16, 1.0078125, 600),  # a bfloat16 running sum past 256 drops the 1/128
     (torch.float16, 300.0, 400)],  # a float16 sum of 400 x 300 overflows (max 65504)
)  # fmt: skip
def test_means_are_accumulated_in_float32(dtype: torch.dtype, value: float, n: int) -> None:
    acts = _Acts(keep=False)
    for _ in range(n):
        acts.add(_run(value, dtype, rows=1))
    values, embed = acts.mean()
    for t in (*values.z, *values.mlp, embed):
        assert t.dtype == dtype  # the dtype the forward replaces in
        assert torch.equal(t, torch.full_like(t, value))  # exact: value is representable
    # the same sum in the model's dtype would be wrong: why the accumulation is float32
    naive = torch.zeros((), dtype=dtype)
    for _ in range(n):
        naive = naive + torch.tensor(value, dtype=dtype)
    assert not torch.equal(naive / n, torch.tensor(value, dtype=dtype))


@needs_bundled
def test_weights_load_in_the_dtype_and_say_so() -> None:
    full = load_model("seqcirc-mini")
    half = load_model("seqcirc-mini", dtype="bfloat16")
    assert half is not full and load_model("seqcirc-mini", dtype="bfloat16") is half
    assert {p.dtype for p in half.bridge.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in full.bridge.parameters()} == {torch.float32}
    assert half.to_dict()["dtype"] == "bfloat16" and full.to_dict()["dtype"] == "float32"
    with pytest.raises(InputError) as err:
        load_model("seqcirc-mini", dtype="float64")
    assert err.value.code == "E410"


def test_the_dtype_is_in_the_means_cache_key(tmp_path: Path) -> None:
    hf, task = planted_hf(), planted_task()
    cache = MeansCache(tmp_path)
    assert prepare(bridge_of(hf), task, AblationSpec(), means_cache=cache).means_cache == "stored"
    half = bridge_of(planted_hf().to(torch.bfloat16))
    state = prepare(half, task, AblationSpec(), means_cache=cache)
    assert state.means_cache == "stored" and len(list(tmp_path.glob("*.safetensors"))) == 2
    assert prepare(half, task, AblationSpec(), means_cache=cache).means_cache == "hit"
    assert all(t.dtype == torch.bfloat16 for t in state.values.z)
    keys = [f.read_bytes()[:4000].decode("latin-1") for f in tmp_path.glob("*.safetensors")]
    assert sum("torch.bfloat16" in k for k in keys) == 1
    assert sum("torch.float32" in k for k in keys) == 1


def _evaluate(path: Path, dtype: str) -> Any:
    return Session(Options(dtype=dtype, n_boot=200)).evaluate_file(path).circuits[0]


@needs_bundled
def test_half_precision_results_stay_within_the_stated_tolerance(tmp_path: Path) -> None:
    path = tmp_path / "c.circ"
    path.write_text(CIRC)
    ref = _evaluate(path, "float32")
    scale = abs(ref.f_model)
    for dtype in ("bfloat16", "float16"):
        got = _evaluate(path, dtype)
        assert got.claims[0].verdict == ref.claims[0].verdict == "pass"
        assert abs(got.claims[0].value - ref.claims[0].value) <= RATIO_TOL[dtype], dtype
        for f in ("f_model", "f_circuit", "f_empty"):
            assert abs(getattr(got, f) - getattr(ref, f)) <= MEAN_TOL[dtype] * scale, (dtype, f)
        for part in ("model", "circuit", "empty"):
            diff = np.abs(np.subtract(got.per_prompt[part], ref.per_prompt[part]))
            assert diff.max() <= PROMPT_TOL[dtype], (dtype, part, diff.max())
            assert diff.max() > 0  # the dtype did reach the forward
