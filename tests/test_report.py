"""Reports from hand-built results (no model): terminal table, JUnit XML, Markdown,
JSON, failure text, and the import cost of seqcirc.report."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_fixtures import full_result, minimal_result
from rich.console import Console

from seqcirc.errors import InputError
from seqcirc.report import failure_text, print_terminal, view, write_reports
from seqcirc.report.junit import junit_xml
from seqcirc.report.markdown import markdown
from seqcirc.results import EvaluationResult

_COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-7]|9[0-7]|38)(?:;\d+)*m")


def _terminal(result: EvaluationResult, verbose: bool = False, **console_kw: object) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200, **console_kw)  # type: ignore[arg-type]
    print_terminal(result, console, verbose=verbose)
    return buf.getvalue()


def _line(text: str, start: str) -> str:
    lines = [ln for ln in text.splitlines() if start in ln]
    assert lines, f"no line with {start!r} in:\n{text}"
    return lines[0]


def test_terminal_rows_carry_value_interval_threshold_verdict_and_p() -> None:
    out = _terminal(full_result())
    row = _line(out, "expect faithfulness(bound=point) >= 0.8")
    for cell in ("20", "0.812", "[0.741, 0.887] (95%)", ">= 0.8", "PASS"):
        assert cell in row
    row = _line(out, "expect normalized_faithfulness >= 0.9")
    for cell in ("0.851", "[0.770, 0.930] (95%)", "lower bound >= 0.9", "FAIL"):
        assert cell in row
    # measured: the circuit's F(C)/F(M) and its rank among the 200 random circuits (one
    # of them, 0.9, beats it); decided on the Holm-adjusted p (0.0199 -> "0.02"), raw p beside
    row = _line(out, "expect beats random(n=200) at p < 0.01")
    assert re.search(
        r"F\(C\)/F\(M\) = 0\.812, rank 2 of 201 .*Holm-adjusted p < 0\.01 .*FAIL "
        r".*0\.00995 .*0\.02",
        row,
    ), row
    row = _line(out, "expect equivalence(epsilon=0.1) at p >= 0.05")
    assert re.search(r"0\.43 .*p >= 0\.05 .*PASS", row), row
    assert "SKIP" in _line(out, "role 1.0 successor(top=5) >= 0.25")
    assert "ERROR" in _line(out, "expect minimality_test at p < 0.05")
    # the edge circuit has no p-values: no p columns
    header = [ln for ln in out.splitlines() if "claim" in ln and "verdict" in ln]
    assert "p (Holm)" in header[0] and "p (Holm)" not in header[1]


def test_terminal_states_ablation_setup_provenance_and_summary() -> None:
    out = _terminal(full_result())
    flat = " ".join(out.split())  # the caption wraps at the table's width
    assert (
        "ablation: node ablation; value: mean over the corrupted prompts per position; all "
        "positions; clean input, complement ablated; means from 64 corrupted prompts of task "
        "'months'; metric logit_diff" in flat
    )
    assert (
        "edge ablation; value: zero; positions S1, END; corrupted input, circuit patched in" in flat
    )
    assert "model seqcirc-mini (bundled, weights sha256 abababababab); seed 7" in out
    assert "torch 2.13.0" in out and "transformer-lens 4.3.0" in out
    assert out.rstrip().splitlines()[-1] == (
        "FAILED: 5 of 10 claims hold (3 failed, 1 error, 1 skipped) in 2 circuits; "
        "months.circ on seqcirc-mini, seed 7"
    )
    note = _line(out, "hypotheses/months.circ:21:")
    assert "lower bound 0.770 is not >= 0.9 (measured 0.851, interval [0.770, 0.930] (95%))" in note
    assert "no evaluator for claim kind 'role'" in _line(out, "hypotheses/months.circ:26:")
    assert "intervening on 1.3 changes nothing" in out
    # passing claims get no note
    assert "hypotheses/months.circ:20:" not in out


def test_terminal_verbose_shows_variants_and_details() -> None:
    out = _terminal(full_result(), verbose=True)
    assert "performance_ratio: 0.812 [0.741, 0.887] (95% paired bootstrap, seed 0)" in out
    assert "worst K = {1.0, mlp0}: incompleteness 0.200; mean 0.106 over 4 subsets" in out
    assert "hypotheses/months.circ:20: months: expect faithfulness(bound=point) >= 0.8: PASS" in out
    assert "forward rows 640; circuit_s 0.25s" in out


def test_terminal_summary_for_all_pass_and_no_claims() -> None:
    full = full_result()
    months = full.circuits[0]
    passing = dataclasses.replace(
        months, claims=tuple(c for c in months.claims if c.verdict == "pass")
    )
    out = _terminal(dataclasses.replace(full, circuits=(passing,)))
    assert out.rstrip().splitlines()[-1].startswith("PASSED: 5 of 5 claims hold (0 failed")
    empty = dataclasses.replace(full, circuits=())
    assert _terminal(empty).rstrip().splitlines()[-1].startswith("NO CLAIMS: 0 of 0 claims")


def test_terminal_colour_only_on_terminals_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not _COLOUR.search(_terminal(full_result()))  # a file, not a terminal
    assert _COLOUR.search(_terminal(full_result(), force_terminal=True, color_system="standard"))
    monkeypatch.setenv("NO_COLOR", "1")
    out = _terminal(full_result(), force_terminal=True, color_system="standard")
    assert not _COLOUR.search(out)
    assert "FAIL" in out  # verdicts are words, colour only an extra


def test_terminal_minimal_result_shows_dashes() -> None:
    out = _terminal(minimal_result())
    row = _line(out, "expect minimality >= 0")
    assert re.search(r"30 .*-0\.010 .*— .*>= 0 .*FAIL", row), row
    assert "model tiny; seed 0" in out


def test_failure_text_has_location_value_interval_threshold_and_setup() -> None:
    result = full_result()
    months = result.circuits[0]
    text = failure_text(months.claims[1], months, "hypotheses/months.circ")
    assert text == (
        "hypotheses/months.circ:21: months: expect normalized_faithfulness >= 0.9: FAIL\n"
        "  measured: 0.851 (normalized_faithfulness of logit_diff)\n"
        "  interval: [0.770, 0.930] (95%)\n"
        "  threshold: lower bound >= 0.9; compared 0.770 >= 0.9 does not hold\n"
        "  ablation: node ablation; value: mean over the corrupted prompts per position; all "
        "positions; clean input, complement ablated; means from 64 corrupted prompts of task "
        "'months'; metric logit_diff\n"
        "  task months (64 prompts); circuit hash 0123456789abcdef"
    )
    error = failure_text(months.claims[-1], months, "m.circ")
    assert error.splitlines()[:2] == [
        "m.circ:27: months: expect minimality_test at p < 0.05: ERROR",
        "  [E312] F(M) = E kl of the full model is 0: relative measures are undefined",
    ]


def test_p_values_read_from_holm_detail_flat_detail_or_value() -> None:
    claims = {c.kind: c for c in full_result().circuits[0].claims}
    rb = view.p_values(claims["random_baseline"])
    assert rb == view.PValues(0.00995, 0.0199, 1 / 201, 2, "adjusted")
    eq = view.p_values(claims["equivalence"])
    assert eq is not None and (eq.raw, eq.adjusted, eq.decided_on) == (0.4312, 0.4312, "raw")
    bare = dataclasses.replace(claims["equivalence"], detail={}, value=0.2)
    assert view.p_values(bare) == view.PValues(0.2, None, None, None, None)
    assert view.p_text(bare, adjusted=True) == "—"
    assert view.p_values(claims["faithfulness"]) is None
    floor = dataclasses.replace(
        claims["random_baseline"], detail={"holm": {"p_raw": 1 / 201, "floor": 1 / 201}}
    )
    assert view.p_text(floor) == "0.005 (floor 1/201)"


def test_number_formatting() -> None:
    assert [view.number(x) for x in (0.8123, -0.01, 1234.5, 0.00012, 0.0, None)] == [
        "0.812", "-0.010", "1.23e+03", "0.00012", "0.000", "—",
    ]  # fmt: skip
    assert [view.number(float(x)) for x in ("inf", "-inf", "nan")] == ["inf", "-inf", "nan"]


def test_junit_xml_counts_names_and_failure_messages() -> None:
    root = ET.fromstring(junit_xml(full_result()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["months", "edges on months"]
    first = suites[0]
    assert {k: first.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "9", "failures": "2", "errors": "1", "skipped": "1",
    }  # fmt: skip
    assert first.get("time") == "0.750"
    props = {p.get("name"): p.get("value") for p in first.iter("property")}
    assert props["seed"] == "7" and props["model"].startswith("seqcirc-mini (bundled")
    assert props["ablation"].startswith("node ablation; value: mean")
    cases = root.findall(".//testcase")
    assert len(cases) == 10
    assert cases[0].get("name") == "months::expect faithfulness(bound=point) >= 0.8"
    assert (cases[0].get("file"), cases[0].get("line")) == ("hypotheses/months.circ", "20")
    failures = root.findall(".//failure")
    assert len(failures) == 3
    norm = failures[0]
    assert norm.get("message") == ("measured 0.851 [0.770, 0.930] (95%), needs lower bound >= 0.9")
    assert "ablation: node ablation" in (norm.text or "")
    assert "means from 64 corrupted prompts" in (norm.text or "")
    assert failures[1].get("message") == (
        "measured F(C)/F(M) = 0.812, rank 2 of 201; p 0.02, needs Holm-adjusted p < 0.01"
    )
    assert len(root.findall(".//error")) == 1 and len(root.findall(".//skipped")) == 1
    assert root.findall(".//error")[0].get("message", "").startswith("[E312]")


def test_markdown_table_and_escaping() -> None:
    full = full_result()
    months = full.circuits[0]
    piped = dataclasses.replace(months.claims[0], text="expect a | b >= 0.8")
    result = dataclasses.replace(
        full, circuits=(dataclasses.replace(months, claims=(piped, *months.claims[1:])),)
    )
    md = markdown(result)
    assert md.startswith("## seqcirc: `months.circ`\n")
    assert "| claim | line | measured | interval | threshold | verdict | p | p (Holm) |" in md
    assert (
        "| `expect a \\| b >= 0.8` | 20 | 0.812 | [0.741, 0.887] (95%) | >= 0.8 | ✅ pass |" in md
    )
    assert (
        "| `expect beats random(n=200) at p < 0.01` | 24 | F(C)/F(M) = 0.812, rank 2 of 201 | — "
        "| Holm-adjusted p < 0.01 | ❌ fail | 0.00995 | 0.02 |" in md
    )
    assert "*Ablation set-up:* node ablation; value: mean over the corrupted prompts" in md
    assert "seed 7" in md and "torch 2.13.0" in md
    assert "hypotheses/months.circ:21: months: expect normalized_faithfulness >= 0.9: FAIL" in md
    assert "> warning: intervening on 1.3 changes nothing" in md
    # a heading after the warnings needs a blank line before it
    assert "its output)  \n\n### `edges on months`" in markdown(full)


def test_write_reports_writes_each_format(tmp_path: Path) -> None:
    result = full_result()
    paths = write_reports(
        result,
        json_path=tmp_path / "out" / "r.json",
        junit_path=tmp_path / "r.xml",
        markdown_path=tmp_path / "r.md",
    )
    assert [p.name for p in paths] == ["r.json", "r.xml", "r.md"]
    text = (tmp_path / "out" / "r.json").read_text()
    assert json.loads(text)["version"] == 1
    assert EvaluationResult.from_json(text) == result
    ET.parse(tmp_path / "r.xml")
    assert write_reports(result) == []


def test_unwritable_path_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError) as err:
        write_reports(full_result(), markdown_path=blocker / "r.md")
    assert err.value.code == "E901" and "Markdown" in err.value.message


def test_importing_reports_imports_no_matplotlib_or_torch() -> None:
    code = (
        "import sys, seqcirc.report, seqcirc.report.html_report, seqcirc.report.terminal\n"
        "bad = [m for m in ('matplotlib', 'torch') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_terminal_verbose_minimal_result() -> None:
    out = _terminal(minimal_result(), verbose=True)
    assert "performance_ratio: [E312] F(M) is 0" in out
    assert "  forward rows 0\n" in out  # no timings recorded: nothing invented
    assert "x.circ:30: edges on months: expect minimality >= 0: FAIL" in out
