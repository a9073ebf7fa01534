"""#20's done-when for generation: a `.circ` states a knock-out claim on a model whose
tokenizer splits numerals into digits (tests/digits_tiny.py), scored by greedy
generation (`metric accuracy(generate, max_new_tokens=3)`: " 10" is "▁" + "1" + "0"), and
`seqcirc test` and the Python API evaluate it; the knocked-out ratio equals the one the
independent reference (tests/generate_reference.py) decodes. Bad generating metrics are
coded errors at their line and column."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import seqcirc
from seqcirc.checks import check_text
from seqcirc.cli import app
from seqcirc.errors import SeqcircError
from seqcirc.plan import Node
from seqcirc.plan.compile import compile_file
from seqcirc.tasks.build import build_task
from tests.digits_tiny import trained_digit_llama
from tests.generate_reference import GenerationReference

TASK = """seed 0
task digits = sequence(numerals, template=all, members=4, prompts=24, seed=2, start=6, range=20)
  corrupt shuffled_members
  metric accuracy(generate, max_new_tokens=3)
"""
CIRCUIT = """
circuit knocked on "{folder}" {{
  task digits
  ablate nodes zero
  heads 0.0, 0.1, 1.0
  expect knockout(n=20) at p < 0.5
}}
"""
KNOCKED = {Node(0, 0), Node(0, 1), Node(1, 0)}


@pytest.fixture(scope="module")
def circ(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = trained_digit_llama()
    folder = tmp_path_factory.mktemp("digits")
    model.save_pretrained(folder / "model", safe_serialization=True)
    tok.save_pretrained(folder / "model")
    path = folder / "knockout.circ"
    path.write_text(TASK + CIRCUIT.format(folder="model"))
    return path


def test_knockout_scored_by_generation_matches_the_reference(circ: Path) -> None:
    plan = compile_file(circ)
    (circuit,) = plan.circuits
    assert circuit.task.generation is not None and circuit.task.generation.max_new_tokens == 3
    result = seqcirc.evaluate(circ)
    (claim,) = result.circuits[0].claims
    assert claim.kind == "knockout" and claim.verdict in ("pass", "fail")
    assert len(claim.detail["random_values"]) == 20
    # the reference: every node but the circuit's, zero-ablated, decoded prompt by prompt
    model, tok = trained_digit_llama()
    task = build_task(circuit.task, tok, prepend_bos=True, seed=plan.seed)
    assert {len(tok(a, add_special_tokens=False)["input_ids"]) for a in
            task.meta["correct_text"]} == {2, 3}  # "▁" + digits  # fmt: skip
    ref = GenerationReference(model, task, "zero")
    every = {Node(i, h) for i in range(2) for h in range(4)} | {Node(0), Node(1)}
    full = ref.accuracy(ref.generate(every, 3), tok.decode)
    knocked = ref.accuracy(ref.generate(every - KNOCKED, 3), tok.decode)
    assert full.mean() > 0.5
    assert claim.detail["observed"] == pytest.approx(knocked.mean() / full.mean(), abs=1e-12)
    assert np.all(np.asarray(claim.detail["random_values"]) >= 0)
    # the same weights handed in from Python (model= with tokenizer=): the same numbers
    obj = seqcirc.evaluate(circ, model=copy.deepcopy(model), tokenizer=tok)
    (same,) = obj.circuits[0].claims
    assert same.detail["observed"] == claim.detail["observed"]
    assert same.detail["random_values"] == claim.detail["random_values"]


def test_seqcirc_test_evaluates_it(circ: Path) -> None:
    out = circ.parent / "r.json"
    run = CliRunner().invoke(app, ["test", str(circ), "--json", str(out), "-q"])
    assert run.exit_code in (0, 1), run.output
    data = json.loads(out.read_text())
    (claim,) = data["circuits"][0]["claims"]
    assert claim["kind"] == "knockout" and claim["verdict"] in ("pass", "fail")


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("accuracy(max_new_tokens=3)", "parameter of a generating metric"),
        ("accuracy(generate)", "needs `max_new_tokens=N`"),
        ("accuracy(generate, max_new_tokens=0)", "at least 1"),
        ("accuracy(generate, max_new_tokens=257)", "at most 256"),
        ("logit_diff(generate, max_new_tokens=3)", "`generate` applies to accuracy"),
        ('accuracy(generate, max_new_tokens=3, match="(")', "not a regular expression"),
        ("accuracy(generate, max_new_tokens=three)", "must be a whole number"),
    ],
)
def test_bad_generating_metrics_are_e251_at_their_place(metric: str, message: str) -> None:
    text = TASK.replace("accuracy(generate, max_new_tokens=3)", metric)
    text += CIRCUIT.format(folder="seqcirc-mini").replace('"seqcirc-mini"', "seqcirc-mini")
    text = text.replace("heads 0.0, 0.1, 1.0", "heads 0.0")
    with pytest.raises(SeqcircError) as info:
        check_text(text, "bad.circ")
    (diag,) = info.value.diagnostics
    assert diag.code == "E251" and message in diag.message, diag.message
    assert diag.span is not None and diag.span.line == 4


def test_filter_with_a_generating_metric_is_refused() -> None:
    text = TASK + "  filter correct\n"
    with pytest.raises(SeqcircError) as info:
        check_text(text, "bad.circ")
    (diag,) = info.value.diagnostics
    assert diag.code == "E251" and diag.span is not None and diag.span.line == 5


@pytest.mark.parametrize(
    ("ablate", "what"),
    [("ablate edges zero", "edges"), ("ablate nodes resample direction patch", "patching")],
)
def test_edges_and_patching_with_generation_are_e251_at_check(ablate: str, what: str) -> None:
    text = TASK + CIRCUIT.format(folder="seqcirc-mini").replace('"seqcirc-mini"', "seqcirc-mini")
    text = text.replace("ablate nodes zero", ablate)
    with pytest.raises(SeqcircError) as info:
        check_text(text, "bad.circ")
    found = [d for d in info.value.diagnostics if "generating metric" in d.message]
    assert len(found) == 1 and found[0].code == "E251" and what in found[0].message
    assert found[0].span is not None and found[0].span.line == 8
