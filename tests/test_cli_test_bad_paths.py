"""`seqcirc test` with bad FILE and report paths, and its warnings: coded errors before
any model loads, the verdicts always printed, one plain line per warning."""

import subprocess
from pathlib import Path

import pytest

from tests.cli_in_process import seqcirc
from tests.mini_circuits import GOOD, needs_bundled

FAST = ("--prompts", "24", "--device", "cpu")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


def test_a_directory_named_like_a_circ_file_is_said_to_be_one(tmp_path: Path) -> None:
    (tmp_path / "dir.circ").mkdir()
    proc = _run("test", "dir.circ", cwd=tmp_path)
    assert proc.returncode == 2
    assert "error[E001]: dir.circ is a directory, not a .circ file" in proc.stderr
    assert "help: name the files in it, e.g. dir.circ/*.circ" in proc.stderr
    assert "no such file" not in proc.stderr and "Traceback" not in proc.stderr


def test_every_file_is_checked_before_the_first_is_evaluated(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(GOOD)
    proc = _run("test", "ok.circ", "missing.circ", cwd=tmp_path)
    assert proc.returncode == 2
    assert "error[E001]: no such file: missing.circ" in proc.stderr
    assert proc.stdout == ""  # ok.circ was not evaluated first


@pytest.mark.parametrize("option", ["--json", "--junit", "--markdown", "--html"])
def test_a_report_path_that_is_a_directory_fails_before_the_run(
    tmp_path: Path, option: str
) -> None:
    (tmp_path / "ok.circ").write_text(GOOD)
    (tmp_path / "out").mkdir()
    proc = _run("test", "ok.circ", option, "out", *FAST, cwd=tmp_path)
    assert proc.returncode == 2
    assert "error[E901]: cannot write the " in proc.stderr
    assert "to out: it is a directory" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_a_report_under_a_file_fails_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(GOOD)
    (tmp_path / "blocker").write_text("")
    proc = _run("test", "ok.circ", "--json", "blocker/r.json", *FAST, cwd=tmp_path)
    assert proc.returncode == 2
    assert "error[E901]: cannot write the JSON report to blocker/r.json" in proc.stderr
    assert proc.stdout == ""


@needs_bundled
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_failed_write_after_the_run_keeps_the_table_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(GOOD)
    proc = _run("test", "ok.circ", "--json", "/dev/full", "--markdown", "r.md", *FAST, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "PASSED: 1 of 1 claim" in proc.stdout  # the verdicts are shown anyway
    assert "error[E901]: cannot write the JSON report to /dev/full: No space left" in proc.stderr
    assert "wrote r.md" in proc.stderr  # the other report is still written
    assert "PASSED" in (tmp_path / "r.md").read_text()
    assert "Traceback" not in proc.stderr


@needs_bundled
def test_a_damaged_cache_file_is_one_warning_line(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(GOOD)
    first = _run("test", "ok.circ", "--cache-dir", "means", *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (cache,) = (tmp_path / "means").glob("means-*.safetensors")
    cache.write_bytes(b"not a safetensors file")
    again = _run("test", "ok.circ", "--cache-dir", "means", *FAST, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stderr.splitlines() if "means cache file" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning[W903]: means cache file ")
    assert lines[0].endswith("; recomputing it")
    assert "warnings.warn" not in again.stderr and "MeansCacheWarning" not in again.stderr
