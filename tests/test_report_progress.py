"""Progress on stderr (seqcirc.progress marks the phases, seqcirc.report.progress shows
them): one plain line per phase in a log, bars with counts on a terminal, nothing with
-q or without a reporter (the pytest plugin, the API), never on stdout."""

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from seqcirc import progress
from seqcirc.cli import app
from seqcirc.report.progress import LogLines, TerminalBars, stderr_progress
from tests.mini_circuits import TASK, needs_bundled

# 3 heads and 3 MLPs of seqcirc-mini's 8 heads and 4 MLPs: 223 other circuits of that
# size, so the baseline samples its 10
CIRC = (
    TASK
    + """
circuit c on seqcirc-mini {
  heads 0.0, 1.0, 1.1
  mlp 0..2
  expect faithfulness >= 0.5
  expect beats random(n=10) at p < 0.5
}
"""
)
# "name: 20 circuits in 0.41 s" or "name: 1.2 s"
LINE = re.compile(r"^(?P<name>.+?): (?:(?P<count>[\d,]+(?: of [\d,]+)?) (?P<unit>\w+) in )?"
                  r"(?P<secs>\d+(?:\.\d+)?) s$")  # fmt: skip
# a log, not a terminal, even where CI sets FORCE_COLOR; no means cache from the caller
ENV = {"TTY_INTERACTIVE": "0", "NO_COLOR": "1", "SEQCIRC_CACHE_DIR": None, "COLUMNS": "100"}


def _parsed(text: str) -> list[tuple[str, str | None, float]]:
    """(name, count with unit, seconds) of every progress line in `text`."""
    out = []
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m:
            count = f"{m['count']} {m['unit']}" if m["count"] else None
            out.append((m["name"], count, float(m["secs"])))
    return out


def _log(fn: object) -> list[str]:
    buf = io.StringIO()
    with progress.reporting(LogLines(Console(file=buf))):
        fn()  # type: ignore[operator]
    return buf.getvalue().splitlines()


def test_without_a_reporter_phases_count_but_print_nothing(capfd: pytest.CaptureFixture[str]):
    with progress.phase("random baseline", total=3, unit="circuits") as bar:
        bar.advance(2)
        progress.advance(5, "circuits")  # no reporter: no open phase to advance
    assert bar.done == 2
    assert capfd.readouterr() == ("", "")


def test_log_lines_name_the_path_count_and_duration_in_order():
    def run() -> None:
        with progress.phase("circuit c", total=2, unit="claims"):
            with progress.phase("random baseline", total=20, unit="circuits"):
                for _ in range(4):
                    progress.advance(5, "circuits")
                progress.advance(1, "claims")  # the innermost phase counts circuits: ignored
            progress.advance(1, "claims")
            with progress.phase("pruning sweep 1 (backward)", total=64, unit="candidates") as b:
                b.advance(57)
        with progress.phase("load model m"):
            pass
        with pytest.raises(ValueError), progress.phase("failing"):
            raise ValueError

    lines = _log(run)
    assert [(n, c) for n, c, _ in _parsed("\n".join(lines))] == [
        ("circuit c / random baseline", "20 circuits"),
        ("circuit c / pruning sweep 1 (backward)", "57 of 64 candidates"),
        ("circuit c", "1 of 2 claims"),
        ("load model m", None),
    ]
    assert len(lines) == 4  # the failed phase prints nothing: its error says what happened


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("quiet", [True, False])
def test_stderr_progress_draws_bars_on_a_terminal_lines_in_a_log_nothing_when_quiet(
    terminal: bool, quiet: bool
):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, force_interactive=terminal, width=100)
    with (
        stderr_progress(quiet=quiet, console=console),
        progress.phase("clean run", total=48, unit="prompts") as bar,
    ):
        bar.advance(48)
    text = buf.getvalue()
    if quiet:
        assert text == ""
    elif terminal:
        assert "48/48 prompts" in text and "\x1b[" in text  # a bar (drawn, then cleared)
    else:
        assert [(n, c) for n, c, _ in _parsed(text)] == [("clean run", "48 prompts")]
        assert text.count("\n") == 1 and "\x1b" not in text


@pytest.fixture(scope="module")
def circ(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "tiny.circ"
    path.write_text(CIRC)
    return path


@needs_bundled
def test_piped_test_prints_one_line_per_phase_in_order_and_nothing_on_stdout(circ: Path):
    from seqcirc.models.load import clear_cache

    clear_cache()  # so that the model loads here, and its phase is reported
    result = CliRunner().invoke(app, ["test", str(circ)], env=ENV)
    assert result.exit_code in (0, 1), result.output
    phases = _parsed(result.stderr)
    assert [(n, c) for n, c, _ in phases] == [
        ("load model seqcirc-mini", None),
        ("circuit c / corrupted run (means)", "48 prompts"),
        ("circuit c / clean run", "48 prompts"),
        ("circuit c / random baseline", "10 circuits"),
        ("circuit c / removals", "6 circuits"),
        ("circuit c / removals (bootstrap)", "6 intervals"),
        ("circuit c", "2 claims"),
    ]
    assert all(secs >= 0 for _, _, secs in phases)
    # the whole circuit took at least as long as its random baseline
    assert phases[-1][2] >= phases[3][2]
    assert "\x1b" not in result.stderr  # nothing animated, no escape codes
    assert _parsed(result.stdout) == []
    assert "PASSED" in result.stdout or "FAILED" in result.stdout


@needs_bundled
def test_quiet_prints_nothing_on_stderr(circ: Path):
    result = CliRunner().invoke(app, ["test", str(circ), "-q"], env=ENV)
    assert result.exit_code in (0, 1), result.output
    assert result.stderr == ""
    assert len(result.stdout.strip().splitlines()) <= 2  # the summary line only


@needs_bundled
def test_a_terminal_shows_the_random_baselines_counts(circ: Path):
    from seqcirc.usecases.session import Session

    buf = io.StringIO()
    tty = Console(file=buf, force_terminal=True, force_interactive=True, width=120,
                  color_system=None)  # fmt: skip
    with progress.reporting(TerminalBars(tty, summary_after_s=0.0)):
        Session().evaluate_file(circ)
    text = buf.getvalue()
    assert re.search(r"random baseline\s+━+\s+10/10 circuits", text), text[-2000:]
    assert "48/48 prompts" in text  # the clean and corrupted runs
    # the bars are transient; what stays is a summary line per outermost phase
    assert re.search(r"circuit c: 2 claims in \d", text)
    assert "circuit c / random baseline:" not in text


@needs_bundled
def test_json_on_stdout_stays_clean_while_stderr_shows_progress():
    args = ["roles", "seqcirc-mini", "--task", "months", "--json", "-"]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    n_roles = len(table["roles"])
    assert ("role scan", f"{n_roles} roles") in [(n, c) for n, c, _ in _parsed(result.stderr)]
    assert "top" in result.stderr  # with --json -, the table itself goes to stderr too


@needs_bundled
def test_the_api_and_the_pytest_plugin_print_no_progress(
    circ: Path, capfd: pytest.CaptureFixture[str]
):
    """The plugin evaluates through a Session with no reporter installed, as here."""
    from seqcirc.usecases.session import Session

    Session().evaluate_file(circ)
    out, err = capfd.readouterr()
    assert _parsed(out + err) == []
