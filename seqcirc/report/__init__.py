"""Reports of an EvaluationResult: terminal (rich), JSON, JUnit XML, Markdown and a
self-contained HTML file with plots. Every number is shown with its ablation set-up and
every report names the model, seed and versions that produced it.

Importing this package imports neither matplotlib nor torch; the plots import
matplotlib when drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seqcirc.errors import SeqcircError
from seqcirc.report.view import failure_text

if TYPE_CHECKING:
    from rich.console import Console

    from seqcirc.results import EvaluationResult

__all__ = [
    "check_report_paths",
    "failure_text",
    "print_terminal",
    "write_each",
    "write_reports",
]


def print_terminal(
    result: EvaluationResult, console: Console, verbose: bool = False, layout: str = "table"
) -> None:
    """A table per circuit sized to the console (blocks where it does not fit, or with
    layout="plain"), notes on claims that did not pass, and a one-line summary."""
    from seqcirc.report.terminal import print_terminal as _print

    _print(result, console, verbose, layout)


# keyword -> (module, writer, what the error message calls it)
_WRITERS = {
    "json_path": ("json_file", "write_json", "JSON report"),
    "junit_path": ("junit", "write_junit", "JUnit report"),
    "markdown_path": ("markdown", "write_markdown", "Markdown report"),
    "html_path": ("html_report", "write_html", "HTML report"),
}


def check_report_paths(**paths: str | Path | None) -> None:
    """Raise E901 before any work if a report path given (json_path=..., as for
    write_reports) cannot be written: a folder, or in a folder that cannot be."""
    from seqcirc.report.files import check_writable

    for key, path in paths.items():
        if path is not None:
            check_writable(path, _WRITERS[key][2])


def write_reports(
    result: EvaluationResult,
    *,
    json_path: str | Path | None = None,
    junit_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
    errors: list[SeqcircError] | None = None,
) -> list[Path]:
    """Write each report whose path is given (atomically); returns the paths written. An
    unwritable path raises InputError (E901), or, with `errors`, is appended there and
    the other reports are still written."""
    import importlib

    paths = {"json_path": json_path, "junit_path": junit_path,
             "markdown_path": markdown_path, "html_path": html_path}  # fmt: skip
    written = []
    for key, path in paths.items():
        if path is None:
            continue
        module, writer, _ = _WRITERS[key]
        write = getattr(importlib.import_module(f"seqcirc.report.{module}"), writer)
        try:
            written.append(write(result, path))
        except SeqcircError as err:
            if errors is None:
                raise
            errors.append(err)
    return written


def write_each(
    results: Sequence[EvaluationResult],
    *,
    json_path: str | None = None,
    html_path: str | None = None,
    errors: list[SeqcircError] | None = None,
) -> list[Path]:
    """write_reports for each result (the pytest plugin's, one per file and model); with
    several, each report is numbered: report.json -> report.0.json, report.1.json."""
    written = []
    for i, result in enumerate(results):
        suffix = "" if len(results) == 1 else f".{i}"
        written += write_reports(
            result,
            json_path=_numbered(json_path, suffix),
            html_path=_numbered(html_path, suffix),
            errors=errors,
        )
    return written


def _numbered(path: str | None, suffix: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p.with_name(f"{p.stem}{suffix}{p.suffix}")
