"""Device maps (`--device-map auto|balanced|FILE`, `device_map=`): a model's layers spread
over devices by Hugging Face Accelerate. On this CPU-only machine the bundled model is
split the way Accelerate allows here (layers 1 and 3 offloaded to disk, the rest on the
CPU) and an ablated run through its hook points equals the unsplit model's, and
seqcirc's own numbers on the unsplit model. Bad maps are E411 with a hint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.errors import EXIT_BAD_INPUT, EvaluationError, InputError
from seqcirc.models.device import check_map_modules, read_device_map, single_device
from seqcirc.models.load import load_model
from seqcirc.models.shapes import BUNDLED_DIR
from seqcirc.usecases.session import Options, Session
from tests.mini_circuits import needs_bundled

# seqcirc-mini (4 layers, tied embeddings): layers 1 and 3 read from disk per call.
SPLIT = {
    "transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h.0": "cpu",
    "transformer.h.1": "disk", "transformer.h.2": "cpu", "transformer.h.3": "disk",
    "transformer.ln_f": "cpu", "lm_head": "cpu",
}  # fmt: skip
HEADS, MLPS = ((0, 0), (0, 1), (1, 1), (3, 0)), (0, 2)  # the circuit of the ablation test
CIRC = """seed 0
task months = sequence(months, template=all, members=4, prompts=30, seed=0, start=8, range=12)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)

circuit c on seqcirc-mini {
  ablate nodes mean(corrupted) per position direction complement
  heads 0.0, 0.1, 1.1, 3.0
  mlp 0, 2
  expect faithfulness(bound=point) >= -1
}
"""


def _meta_mini() -> Any:
    from transformers import AutoConfig, GPT2LMHeadModel

    with torch.device("meta"):
        return GPT2LMHeadModel(AutoConfig.from_pretrained(str(BUNDLED_DIR)))


def _write(tmp_path: Path, data: object, name: str = "map.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_keywords_files_and_dicts(tmp_path: Path) -> None:
    assert read_device_map(None) is None
    assert read_device_map("auto") == "auto" and read_device_map(" Balanced ") == "balanced"
    assert read_device_map(_write(tmp_path, SPLIT)) == SPLIT
    assert read_device_map({"": "CPU"}) == {"": "cpu"}  # from Python, canonical
    assert read_device_map("map.json", base_dir=tmp_path) == SPLIT


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("{", "not readable JSON"),
        ("[1, 2]", "JSON list, not an object"),
        ("{}", "is empty"),
        ('{"": "gpu"}', "unknown device 'gpu'"),
        ('{"": "meta"}', "holds no weights"),
        ('{"": "cuda:0"}', "not available here"),
        ('{"": true}', "not a name"),
        ('{"": "auto"}', "name a device"),
    ],
)
def test_bad_map_files_are_e411(tmp_path: Path, content: str | None, says: str) -> None:
    spec = str(tmp_path / "nowhere.json") if content is None else _write(tmp_path, content)
    with pytest.raises(InputError) as err:
        read_device_map(spec)
    assert err.value.code == "E411" and err.value.exit_code == EXIT_BAD_INPUT
    assert says in err.value.message and err.value.hint


def test_gpus_and_offload_do_not_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert read_device_map({"a": 0, "b": "cuda:1"}) == {"a": 0, "b": "cuda:1"}
    with pytest.raises(InputError, match="mixes GPU devices with cpu/disk") as err:
        read_device_map({"a": 0, "b": "disk"})
    assert err.value.code == "E411"
    with pytest.raises(InputError, match="cuda:0 to cuda:1"):
        read_device_map({"a": 2})  # a GPU index past the last


@pytest.mark.parametrize(
    ("change", "says", "hint"),
    [
        ({"transformer.h.9": "cpu"}, "does not have: 'transformer.h.9'", "top-level modules"),
        ({"transformer.wtee": "cpu"}, "'transformer.wtee'", "did you mean 'transformer.wte'"),
        ({"transformer.ln_f": None}, "no device for 2 parameter(s): transformer.ln_f", "map"),
        ({"lm_head": "disk"}, "splits tied parameters", "same device"),
    ],
)
def test_maps_are_checked_against_the_models_modules(change: dict[str, Any], says: str,
                                                     hint: str) -> None:  # fmt: skip
    dmap = {k: v for k, v in {**SPLIT, **change}.items() if v is not None}
    check_map_modules(SPLIT, _meta_mini())  # the good map passes
    with pytest.raises(InputError) as err:
        check_map_modules(dmap, _meta_mini())
    assert err.value.code == "E411" and says in err.value.message
    assert hint in (err.value.hint or "")


@needs_bundled
def test_a_bad_map_fails_before_the_weights_load(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'transformer\.h\.7'"):
        load_model("seqcirc-mini", device_map={**SPLIT, "transformer.h.7": "cpu"})
    with pytest.raises(InputError, match="exclude each other") as err:
        load_model("seqcirc-mini", device="cpu", device_map="auto")
    assert err.value.code == "E411"


def _ablated(bridge: Any, task: Any) -> np.ndarray:
    """Per-prompt logit difference with every head and MLP outside HEADS/MLPS replaced by
    its per-position mean over the corrupted prompts, through TransformerLens hook points
    (hook_z, hook_mlp_out): a reference independent of seqcirc's engine."""
    layers = int(bridge.cfg.n_layers)
    names = [f"blocks.{i}.attn.hook_z" for i in range(layers)]
    names += [f"blocks.{i}.hook_mlp_out" for i in range(layers)]
    corrupted = torch.as_tensor(task.corrupted)
    with torch.inference_mode():
        _, cache = bridge.run_with_cache(corrupted, names_filter=lambda n: n in names)
    means = {n: cache[n].double().mean(0).to(cache[n].dtype) for n in names}

    def head_hook(layer: int) -> Any:
        keep = [h for (lay, h) in HEADS if lay == layer]

        def hook(z: torch.Tensor, hook: Any) -> torch.Tensor:
            out = means[f"blocks.{layer}.attn.hook_z"].to(z.device).expand_as(z).clone()
            out[:, :, keep] = z[:, :, keep]
            return out

        return hook

    def mlp_hook(layer: int) -> Any:
        return lambda out, hook: means[f"blocks.{layer}.hook_mlp_out"].to(out.device).expand_as(out)

    hooks = [(f"blocks.{i}.attn.hook_z", head_hook(i)) for i in range(layers)]
    hooks += [(f"blocks.{i}.hook_mlp_out", mlp_hook(i)) for i in range(layers) if i not in MLPS]
    with torch.inference_mode():
        logits = bridge.run_with_hooks(torch.as_tensor(task.clean), fwd_hooks=hooks)
    rows = torch.arange(logits.shape[0])
    at = logits[rows, torch.as_tensor(task.answer_pos)].double()
    return (
        at[rows, torch.as_tensor(task.correct)] - at[rows, torch.as_tensor(task.incorrect)]
    ).numpy()


@needs_bundled
def test_a_split_model_gives_the_unsplit_models_results(tmp_path: Path) -> None:
    path = tmp_path / "c.circ"
    path.write_text(CIRC)
    session = Session(Options(n_boot=100))
    result = session.evaluate_file(path).circuits[0]  # seqcirc's engine, unsplit model
    whole = load_model("seqcirc-mini")
    task = session.task(whole, _plan_circuit(path), tmp_path.resolve(), 0)  # its prompts

    split = load_model("seqcirc-mini", device_map=_write(tmp_path, SPLIT))
    assert split is not whole and load_model("seqcirc-mini", device_map=SPLIT) is split
    assert split.device_map == SPLIT and split.to_dict()["device_map"] == SPLIT
    json.dumps(split.to_dict())
    assert split.single_device is None and whole.single_device == torch.device("cpu")
    offloaded = {n for n, p in split.bridge.original_model.named_parameters() if p.is_meta}
    assert offloaded and all(
        n.startswith(("transformer.h.1.", "transformer.h.3.")) for n in offloaded
    )

    tokens = torch.as_tensor(task.clean)
    with torch.inference_mode():
        assert torch.equal(split.bridge(tokens), whole.bridge(tokens))
    on_split, on_whole = _ablated(split.bridge, task), _ablated(whole.bridge, task)
    assert np.array_equal(on_split, on_whole)
    assert np.abs(on_split - np.asarray(result.per_prompt["model"])).max() > 1  # it ablates
    np.testing.assert_allclose(on_split, result.per_prompt["circuit"], atol=1e-4, rtol=0)
    assert single_device(split.bridge) is None


def _plan_circuit(path: Path) -> Any:
    from seqcirc.plan.compile import compile_file

    return compile_file(path).circuits[0]


@needs_bundled
def test_seqcirc_on_a_split_model(tmp_path: Path) -> None:
    """Through `seqcirc.evaluate(..., device_map=FILE)`: the numbers of the unsplit model.
    The hand-written forwards refuse a split model (E302, `--engine fast`), so `auto`
    runs it on the generic engine, whose replacements follow each activation's device."""
    path = tmp_path / "c.circ"
    path.write_text(CIRC)
    whole = Session(Options(n_boot=100)).evaluate_file(path).circuits[0]
    with pytest.raises(EvaluationError) as err:
        Session(Options(n_boot=100, device_map=SPLIT, engine="fast")).evaluate_file(path)
    assert err.value.code == "E302" and "device map" in err.value.message
    split = Session(Options(n_boot=100, device_map=SPLIT)).evaluate_file(path)
    got = split.circuits[0]
    assert split.model["device_map"] == SPLIT and got.checks["engine"] == "generic"
    np.testing.assert_allclose(got.per_prompt["circuit"], whole.per_prompt["circuit"], atol=1e-4)
    np.testing.assert_allclose(got.per_prompt["model"], whole.per_prompt["model"], atol=1e-4)


@pytest.mark.parametrize(
    ("flags", "code"),
    [(["--dtype", "float64"], "E410"), (["--device-map", "nowhere.json"], "E411")],
)
def test_the_cli_refuses_before_any_model_loads(
    tmp_path: Path, flags: list[str], code: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import sys

    from seqcirc import cli
    from seqcirc.models import load

    monkeypatch.setattr(load, "_load_folder", None)  # loading anything would fail loudly
    (tmp_path / "c.circ").write_text(CIRC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqcirc", "test", "c.circ", *flags])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_BAD_INPUT, err
    assert f"error[{code}]" in err and "help:" in err and "Traceback" not in err


def test_the_gpu_check_script_runs_in_smoke_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/gpu_check.py, which a GPU machine runs on a 1.1B model, on a tiny Llama here."""
    import runpy
    import sys

    out = tmp_path / "gpu_check.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    info = json.loads(out.read_text())
    runs = {r["run"]: r for r in info["runs"]}
    assert info["smoke"] and len(runs) == 4
    ref, half = runs["float32, one device"], runs["bfloat16, one device"]
    assert ref["dtype"] == "float32" and half["dtype"] == "bfloat16"
    assert 0 < half["vs_float32"]["model_max"] < 0.05
    assert runs["bfloat16, device map auto"]["device_map"] == {"": "cpu"}
    split = runs["bfloat16, device map file"]
    refused = split.get("error", "").startswith("E302")  # until the hook-based engine runs it
    assert refused or split["device_map"]["model.layers.1"] == "disk"
    assert "wrote" in capsys.readouterr().out
