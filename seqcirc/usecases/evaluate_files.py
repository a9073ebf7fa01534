"""What `seqcirc test` runs: every .circ file evaluated in one Session (models, tasks and
means shared across files), each file's reports written as soon as it is evaluated (the
CLI only parses options and prints)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import SeqcircError


@dataclass(frozen=True)
class ReportPaths:
    """Where each report goes (None: not written)."""

    json: str | None = None
    junit: str | None = None
    markdown: str | None = None
    html: str | None = None

    def numbered(self, i: int, n: int) -> dict[str, str | None]:
        """write_reports' keyword arguments for file i of n: several files sharing one
        report option get report.0.json, report.1.json, ..."""
        suffix = "" if n == 1 else f".{i}"
        return {
            "json_path": _suffixed(self.json, suffix),
            "junit_path": _suffixed(self.junit, suffix),
            "markdown_path": _suffixed(self.markdown, suffix),
            "html_path": _suffixed(self.html, suffix),
        }


def _suffixed(path: str | None, suffix: str) -> str | None:
    """report.json -> report.0.json when several files share one report option."""
    if path is None or not suffix:
        return path
    stem, dot, ext = path.rpartition(".")
    return f"{stem}{suffix}.{ext}" if dot else f"{path}{suffix}"


@dataclass(frozen=True)
class FileOutcome:
    """One file's evaluation and its reports: those written, and the write errors (E901)
    the CLI prints after the verdict table."""

    result: Any
    written: list[Path]
    write_errors: list[SeqcircError]


def check_inputs(files: Sequence[str], reports: ReportPaths) -> None:
    """Every FILE and every report path checked before any model loads."""
    from seqcirc.report import check_report_paths

    for file in files:
        path = Path(file)
        if path.is_dir():
            raise SeqcircError(
                f"{file} is a directory, not a .circ file", code="E001",
                hint=f"name the files in it, e.g. {path.as_posix()}/*.circ",
            )  # fmt: skip
        if not path.is_file():
            raise SeqcircError(f"no such file: {file}", code="E001", hint="check the path")
    for i in range(len(files)):
        check_report_paths(**reports.numbered(i, len(files)))


def evaluate_files(
    files: Sequence[str],
    options: Any,
    reports: ReportPaths,
) -> Iterator[FileOutcome]:
    """A FileOutcome per file, in order, after checking every input (check_inputs).
    `options` is a session.Options. A report that fails to be written does not stop the
    run: its error is in the outcome."""
    from seqcirc.report import write_reports
    from seqcirc.usecases.session import Session

    check_inputs(files, reports)
    session = Session(options)
    for i, file in enumerate(files):
        result = session.evaluate_file(file)
        errors: list[SeqcircError] = []
        written = write_reports(result, **reports.numbered(i, len(files)), errors=errors)
        yield FileOutcome(result, written, errors)
