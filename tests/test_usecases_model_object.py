"""Bring your own model: `seqcirc.evaluate(path, model=..., tokenizer=...)` and `Session`
take a TransformerBridge, or a transformers PreTrainedModel with its tokenizer, as the
model of every circuit in the file. Its numbers equal those of the same weights loaded
from a folder; anything else is a coded error saying what is accepted; README's example
runs on a tiny model built in code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

import seqcirc
from seqcirc.errors import EXIT_BAD_INPUT, SeqcircError
from seqcirc.models.load import load_model
from seqcirc.models.objects import clear_objects, load_object
from seqcirc.models.shapes import BUNDLED_DIR
from seqcirc.usecases.session import Options, Session
from tests.llama_tiny import llama_tokenizer, save_tiny_llama
from tests.mini_circuits import needs_bundled

ROOT = Path(__file__).resolve().parents[1]
CIRC = """seed 0
task months = sequence(months, template=all, members=4, prompts=30, seed=0, start=8, range=12)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)

circuit c on seqcirc-mini {
  heads 0.0, 1.1
  mlp 0
  expect faithfulness(bound=point) >= -1
}
"""
FAST = {"n_boot": 100}


def _tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(BUNDLED_DIR))


def _gpt2(seed: int = 0, layers: int = 2) -> GPT2LMHeadModel:
    """A random GPT-2 over the bundled tokenizer's vocabulary, in training mode as built."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=226, n_positions=64, n_embd=32, n_layer=layers, n_head=2,
                        bos_token_id=0, eos_token_id=0)  # fmt: skip
    return GPT2LMHeadModel(config)


@pytest.fixture
def circ(tmp_path: Path) -> Path:
    (tmp_path / "c.circ").write_text(CIRC)
    return tmp_path / "c.circ"


def _same_numbers(a: Any, b: Any, atol: float = 0.0) -> None:
    for part in ("model", "circuit", "empty"):
        np.testing.assert_allclose(a.per_prompt[part], b.per_prompt[part], atol=atol, rtol=0)


def test_a_pretrained_model_equals_the_same_weights_from_a_folder(
    circ: Path, tmp_path: Path
) -> None:
    model, tok = _gpt2(), _tokenizer()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    with torch.no_grad():
        before = model.eval()(torch.tensor([[0, 5, 9, 12]])).logits
    model.train()  # as a user may hand it over: seqcirc puts it in eval mode
    folder = Session(Options(model=str(tmp_path / "tiny"), **FAST)).evaluate_file(circ)
    got = seqcirc.evaluate(circ, model=model, tokenizer=tok, **FAST)
    _same_numbers(got.circuits[0], folder.circuits[0])
    assert got.circuits[0].f_model != 0
    ident = got.model
    assert ident["name"] == "<GPT2LMHeadModel>" and ident["source"] == "object"
    assert (
        ident["dtype"] == "float32"
        and ident["device"] == "cpu"
        and len(ident["weights_sha256"]) == 64
    )
    json.dumps(ident)
    assert not model.training  # evaluated without dropout
    with torch.no_grad():  # wrapped in place, its outputs unchanged
        torch.testing.assert_close(model(torch.tensor([[0, 5, 9, 12]])).logits, before)
    # wrapped once per object: other options reuse the bridge
    again = seqcirc.evaluate(circ, model=model, tokenizer=tok, seed=0, n_boot=50)
    assert load_object(model, tok).bridge is load_object(model, tok).bridge
    _same_numbers(again.circuits[0], got.circuits[0])


@needs_bundled
def test_a_transformer_bridge_is_used_as_it_is(circ: Path) -> None:
    mini = load_model("seqcirc-mini")
    named = Session(Options(**FAST)).evaluate_file(circ)
    got = Session(Options(model=mini.bridge, **FAST)).evaluate_file(circ)
    _same_numbers(got.circuits[0], named.circuits[0])
    assert load_object(mini.bridge).bridge is mini.bridge
    assert load_object(mini.bridge, mini.bridge.tokenizer).tokenizer is mini.bridge.tokenizer


def test_a_llama_in_bfloat16_with_a_tokenizer_built_in_code(circ: Path, tmp_path: Path) -> None:
    """A tokenizer that was never saved (TransformerLens's own boot reloads a tokenizer
    from disk by its name), grouped-query attention, bfloat16 weights: the numbers of the
    same model saved and loaded from its folder with dtype="bfloat16"."""
    hf = save_tiny_llama(tmp_path / "llama")
    folder = Session(Options(model=str(tmp_path / "llama"), dtype="bfloat16", **FAST))
    ref = folder.evaluate_file(circ)
    got = seqcirc.evaluate(circ, model=hf.to(torch.bfloat16), tokenizer=llama_tokenizer(), **FAST)
    assert got.model["dtype"] == ref.model["dtype"] == "bfloat16"
    assert got.model["name"] == "<LlamaForCausalLM>"
    _same_numbers(got.circuits[0], ref.circuits[0])
    assert got.circuits[0].f_model != 0


@pytest.mark.parametrize(
    ("kwargs", "code", "says"),
    [
        ({"model": torch.nn.Linear(2, 2)}, "E412", "not a transformers PreTrainedModel"),
        ({"model": 3}, "E412", "of type int, which is not a model"),
        ({"model": "gpt2x"}, "E202", "gpt2x"),  # a name nothing could load
        ({"model": "./no/such/folder"}, "E501", "not found"),
        ({"tokenizer": "tok"}, "E412", "tokenizer= was given without a model object"),
        ({"model": "M"}, "E412", "without a tokenizer"),
        ({"model": "M", "tokenizer": "gpt2"}, "E412", "of type str, not a transformers"),
        ({"model": "M", "tokenizer": "T", "dtype": "bfloat16"}, "E410", "object is float32"),
        ({"model": "M", "tokenizer": "T", "device_map": "auto"}, "E411", "with a model object"),
        ({"model": "M", "tokenizer": "T", "device": "tpu"}, "E405", "unknown device"),
        ({"model": "small", "tokenizer": "T"}, "E401", "lacks components the file names: c: 1.1"),
        ({"model": "big-vocab", "tokenizer": "T"}, "E412", "not this model's tokenizer"),
        ({"model": "bridge", "tokenizer": "T"}, "E412", "a tokenizer of its own"),
    ],
)
def test_what_is_not_accepted_is_a_coded_error(circ: Path, kwargs: dict[str, Any], code: str,
                                               says: str) -> None:  # fmt: skip
    stand_in = {
        "M": lambda: _gpt2(),
        "T": _tokenizer,
        "small": lambda: _gpt2(layers=1),
        "big-vocab": lambda: GPT2LMHeadModel(
            GPT2Config(vocab_size=100, n_embd=8, n_layer=2, n_head=2)
        ),
        "bridge": lambda: load_model("seqcirc-mini").bridge,
        "tok": _tokenizer,
    }
    given = {k: stand_in[v]() if isinstance(v, str) and v in stand_in else v
             for k, v in kwargs.items()}  # fmt: skip
    with pytest.raises(SeqcircError) as err:
        seqcirc.evaluate(circ, **given, **FAST)
    assert err.value.code == code, err.value.render()
    assert says in err.value.message and err.value.hint
    if code != "E501":
        assert err.value.exit_code == EXIT_BAD_INPUT


def test_a_model_object_on_another_device_than_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SeqcircError, match="the model object is on cpu") as err:
        load_object(_gpt2(), _tokenizer(), device="cuda")
    assert err.value.code == "E412" and "model.to(device)" in (err.value.hint or "")
    clear_objects()


def test_the_readme_example_runs(circ: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README's bring-your-own-model block, with from_pretrained giving a tiny model built
    in code and the bundled tokenizer, on a small file in place of the reader's."""
    import transformers

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (code,) = [b for b in blocks if "tokenizer=tokenizer" in b]
    model, tok = _gpt2(), _tokenizer()
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda name, **kw: model)  # fmt: skip
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **kw: tok)
    monkeypatch.chdir(circ.parent)
    circ.rename(circ.parent / "my_circuits.circ")
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own code
    result = scope["result"]
    assert result.model["source"] == "object" and result.circuits[0].name == "c"
    assert 0 < abs(result.circuits[0].performance_ratio.value) < 100
