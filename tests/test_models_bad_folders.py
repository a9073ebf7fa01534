"""Broken model folders: each is a coded model error (exit 3 from `seqcirc test`), never
a traceback and never a silently different model. The folders are the bundled
seqcirc-mini's files, copied and then broken."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from seqcirc.errors import EXIT_RUNTIME, ModelUnavailableError, SeqcircError
from seqcirc.models.load import LoadedModel, clear_cache, load_model
from seqcirc.models.shapes import BUNDLED_DIR, shape_of
from seqcirc.plan.compile import compile_text
from tests.cli_in_process import seqcirc

ROOT = Path(__file__).resolve().parents[1]
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
CONFIG = json.loads((BUNDLED_DIR / "config.json").read_text())
CIRC = """task months = sequence(months, members=4, prompts=15)
circuit c on "./{folder}" {{
  heads 0.0
  expect faithfulness >= 0.1
}}
"""


Tensors = Callable[[dict], dict]


def folder(tmp_path: Path, name: str = "model", *, config: Any = None,
           drop: tuple[str, ...] = (), weights: Tensors | None = None) -> Path:  # fmt: skip
    """A copy of seqcirc-mini in tmp_path/name, its config.json replaced by `config`
    (written as JSON; a str is written as it is), files in `drop` left out and the
    tensors passed through `weights`."""
    out = tmp_path / name
    out.mkdir()
    for file in FILES:
        if file not in drop:
            shutil.copy(BUNDLED_DIR / file, out / file)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (out / "config.json").write_text(text, encoding="utf-8")
    if weights is not None:
        tensors = weights(load_file(out / "model.safetensors"))
        save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


def load_error(path: Path) -> ModelUnavailableError:
    clear_cache()
    with pytest.raises(ModelUnavailableError) as info:
        load_model(str(path))
    err = info.value
    assert err.exit_code == EXIT_RUNTIME and err.render()
    return err


def test_the_bundled_model_loads_with_nothing_missing_or_left_over():
    """GPT-2's attention masks are buffers it does not save: transformers' report must
    not count them (nor the lm_head tied to the embedding)."""
    from transformers import GPT2LMHeadModel

    _, info = GPT2LMHeadModel.from_pretrained(str(BUNDLED_DIR), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"] and not info["error_msgs"]
    clear_cache()
    assert isinstance(load_model("seqcirc-mini"), LoadedModel)


def test_a_config_with_more_layers_than_the_weights(tmp_path):
    err = load_error(folder(tmp_path, config={**CONFIG, "n_layer": 6}))
    assert err.code == "E507"
    assert "24 tensors the config implies are not in the weights" in err.message
    assert "transformer.h.4.attn.c_attn.bias" in err.message and "... and 20 more" in err.message
    assert "config.json implies 6 layers, the weights hold 4" in err.message
    assert "randomly initialised" in err.message


def test_a_config_with_fewer_layers_than_the_weights(tmp_path):
    """Tensors left over are caught by transformers' own loading report (11 of the 12:
    its pattern for GPT-2's unsaved mask, "attn.bias", also matches c_attn.bias)."""
    err = load_error(folder(tmp_path, config={**CONFIG, "n_layer": 3}))
    assert err.code == "E507"
    assert "11 tensors in the weights are not in the model it describes" in err.message
    assert "transformer.h.3.attn.c_attn.weight" in err.message
    assert "config.json implies 3 layers, the weights hold 4" in err.message


def test_an_untied_head_without_its_weights(tmp_path):
    err = load_error(folder(tmp_path, config={**CONFIG, "tie_word_embeddings": False}))
    assert err.code == "E507"
    assert "1 tensors the config implies are not in the weights (lm_head.weight)" in err.message


def test_absurdly_many_layers_are_refused_before_building_even_a_shape(tmp_path):
    start = time.monotonic()
    err = load_error(folder(tmp_path, config={**CONFIG, "n_layer": 10**9}))
    assert time.monotonic() - start < 30
    assert err.code == "E507"
    assert "config.json says 1,000,000,000 layers, the weights hold 4" in err.message


def test_a_weight_missing_from_the_file(tmp_path):
    def drop_one(tensors: dict) -> dict:
        del tensors["transformer.h.2.mlp.c_fc.weight"]
        return tensors

    err = load_error(folder(tmp_path, weights=drop_one))
    assert err.code == "E507"
    assert "1 tensors the config implies are not in the weights" in err.message
    assert "transformer.h.2.mlp.c_fc.weight" in err.message


@pytest.mark.parametrize(
    ("change", "tensor"),
    [({"vocab_size": 300}, "transformer.wte.weight is [226, 128] in the weights but [300, 128]"),
     ({"n_embd": 256, "n_inner": None}, "transformer.h.0.attn.c_attn.bias is [384]"),
     ({"n_positions": 128}, "transformer.wpe.weight is [64, 128] in the weights but [128, 128]")],
)  # fmt: skip
def test_sizes_that_disagree_with_the_weights(tmp_path, change, tensor):
    err = load_error(folder(tmp_path, config={**CONFIG, **change}))
    assert err.code == "E507" and "other shapes than the config implies" in err.message
    assert tensor in err.message


def test_configs_of_other_architectures_are_refused_before_building_them(tmp_path):
    """Their defaults describe 20B and 6.5B models: nothing may be built. The process
    gets 8 GB of address space, plenty to refuse and far too little to build either."""
    archs = {"gpt_neox": "GPTNeoXForCausalLM", "llama": "LlamaForCausalLM"}
    paths = [str(folder(tmp_path, kind, config={**CONFIG, "model_type": kind})) for kind in archs]
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"
        "from seqcirc.models.load import load_model\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        load_model(path)\n"
        "    except Exception as e:\n        print(type(e).__name__, e.code, e.message)\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True,
                          env=_env(), timeout=300)  # fmt: skip
    assert time.monotonic() - start < 120
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout + proc.stderr
    for line, (kind, cls) in zip(lines, archs.items(), strict=True):
        assert line.startswith("ModelUnavailableError E507"), line
        assert f"config.json says model_type '{kind}' ({cls}," in line
        assert "the weights hold none of those (they hold transformer.h.0.attn.c_attn.bias" in line


@pytest.mark.parametrize(
    ("config", "reason"),
    [([CONFIG], "config.json holds a JSON list, not an object"),
     ("null", "config.json holds a JSON null, not an object"),
     ('"gpt2"', "config.json holds a JSON string, not an object"),
     ("[" * 100_000, "config.json is JSON nested too deeply to read"),
     ({k: v for k, v in CONFIG.items() if k != "model_type"}, "config.json names no model_type"),
     ({**CONFIG, "model_type": 7}, "config.json names no model_type"),
     ({**CONFIG, "n_layer": "six"}, "n_layer must be a positive whole number, got 'six'"),
     ({**CONFIG, "n_head": 0}, "n_head must be a positive whole number, got 0"),
     ({**CONFIG, "architectures": "GPT2"}, "architectures must be a list of names"),
     ({"model_type": "gpt2"}, "config.json lacks n_layer/num_hidden_layers, n_head or n_embd")],
)  # fmt: skip
def test_a_config_that_is_no_model_config(tmp_path, config, reason):
    path = folder(tmp_path, config=config)
    err = load_error(path)
    assert err.code == "E503" and reason in err.message, err.message
    assert err.hint and "model_type" in err.hint
    if "model_type" in reason:  # `seqcirc check` and `--model` need the shape only
        return
    with pytest.raises(ModelUnavailableError) as info:  # the shape `--model` looks up
        shape_of(str(path))
    assert info.value.code == "E503"
    with pytest.raises(SeqcircError) as checked:
        compile_text(CIRC.format(folder=path.name), str(tmp_path / "h.circ"))
    assert checked.value.code == "E202" and reason in checked.value.render()


def test_a_config_that_is_not_json_or_not_utf8(tmp_path):
    assert load_error(folder(tmp_path, "a", config="{n_layer: 4")).code == "E503"
    path = folder(tmp_path, "b")
    (path / "config.json").write_bytes(b'{"model_type": "gpt2\xff"}')
    err = load_error(path)
    assert err.code == "E503" and "config.json is not UTF-8 text" in err.message


def test_a_folder_without_a_tokenizer(tmp_path):
    err = load_error(folder(tmp_path, drop=("tokenizer.json", "tokenizer_config.json")))
    assert err.code == "E503" and "no tokenizer in" in err.message
    assert "tokenizer.save_pretrained" in (err.hint or "")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite(tmp_path, bad):
    def spoil(tensors: dict) -> dict:
        tensors["transformer.h.1.attn.c_proj.weight"][3, 5] = bad
        return tensors

    err = load_error(folder(tmp_path, weights=spoil))
    assert err.code == "E508" and "not finite" in err.message
    assert "1 tensors hold NaN or infinite values (transformer.h.1.attn.c_proj.weight)" in (
        err.message
    )


def test_a_damaged_weights_file(tmp_path):
    path = folder(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    err = load_error(path)
    assert err.code == "E506" and "model.safetensors" in err.message


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


def test_the_cli_says_what_is_wrong_with_a_folder(tmp_path):
    folder(tmp_path, "six", config={**CONFIG, "n_layer": 6})
    folder(tmp_path, "listed", config=[CONFIG])
    folder(tmp_path, "untokenized", drop=("tokenizer.json", "tokenizer_config.json"))
    for name in ("six", "listed", "untokenized"):
        (tmp_path / f"{name}.circ").write_text(CIRC.format(folder=name))
    proc = _cli("test", "six.circ", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "error[E507]" in proc.stderr and "config.json implies 6 layers" in proc.stderr
    proc = _cli("test", "untokenized.circ", cwd=tmp_path)
    assert proc.returncode == 3 and "error[E503]" in proc.stderr and "no tokenizer" in proc.stderr
    proc = _cli("check", "listed.circ", cwd=tmp_path)  # `test` checks the file first too
    assert proc.returncode == 2, proc.stderr
    assert "error[E202]" in proc.stderr and "holds a JSON list" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal failure" not in proc.stderr


# ---- fuzz: mutated config values and types, missing files --------------------------

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.integers(0, 300), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["gpt2", "llama", "gpt_neox", "bert", "", "GPT2LMHeadModel"]),
)  # fmt: skip
KEYS = st.sampled_from(
    [*CONFIG, "num_hidden_layers", "hidden_size", "intermediate_size", "auto_map",
     "tie_word_embeddings", "max_position_embeddings", "num_attention_heads"]
)  # fmt: skip


@st.composite
def broken_folders(draw: st.DrawFn) -> tuple[Any, tuple[str, ...]]:
    config: Any = dict(CONFIG)
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            config[draw(KEYS)] = draw(VALUES)
        else:
            config.pop(draw(KEYS), None)
    if draw(st.integers(0, 9)) == 0:
        config = draw(VALUES)  # no object at all
    drop = tuple(draw(st.lists(st.sampled_from(FILES), max_size=2, unique=True)))
    return config, drop


FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(case=broken_folders())
def test_mutated_folders_load_or_raise_seqcirc_errors(tmp_path_factory, case):
    config, drop = case
    path = folder(tmp_path_factory.mktemp("fuzz"), config=config, drop=drop)
    clear_cache()
    try:
        loaded = load_model(str(path))
    except SeqcircError as err:
        assert err.code.startswith("E5") and err.render()
        return
    assert isinstance(loaded, LoadedModel)
    with torch.no_grad():
        assert torch.isfinite(loaded.bridge(loaded.bridge.to_tokens(["Ann born in May."]))).all()
