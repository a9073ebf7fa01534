"""Snapshots of `seqcirc test`'s terminal output at 80, 100 and 160 columns and in the
plain layout, from two stored results (no model): a real seqcirc-mini run of
hypotheses/months.circ (tests/data/months_mini_result.json, 48 prompts) and the
hand-built result with every verdict (tests/report_fixtures.py).

Every line fits its width, breaks only between words, keeps each header whole and ends
without padding; the goldens in tests/golden/terminal/ show the layouts themselves.
Regenerate after an intended change with SEQCIRC_REGEN_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from report_fixtures import full_result
from rich.console import Console

from seqcirc.report import print_terminal
from seqcirc.report.terminal import column_widths
from seqcirc.results import EvaluationResult

ROOT = Path(__file__).resolve().parent
GOLDEN = ROOT / "golden" / "terminal"
REGEN = os.environ.get("SEQCIRC_REGEN_GOLDEN") == "1"
WIDTHS = (80, 100, 160)


def _months() -> EvaluationResult:
    return EvaluationResult.from_json((ROOT / "data" / "months_mini_result.json").read_text())


RESULTS = {"months_mini": _months, "every_verdict": full_result}


def _render(result: EvaluationResult, width: int, layout: str = "table") -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    print_terminal(result, console, layout=layout)
    return buf.getvalue()


def _compare(actual: str, name: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}; run with SEQCIRC_REGEN_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8")


def _words(result: EvaluationResult) -> set[str]:
    """Every word of every claim's cells: none may be split across lines."""
    from seqcirc.report import view

    words = set()
    for circuit in result.circuits:
        for c in circuit.claims:
            for cell in (c.text or c.id, view.measured(c), view.interval(c), view.threshold(c)):
                if cell != view.MISSING:
                    words.update(cell.split())
    return words


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", sorted(RESULTS))
def test_terminal_output_matches_its_snapshot(which: str, width: int) -> None:
    result = RESULTS[which]()
    out = _render(result, width)
    _compare(out, f"{which}_{width}.txt")
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert not [line for line in lines if line != line.rstrip()], "trailing padding"
    # each word whole on some line: a word split across lines would be missing (the
    # stacked blocks separate their values with "; ")
    tokens = {t.removesuffix(";") for line in lines for t in line.split()}
    assert _words(result) <= tokens, sorted(_words(result) - tokens)
    # a table's header is whole, on one line
    for header in (line for line in lines if line.startswith("claim ")):
        assert header.split()[:6] == ["claim", "line", "measured", "interval", "threshold",
                                      "verdict"]  # fmt: skip


@pytest.mark.parametrize("which", sorted(RESULTS))
def test_plain_layout_is_unwrapped_blocks(which: str) -> None:
    result = RESULTS[which]()
    out = _render(result, 80, layout="plain")
    _compare(out, f"{which}_plain.txt")
    assert "─" not in out and "\x1b" not in out  # no rules, no colour
    assert out == _render(result, 200, layout="plain")  # the width does not matter
    # one line per claim head, values on the next: grep FAIL finds every failed claim
    failed = [c for circuit in result.circuits for c in circuit.claims if c.verdict == "fail"]
    heads = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    assert len(heads) == len(failed)


def test_months_at_80_columns_stacks_and_at_160_is_a_table() -> None:
    narrow, wide = _render(_months(), 80), _render(_months(), 160)
    # the random-baseline claim shows the circuit's score and its rank, not the p-value
    assert "measured F(C)/F(M) = 0.975, rank 1 of 280;" in narrow
    assert "PASS  expect beats random(n=300) at p < 0.01 (line 66)" in narrow
    header = next(line for line in wide.splitlines() if line.startswith("claim "))
    assert header.split() == [
        "claim", "line", "measured", "interval", "threshold", "verdict", "p", "p", "(Holm)",
    ]  # fmt: skip


def test_column_widths_keep_words_whole_or_give_up() -> None:
    head = ["claim", "verdict"]
    rows = [["expect faithfulness(bound=point) >= 0.8", "PASS"]]
    # natural width when it fits; the longest word (25) and the header (7) at least
    assert column_widths(head, rows, 80) == [39, 7]
    assert column_widths(head, rows, 34) == [25, 7]
    assert column_widths(head, rows, 33) is None
