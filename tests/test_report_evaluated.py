"""Reports of a real evaluation (the planted one-layer model of tests/planted.py): the
report layer reads what the evaluator writes, not only hand-built results."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from seqcirc.report import print_terminal, write_reports
from seqcirc.results import EvaluationResult
from tests.planted import bridge_of, planted_hf, planted_task

SUCC, SUPP = Node(0, 0), Node(0, 1)
CLAIMS = (
    Claim("c1", "faithfulness", ">=", 0.9, bound="lower", line=5, text="faithfulness >= 0.9"),
    Claim("c2", "minimality", ">=", 0.05, line=6, text="minimality >= 0.05"),
    Claim("c3", "completeness", "<=", 0.5, params=(("n_random", 4),), line=7,
          text="completeness <= 0.5"),
    Claim("c4", "faithfulness", ">=", 2.0, line=8, text="faithfulness >= 2"),
    Claim("c5", "equivalence", ">=", 0.05, line=9, text="equivalence at p >= 0.05"),
)  # fmt: skip


@pytest.fixture(scope="module")
def result() -> EvaluationResult:
    circuit = CircuitPlan(
        name="planted", model=ModelRef("planted", "local"), task=TaskSpec(name="planted"),
        ablation=AblationSpec(), nodes=(SUCC, SUPP), groups=(("writers", (SUCC, SUPP)),),
        claims=CLAIMS,
    )  # fmt: skip
    task = planted_task((1, 2, 3, 4, 5, 6, 7, 8), (0, 0, 2, 5, 5, 5, 7, 9))
    plan = Plan(source="planted.circ", circuits=(circuit,), seed=3)
    return evaluate_plan(bridge_of(planted_hf()), plan, {"planted": task}, n_boot=200)


def test_reports_of_an_evaluated_plan(result: EvaluationResult, tmp_path: Path) -> None:
    verdicts = [c.verdict for c in result.circuits[0].claims]
    assert verdicts == ["pass", "pass", "pass", "fail", "skipped"]
    buf = io.StringIO()
    print_terminal(result, Console(file=buf, width=200))
    out = buf.getvalue()
    ratio = result.circuits[0].claims[0]
    row = next(ln for ln in out.splitlines() if "faithfulness >= 0.9" in ln)
    assert f"{ratio.value:.3f}" in row and f"[{ratio.lower:.3f}, {ratio.upper:.3f}]" in row
    assert out.rstrip().splitlines()[-1].startswith("FAILED: 3 of 5 claims hold (1 failed")
    paths = write_reports(
        result, json_path=tmp_path / "r.json", junit_path=tmp_path / "r.xml",
        markdown_path=tmp_path / "r.md", html_path=tmp_path / "r.html",
    )  # fmt: skip
    assert all(p.stat().st_size > 0 for p in paths)
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert len(root.findall(".//testcase")) == 5
    assert len(root.findall(".//failure")) == 1 and len(root.findall(".//skipped")) == 1
    assert EvaluationResult.from_json((tmp_path / "r.json").read_text()) == result
    html = (tmp_path / "r.html").read_text()
    # faithfulness, completeness, minimality heatmap, graph
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4
    assert "means from 8 corrupted prompts of task" in html
