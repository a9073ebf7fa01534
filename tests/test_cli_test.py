"""`seqcirc test` through the real console script: verdicts, reports, exit codes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.mini_circuits import TASK, heads_but_last, needs_bundled

SEQCIRC = shutil.which("seqcirc", path=str(Path(sys.executable).parent)) or "seqcirc"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [SEQCIRC, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@needs_bundled
def test_holding_and_failing_claims_exit_0_and_1_with_reports(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(
        TASK + f"circuit most on seqcirc-mini {{\n  heads {heads_but_last()}\n"
        "  expect faithfulness >= 0.5\n}\n"
    )
    ok = _run("test", "ok.circ", "--json", "ok.json", "--html", "ok.html", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED: 1 of 1 claim" in ok.stdout
    result = json.loads((tmp_path / "ok.json").read_text())
    assert result["circuits"][0]["claims"][0]["verdict"] == "pass"
    assert "data:image/png;base64" in (tmp_path / "ok.html").read_text()
    assert "Traceback" not in ok.stderr

    (tmp_path / "bad.circ").write_text(
        TASK + "circuit one on seqcirc-mini {\n  heads 0.0\n"
        "  expect faithfulness(bound=point) >= 0.99\n}\n"
    )
    bad = _run("test", "bad.circ", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout


def test_typo_gives_a_pointed_error_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "typo.circ").write_text(
        TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n  expect faithfulnes >= 0.5\n}\n"
    )
    proc = _run("test", "typo.circ", cwd=tmp_path)
    assert proc.returncode == 2
    assert "typo.circ:7:" in proc.stderr
    assert "help:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unavailable_model_exits_3_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "hub.circ").write_text(
        TASK + "circuit c on gpt2-small {\n  heads 9.1\n  expect faithfulness >= 0.5\n}\n"
    )
    proc = _run("test", "hub.circ", cwd=tmp_path)
    assert proc.returncode == 3
    assert "gpt2-small" in proc.stderr and "seqcirc-mini" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_on_selects_circuits_and_names_the_models_when_none_match(tmp_path: Path) -> None:
    (tmp_path / "hub.circ").write_text(
        TASK + "circuit c on gpt2-small {\n  heads 9.1\n  expect faithfulness >= 0.5\n}\n"
    )
    proc = _run("test", "hub.circ", "--on", "seqcirc-mini", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no circuit on seqcirc-mini" in proc.stderr
    assert "gpt2-small" in proc.stderr
