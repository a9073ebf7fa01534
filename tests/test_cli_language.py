"""`seqcirc check`, `seqcirc plan` and `seqcirc fmt` through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEQCIRC = str(Path(sys.executable).parent / "seqcirc")
HYPOTHESES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "hypotheses").glob("*.circ"))


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEQCIRC, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_check_passes_the_paper_hypotheses() -> None:
    result = _run("check", *HYPOTHESES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{p}: ok" for p in HYPOTHESES]


def test_check_reports_every_error_of_every_file_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.circ").write_text(
        "task t = sequence(months)\ncircuit t on gpt2-small {\n  heads 9.12, 12.1\n}\n"
    )
    (tmp_path / "b.circ").write_text("circuit c on gpt2 { heads 1.1\n")
    result = _run("check", "a.circ", "b.circ", "../missing.circ", cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr
    assert "a.circ:3:9: error[E220]: head 9.12 is out of range" in err
    assert "a.circ:3:15: error[E221]" in err
    assert "   3 |   heads 9.12, 12.1\n     |         ^^^^" in err
    assert "help: the model has 12 heads per layer (0-11)" in err
    assert "b.circ:1:30: error[E102]: unexpected end of file" in err
    assert "error[E110]: cannot read ../missing.circ" in err
    assert "Traceback" not in err


def test_plan_prints_the_plan_json() -> None:
    result = _run("plan", "hypotheses/months.circ")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    circuit, mini, spanish = plan["circuits"]
    assert circuit["name"] == "months" and circuit["model"]["name"] == "gpt2-small"
    assert mini["name"] == "months_mini" and mini["model"]["name"] == "seqcirc-mini"
    # the cross-task claim plans the mini circuit once more, on Spanish months
    assert spanish["name"] == "months_mini on spanish_months_mini"
    assert spanish["nodes"] == mini["nodes"] and spanish["task"]["name"] == "spanish_months_mini"
    assert len([n for n in circuit["nodes"] if not n.startswith("mlp")]) == 13


def test_plan_of_a_bad_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "x.circ").write_text("circuit c on gpt3 { heads 1.1 }\n")
    result = _run("plan", "x.circ", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "error[E202]: unknown model `gpt3`" in result.stderr


def test_fmt_check_and_write(tmp_path: Path) -> None:
    assert _run("fmt", "--check", *HYPOTHESES).returncode == 0
    messy = tmp_path / "m.circ"
    messy.write_text(
        "task t=sequence(months)  # the task\ncircuit t on gpt2-small{heads 1.1,L2H2}\n"
    )
    assert _run("fmt", "--check", str(messy)).returncode == 1
    shown = _run("fmt", str(messy))
    expected = (
        "task t = sequence(months)  # the task\n\ncircuit t on gpt2-small {\n  heads 1.1, 2.2\n}\n"
    )
    assert shown.stdout == expected
    assert _run("fmt", "--write", str(messy)).returncode == 0
    assert messy.read_text() == expected


def test_the_cli_module_does_not_import_the_parser() -> None:
    code = (
        "import sys, seqcirc.cli; assert 'lark' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_checking_and_compiling_never_import_torch() -> None:
    code = (
        "import sys, seqcirc\n"
        "seqcirc.compile_file('hypotheses/shared.circ')\n"
        "assert 'torch' not in sys.modules and 'transformer_lens' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


def test_usage_errors_exit_2_with_clicks_message() -> None:
    result = _run("check")
    assert result.returncode == 2
    assert "Missing argument 'FILE...'" in result.stderr
    assert "internal failure" not in result.stderr
