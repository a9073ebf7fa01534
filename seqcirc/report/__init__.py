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

from seqcirc.report.view import failure_text

if TYPE_CHECKING:
    from rich.console import Console

    from seqcirc.results import EvaluationResult

__all__ = ["failure_text", "print_terminal", "write_each", "write_reports"]


def print_terminal(result: EvaluationResult, console: Console, verbose: bool = False) -> None:
    """A table per circuit, notes on claims that did not pass, and a one-line summary."""
    from seqcirc.report.terminal import print_terminal as _print

    _print(result, console, verbose)


def write_reports(
    result: EvaluationResult,
    *,
    json_path: str | Path | None = None,
    junit_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
) -> list[Path]:
    """Write each report whose path is given; returns the paths written. An unwritable
    path raises InputError (E901)."""
    written = []
    if json_path is not None:
        from seqcirc.report.json_file import write_json

        written.append(write_json(result, json_path))
    if junit_path is not None:
        from seqcirc.report.junit import write_junit

        written.append(write_junit(result, junit_path))
    if markdown_path is not None:
        from seqcirc.report.markdown import write_markdown

        written.append(write_markdown(result, markdown_path))
    if html_path is not None:
        from seqcirc.report.html_report import write_html

        written.append(write_html(result, html_path))
    return written


def write_each(
    results: Sequence[EvaluationResult],
    *,
    json_path: str | None = None,
    html_path: str | None = None,
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
        )
    return written


def _numbered(path: str | None, suffix: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p.with_name(f"{p.stem}{suffix}{p.suffix}")
