"""Golden files: valid programs -> plan JSON, invalid programs -> diagnostic text (one per
error code), and the paper's three GPT-2 small circuits -> exactly the paper's heads/MLPs.

Regenerate after an intended change with SEQCIRC_REGEN_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqcirc.checks import check_file
from seqcirc.checks.diagnostics import render_diagnostics
from seqcirc.errors import SeqcircError
from seqcirc.plan import Node, plan_to_json
from seqcirc.plan.compile import compile_file

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path("tests/golden")
REGEN = os.environ.get("SEQCIRC_REGEN_GOLDEN") == "1"

VALID = sorted((ROOT / GOLDEN / "valid").glob("*.circ"))
INVALID = sorted((ROOT / GOLDEN / "invalid").glob("*.circ"))
HYPOTHESES = ["numerals", "number_words", "months", "shared", "intervals"]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # spans and plan paths are relative to the repository


def _compare(actual: str, expected_path: Path) -> None:
    if REGEN:
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.is_file(), (
        f"missing golden {expected_path}; run with SEQCIRC_REGEN_GOLDEN=1"
    )
    assert actual == expected_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_program_compiles_to_golden_plan(path: Path) -> None:
    rel = GOLDEN / "valid" / path.name
    _compare(plan_to_json(compile_file(rel)) + "\n", rel.with_suffix(".json"))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_program_gives_golden_diagnostics(path: Path) -> None:
    rel = GOLDEN / "invalid" / path.name
    code = path.stem.split("_")[0]
    if code.startswith("W"):  # a warning: the file checks, the warning is reported
        module = check_file(rel)
        text = render_diagnostics(tuple(module.warnings), str(rel), module.program.text)
        assert [d.code for d in module.warnings] == [code]
    else:
        with pytest.raises(SeqcircError) as info:
            check_file(rel)
        err = info.value
        assert err.exit_code == 2
        assert [d.code for d in err.diagnostics] == [code], err.render()
        text = err.render()
    _compare(text + "\n", rel.with_suffix(".txt"))


def test_every_error_code_has_a_golden_file() -> None:
    documented = {
        line.split("`")[1]
        for line in (ROOT / "docs" / "errors.md").read_text().splitlines()
        if line.startswith("## `")
    }
    covered = {p.stem.split("_")[0] for p in INVALID}
    assert documented == covered


@pytest.mark.parametrize("name", HYPOTHESES)
def test_hypothesis_plans_are_golden(name: str) -> None:
    path = Path("hypotheses") / f"{name}.circ"
    _compare(plan_to_json(compile_file(path)) + "\n", GOLDEN / "hypotheses" / f"{name}.json")


def _heads(text: str) -> list[Node]:
    return [Node.parse(h) for h in text.split()]


def _mlps(*ranges: tuple[int, int]) -> list[Node]:
    return [Node(layer) for lo, hi in ranges for layer in range(lo, hi + 1)]


# The table "Circuits found in GPT-2 small (80% threshold)" of the paper (paper.md).
PAPER = {
    "numerals": _heads("0.1 1.5 4.4 4.10 5.0 6.1 6.6 6.10 7.11 8.1 8.6 8.8 8.9 9.1")
    + _mlps((0, 4), (6, 11)),
    "number_words": _heads(
        "0.1 1.5 4.4 4.10 5.8 6.1 6.6 6.10 7.2 7.6 7.11 8.1 8.6 8.8 8.9 8.11 9.1 9.5 9.7"
    )
    + _mlps((0, 11)),
    "months": _heads("0.1 0.5 4.4 6.1 6.6 6.10 7.6 7.9 7.10 7.11 8.8 9.1 10.7")
    + _mlps((0, 4), (6, 10)),
}
SHARED = _heads("0.1 4.4 6.1 6.6 6.10 7.11 8.8 9.1") + _mlps((0, 4), (6, 10))


@pytest.mark.parametrize("task", list(PAPER))
def test_paper_circuit_has_exactly_the_papers_components(task: str) -> None:
    plan = compile_file(Path("hypotheses") / f"{task}.circ")
    (circuit,) = [c for c in plan.circuits if c.model.name == "gpt2-small"]
    assert set(circuit.nodes) == set(PAPER[task])
    assert len(circuit.nodes) == len(PAPER[task])
    groups = dict(circuit.groups)
    assert groups["successor"] == (Node(9, 1),)
    assert groups["middle"] == (Node(7, 11),)
    assert groups["duplicate"] == (Node(0, 1),)
    highlighted = {(e.sender, e.receiver) for e in circuit.highlighted_edges}
    detect = {"numerals": ["1.5", "4.4"], "number_words": ["1.5", "4.4"], "months": ["4.4"]}
    expected = {(d, r) for d in detect[task] for r in ("7.11", "9.1")} | {("7.11", "9.1")}
    assert highlighted == expected
    roles = {c.params_dict()["head"]: c for c in circuit.claims if c.kind == "role"}
    assert roles["9.1"].params_dict()["role"] == "successor"
    assert roles["9.1"].params_dict()["set"] == task  # the task is the authors' prompt file
    # 4.4's attention from S3 to S2, on the authors' prompts (their positions named)
    attends = roles["4.4"].params_dict()
    assert (attends["role"], attends["from"], attends["to"]) == ("attends", "S3", "S2")
    paper = {"numerals": 0.34, "number_words": 0.18, "months": 0.28}[task]  # paper.md
    assert paper - 0.05 <= roles["4.4"].threshold < paper
    (faith,) = [c for c in circuit.claims if c.kind == "faithfulness"]
    assert (faith.op, faith.threshold, faith.bound) == (">=", 0.8, "point")


def test_shared_circuit_is_the_papers_shared_subcircuit() -> None:
    plan = compile_file(Path("hypotheses") / "shared.circ")
    shared = [c for c in plan.circuits if c.name.startswith("shared on ")]
    assert [c.task.name for c in shared] == ["numerals", "number_words", "months"]
    for circuit in shared:
        assert set(circuit.nodes) == set(SHARED) and len(circuit.nodes) == 18
        assert circuit.derived_from == ("numerals", "number_words", "months")
    cross = {c.name: c for c in plan.circuits}
    assert set(cross["numerals on months"].nodes) == set(PAPER["numerals"])
    # the paper's whole cross-task matrix, each cell within 5 points either way
    paper = {"numerals": (81.0, 48.4, 113.5), "number_words": (87.4, 81.1, 103.6)}
    paper |= {"months": (43.7, 32.4, 80.2), "ioi": (-6.7, -15.8, -9.2)}  # IOI: the control
    for row, values in paper.items():
        for task, value in zip(("numerals", "number_words", "months"), values, strict=True):
            claims = cross[f"{row} on {task}"].claims
            bounds = {(c.op, round(c.threshold, 3)) for c in claims if c.kind == "faithfulness"}
            assert bounds == {
                (">=", round(value / 100 - 0.05, 3)),
                ("<=", round(value / 100 + 0.05, 3)),
            }
    ioi = cross["ioi on numerals"]
    assert len([n for n in ioi.nodes if n.head is not None]) == 26 and len(ioi.nodes) == 38
