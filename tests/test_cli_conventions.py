"""One set of conventions for every command (typer's CliRunner, in process): --version,
help written for an 80-column terminal, report paths with `-` for stdout, `-o` for the
main output, `--format plain`, and `seqcirc test` output that fits 80 columns."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from seqcirc import __version__
from seqcirc.cli import app
from seqcirc.errors import SeqcircError
from tests.mini_circuits import TASK, heads_but_last, needs_bundled

ROOT = Path(__file__).resolve().parents[1]
RUNNER = CliRunner()


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return RUNNER.invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


def _commands() -> list[tuple[str, Any]]:
    """(name, click command) of every command, subcommands of groups included."""
    root = typer.main.get_command(app)
    out = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        out += [(f"{name} {s}", c) for s, c in subs.items()] if subs else [(name, cmd)]
    return out


def test_version_option_and_command() -> None:
    for args in (["--version"], ["version"]):
        result = _invoke(*args)
        assert result.exit_code == 0 and result.stdout == f"seqcirc {__version__}\n"


@pytest.mark.parametrize("name", [n for n, _ in _commands()])
def test_every_option_has_a_one_line_help_and_a_metavar(name: str) -> None:
    cmd = dict(_commands())[name]
    for param in cmd.params:
        assert param.help and "\n" not in param.help, (name, param.name)
        if not getattr(param, "is_flag", False):
            assert param.metavar, (name, param.name)  # never typer's <str>, <int>, ...
    prose = [p for p in (cmd.help or "").split("\n\n") if not p.startswith("Example")]
    assert all("\n" not in p for p in prose), prose  # the terminal wraps prose, not the source


@pytest.mark.parametrize("name", ["", *[n for n, _ in _commands()]])
def test_help_at_80_columns_has_no_types_and_examples_fit(name: str) -> None:
    result = _invoke(*name.split(), "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert not re.search(r"<(bool|str|int|float|list)", out), out
    lines = out.splitlines()
    usage = next(line for line in lines if "Usage:" in line)
    assert "{" not in usage  # FILE..., as click writes it, not typer's {FILE}...
    for i, line in enumerate(lines):
        if line.strip() in ("Example:", "Examples:"):  # indented commands, one line each
            for cmd in lines[i + 1 :]:
                if not cmd.strip():
                    break
                assert cmd.startswith("   seqcirc "), cmd


def test_plan_output_goes_to_a_file_or_stdout(tmp_path: Path) -> None:
    src = str(ROOT / "hypotheses" / "months.circ")
    result = _invoke("plan", src, "-o", str(tmp_path / "p.json"))
    assert result.exit_code == 0 and result.stdout == ""
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["circuits"][1]["name"] == "months_mini"
    assert json.loads(_invoke("plan", src, "-o", "-").stdout) == written


def test_two_outputs_cannot_share_stdout_and_a_path_is_not_an_option() -> None:
    from seqcirc.cli.options import stdout_taken

    with pytest.raises(SeqcircError) as err:
        stdout_taken(json="-", output="-")
    assert err.value.code == "E904" and "--json and -o both write" in err.value.message
    with pytest.raises(typer.BadParameter) as bad:
        stdout_taken(json="--plot")
    assert "takes a PATH, not '--plot'" in str(bad.value)
    assert stdout_taken(json="-", output="x.txt") is True
    assert stdout_taken(json=None, output="x.txt") is False


def test_test_report_to_stdout_needs_one_file(tmp_path: Path) -> None:
    for name in ("a.circ", "b.circ"):
        (tmp_path / name).write_text(TASK)
    result = _invoke("test", str(tmp_path / "a.circ"), str(tmp_path / "b.circ"), "--json", "-")
    assert isinstance(result.exception, SeqcircError) and result.exception.code == "E904"
    result = _invoke("test", str(tmp_path / "a.circ"), "--format", "fancy")
    assert result.exit_code == 2 and "--format" in result.output


def test_data_export_takes_seed_prompts_and_output(tmp_path: Path) -> None:
    """Offline through --tokenizer (no weights): --prompts and --seed change the task as
    `seqcirc test` does; -o writes the file, - prints it."""
    src = tmp_path / "t.circ"
    src.write_text(TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n}\n")
    tok = str(ROOT / "seqcirc" / "bundled" / "seqcirc-mini")
    base = ["data", "export", str(src), "--unfiltered", "--tokenizer", tok, "--prompts", "6"]
    out = tmp_path / "m.jsonl"
    result = _invoke(*base, "--seed", "4", "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 1 + 6 and json.loads(lines[0])["meta"]["seed"] == 4
    assert _invoke(*base, "--seed", "4", "--output", "-").stdout.splitlines() == lines
    file_seed = _invoke(*base, "--out", "-").stdout.splitlines()
    assert json.loads(file_seed[0])["meta"]["seed"] == 3 and file_seed[1:] != lines[1:]


@needs_bundled
def test_test_output_fits_80_columns_and_json_to_stdout(tmp_path: Path) -> None:
    circ = tmp_path / "ok.circ"
    circ.write_text(
        TASK.replace("prompts=48", "prompts=12")
        + f"circuit most_of_the_model on seqcirc-mini {{\n  heads {heads_but_last()}\n"
        "  expect faithfulness(bound=point) >= 0.5\n}\n"
    )
    table = _invoke("test", str(circ), env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert all(len(ln) <= 80 and ln == ln.rstrip() for ln in lines), table.stdout
    assert "expect faithfulness(bound=point) >= 0.5" in table.stdout  # no word broken
    piped = _invoke("test", str(circ), "--json", "-", "--format", "plain", env={"COLUMNS": "40"})
    assert piped.exit_code == 0
    assert json.loads(piped.stdout)["circuits"][0]["name"] == "most_of_the_model"
    # the verdicts moved to stderr, as plain blocks: unwrapped, no rules
    assert "PASS  expect faithfulness(bound=point) >= 0.5 (line 8)" in piped.stderr
    assert "─" not in piped.stderr and "PASSED: 1 of 1 claim hold" in piped.stderr
