"""`seqcirc test`: evaluate every claim of .circ files (seqcirc.usecases.evaluate_files)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer


def test_cmd(
    files: list[str] = typer.Argument(..., help=".circ files to evaluate", metavar="FILE..."),  # noqa: B008
    model: str | None = typer.Option(None, "--model", help="evaluate every circuit on this model"),
    on: str | None = typer.Option(
        None, "--on", help="evaluate only the circuits the file states on this model"
    ),
    seed: int | None = typer.Option(None, "--seed", help="seed for every random draw"),
    prompts: int | None = typer.Option(None, "--prompts", help="prompts per generated task"),
    device: str = typer.Option(
        "auto",
        "--device",
        help="torch device: auto (a GPU if present, else cpu), cpu, cuda, cuda:1",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="rows per forward chunk (default: from a memory budget)"
    ),
    cache_dir: str | None = typer.Option(
        None,
        "--cache-dir",
        help="keep mean-ablation values on disk here across runs (default: $SEQCIRC_CACHE_DIR, "
        "else off)",
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto | generic | fast: the forward that runs circuits (auto: the hand-written "
        "GPT-2/Llama one where it applies, else the generic one through the bridge's hooks)",
    ),
    bos: str | None = typer.Option(
        None,
        "--bos",
        help="on | off | auto: prepend BOS to every task's prompts (default: each task's "
        "`bos`, else as the model's loader does)",
    ),
    json_path: str | None = typer.Option(None, "--json", help="write the results JSON here"),
    junit_path: str | None = typer.Option(None, "--junit", help="write JUnit XML here"),
    markdown_path: str | None = typer.Option(None, "--markdown", help="write Markdown here"),
    html_path: str | None = typer.Option(None, "--html", help="write the HTML report here"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the summary line"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show every detail"),
) -> None:
    """Evaluate every claim of .circ files against their models.

    Exit codes: 0 every claim holds; 1 a claim fails; 2 bad input (also a report that
    could not be written: the verdicts are printed first); 3 model or run failure.

    Examples:

      seqcirc test hypotheses/months.circ --on seqcirc-mini --html months.html

      seqcirc test hypotheses/*.circ --seed 1 --junit results.xml
    """
    from rich.console import Console

    from seqcirc.errors import EXIT_BAD_INPUT, EXIT_CLAIM_FAILED, EXIT_OK
    from seqcirc.usecases.evaluate_files import ReportPaths, evaluate_files
    from seqcirc.usecases.session import Options

    out = Console()
    err_console = Console(stderr=True)
    status = _Status(err_console, shown=err_console.is_terminal and not quiet)
    options = Options(
        model=model, seed=seed, prompts=prompts, device=device, batch_rows=batch_size,
        cache_dir=cache_dir, only_model=on, bos=bos, engine=engine,
    )  # fmt: skip
    reports = ReportPaths(json_path, junit_path, markdown_path, html_path)
    failed = unwritten = False
    for outcome in evaluate_files(
        files, options, reports, progress=status.update, busy=status.running
    ):
        _print_result(outcome.result, out, quiet=quiet, verbose=verbose)
        for path in outcome.written:
            err_console.print(f"wrote {path}")
        for err in outcome.write_errors:
            typer.echo(err.render(), err=True)
        failed = failed or not outcome.result.passed
        unwritten = unwritten or bool(outcome.write_errors)
    # A report asked for but not written is an error even when every claim holds.
    raise typer.Exit(EXIT_BAD_INPUT if unwritten else EXIT_CLAIM_FAILED if failed else EXIT_OK)


class _Status:
    """rich's status line on stderr while a file is evaluated (none when quiet or piped)."""

    def __init__(self, console: Any, *, shown: bool) -> None:
        self.status = console.status("starting") if shown else None

    def update(self, message: str) -> None:
        if self.status is not None:
            self.status.update(message)

    @contextmanager
    def running(self) -> Iterator[None]:
        if self.status is not None:
            self.status.start()
        try:
            yield
        finally:
            if self.status is not None:
                self.status.stop()


def _print_result(result: Any, out: Any, *, quiet: bool, verbose: bool) -> None:
    if quiet:
        from seqcirc.report.view import summary_line

        out.print(summary_line(result))
    else:
        from seqcirc.report import print_terminal

        print_terminal(result, out, verbose=verbose)
