"""`seqcirc test`: evaluate every claim of .circ files (seqcirc.usecases.evaluate_files)."""

from __future__ import annotations

from typing import Any

import typer

from seqcirc.cli import options
from seqcirc.errors import InputError


def test_cmd(
    files: list[str] = typer.Argument(..., help=".circ files to evaluate", metavar="FILE..."),  # noqa: B008
    model: str | None = typer.Option(
        None, "--model", metavar="MODEL", help="evaluate every circuit on this model"
    ),
    on: str | None = typer.Option(
        None, "--on", metavar="MODEL", help="evaluate only the circuits the file states on MODEL"
    ),
    seed: int | None = options.seed(None, "seed for every random draw (default: the file's)"),
    prompts: int | None = options.prompts(None, "prompts per generated task"),
    device: str = options.device(),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        metavar="DTYPE",
        help="float32 (default) | bfloat16 | float16: the weights' dtype (the metric and "
        "the means are accumulated in float32)",
    ),
    device_map: str | None = typer.Option(
        None,
        "--device-map",
        metavar="MAP",
        help="auto | balanced | FILE (JSON: module name -> device): spread the model over "
        "devices with Hugging Face Accelerate (cpu, disk, cuda:N)",
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        metavar="ROWS",
        help="rows per forward chunk (default: from a memory budget)",
    ),
    cache_dir: str | None = typer.Option(
        None,
        "--cache-dir",
        metavar="DIR",
        help="keep mean-ablation values on disk here across runs (default: $SEQCIRC_CACHE_DIR)",
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        metavar="auto|generic|fast",
        help="auto | generic | fast: the forward that runs circuits (auto: the hand-written "
        "GPT-2/Llama one where it applies, else the generic one through the bridge's hooks)",
    ),
    bos: str | None = typer.Option(
        None,
        "--bos",
        metavar="on|off|auto",
        help="prepend BOS to every task's prompts (default: each task's `bos`)",
    ),
    json_path: str | None = options.report("--json", "the results JSON"),
    junit_path: str | None = options.report("--junit", "JUnit XML"),
    markdown_path: str | None = options.report("--markdown", "the Markdown report"),
    html_path: str | None = options.report("--html", "the HTML report"),
    layout: str = typer.Option(
        "table",
        "--format",
        metavar="table|plain",
        help="table: sized to the terminal; plain: no colour or wrapping, for logs",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="print only the summary line (no progress on stderr)"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show every detail"),
) -> None:
    """Evaluate every claim of .circ files against their models.

    Exit codes: 0 every claim holds; 1 a claim fails; 2 bad input (also a report that
    could not be written: the verdicts are printed first); 3 model or run failure.
    With a report written to stdout (-), the verdicts go to stderr.

    Examples:
      seqcirc test hypotheses/months.circ --on seqcirc-mini --html months.html
      seqcirc test hypotheses/*.circ --seed 1 --junit results.xml --format plain
      seqcirc test hypotheses/intervals.circ  # numerals by tens: ... 30 40 -> 50
      seqcirc test hypotheses/months.circ --on seqcirc-mini --json - | jq .seed

    Example, a knock-out claim scored by greedy generation (docs/language.md, "Generation"):
      task digits = sequence(numerals, members=4, start=6, range=20)
        corrupt shuffled_members
        metric accuracy(generate, max_new_tokens=3)  # " 10": 3 tokens on Llama-2
      circuit c on "path/to/model" {
        ablate nodes zero
        heads 0.0, 0.1, 1.0
        expect knockout(n=20) at p < 0.05
      }
    """
    from rich.console import Console

    from seqcirc.errors import EXIT_BAD_INPUT, EXIT_CLAIM_FAILED, EXIT_OK
    from seqcirc.report.files import is_stdout
    from seqcirc.report.progress import stderr_progress
    from seqcirc.report.terminal import LAYOUTS
    from seqcirc.usecases.evaluate_files import ReportPaths, evaluate_files
    from seqcirc.usecases.session import Options

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"use {' or '.join(LAYOUTS)}", param_hint="--format")
    reports = ReportPaths(json_path, junit_path, markdown_path, html_path)
    to_stdout = options.stdout_taken(
        json=json_path, junit=junit_path, markdown=markdown_path, html=html_path
    )
    if to_stdout and len(files) > 1:
        raise InputError(
            f"a report to stdout (-) holds one file's results; {len(files)} files were given",
            code="E904", hint="give the report a path: several files write report.0.json, ...",
        )  # fmt: skip
    out = Console(stderr=to_stdout, no_color=layout == "plain" or None)
    err_console = Console(stderr=True)
    run_options = Options(
        model=model, seed=seed, prompts=prompts, device=device, batch_rows=batch_size,
        cache_dir=cache_dir, only_model=on, bos=bos, dtype=dtype, device_map=device_map,
        engine=engine,
    )  # fmt: skip
    failed = unwritten = False
    # progress on stderr while each file is evaluated; the verdicts go to stdout between
    with stderr_progress(quiet=quiet, console=err_console):
        for outcome in evaluate_files(files, run_options, reports):
            _print_result(outcome.result, out, quiet=quiet, verbose=verbose, layout=layout)
            for path in outcome.written:
                if not is_stdout(path):
                    err_console.print(f"wrote {path}", highlight=False)
            for err in outcome.write_errors:
                typer.echo(err.render(), err=True)
            failed = failed or not outcome.result.passed
            unwritten = unwritten or bool(outcome.write_errors)
    # A report asked for but not written is an error even when every claim holds.
    raise typer.Exit(EXIT_BAD_INPUT if unwritten else EXIT_CLAIM_FAILED if failed else EXIT_OK)


def _print_result(result: Any, out: Any, *, quiet: bool, verbose: bool, layout: str) -> None:
    if quiet:
        from seqcirc.report.view import summary_line

        out.print(summary_line(result), highlight=False, markup=False, soft_wrap=True)
    else:
        from seqcirc.report import print_terminal

        print_terminal(result, out, verbose=verbose, layout=layout)
