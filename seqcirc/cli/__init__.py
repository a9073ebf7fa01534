"""The `seqcirc` command. Commands are thin: parse options, call the library, print.
Heavy imports (torch, transformer_lens) happen inside commands, never at import time."""

from __future__ import annotations

import sys

import typer

from seqcirc import __version__
from seqcirc.errors import EXIT_RUNTIME, SeqcircError

app = typer.Typer(
    name="seqcirc",
    help=(
        "Test circuit hypotheses about transformer language models.\n\n"
        "Example:  seqcirc check hypotheses/months.circ"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Test circuit hypotheses about transformer language models."""


@app.command()
def version() -> None:
    """Print seqcirc's version.

    Example:  seqcirc version
    """
    typer.echo(f"seqcirc {__version__}")


@app.command()
def roles(
    model: str = typer.Argument(..., help="seqcirc-mini, a hub name, or a model folder"),
    task: str = typer.Option(..., "--task", help="ordered set, e.g. months, numerals"),
    top: int = typer.Option(5, "--top", help="k of the OV top-k scores"),
    attends: list[str] = typer.Option(  # noqa: B008
        [], "--attends", help="FROM:TO named positions (repeatable), e.g. S3:S2"
    ),
    prompts: int = typer.Option(
        66, "--prompts", help="task prompts for --attends (a multiple of 3: one third per template)"
    ),
    context: str = typer.Option("prompts", "--context", help="prompts | alone"),
    seed: int = typer.Option(0, "--seed"),
    repeat_len: int = typer.Option(
        20, "--repeat-len", help="random tokens repeated once for pattern roles"
    ),
    sort: str = typer.Option("successor", "--sort", help="role to sort the table by"),
    limit: int = typer.Option(20, "--limit", help="rows shown (0: all)"),
    plot: str | None = typer.Option(None, "--plot", help="save a heatmap PNG here"),
    as_json: bool = typer.Option(False, "--json", help="print the full table as JSON"),
) -> None:
    """Score every head on every role (successor, copy, previous-token, duplicate,
    induction, attends) to find candidate heads before writing a hypothesis.

    Example:  seqcirc roles seqcirc-mini --task months --attends S3:S2 --plot roles.png
    """
    from pathlib import Path

    from seqcirc.usecases.roles_scan import check_options, parse_attends, scan_model, summary

    if context not in ("prompts", "alone"):
        raise typer.BadParameter("use prompts or alone", param_hint="--context")
    pairs = parse_attends(attends)
    check_options(task, pairs, sort)
    table = scan_model(
        model, task, attends=pairs, top_k=top, context=context,  # type: ignore[arg-type]
        prompts=prompts, seed=seed, half_len=repeat_len,
    )  # fmt: skip
    if as_json:
        if plot:
            from seqcirc.roles.scan import plot_role_heatmaps
            from seqcirc.usecases.roles_scan import plot_title

            plot_role_heatmaps(table, Path(plot), title=plot_title(table))
        typer.echo(table.to_json())
    else:
        typer.echo(summary(table, sort_by=sort, limit=limit, plot=Path(plot) if plot else None))


def main() -> None:
    """Console entry point: every SeqcircError becomes its message and exit code."""
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of exiting.
        code = app(standalone_mode=False)
    except SeqcircError as err:
        typer.echo(err.render(), err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # click's usage errors and the like
        # click's exception classes, from click or from typer's vendored copy (typer._click)
        mro = type(err).__mro__
        kinds = {t.__name__ for t in mro if t.__module__.split(".")[0] in ("click", "typer")}
        if "Exit" in kinds:
            sys.exit(getattr(err, "exit_code", 0))
        if "ClickException" in kinds:
            err.show()  # type: ignore[attr-defined]
            sys.exit(2)
        if "Abort" in kinds:
            sys.exit(130)
        typer.echo(f"error: internal failure: {type(err).__name__}: {err}", err=True)
        typer.echo(
            "help: this is a bug in seqcirc; please report it with the command you ran", err=True
        )
        sys.exit(EXIT_RUNTIME)
    sys.exit(code if isinstance(code, int) else 0)


# ---- the .circ language: check, plan, fmt (lark is imported inside the commands) ----


@app.command()
def check(
    files: list[str] = typer.Argument(..., help=".circ files to check", metavar="FILE..."),  # noqa: B008
) -> None:
    """Parse and check .circ files against their models' shapes (no weights loaded).

    Prints every problem as `path:line:col: error[CODE]: message`; exit 0 clean, 2 errors.

    Example:  seqcirc check hypotheses/months.circ
    """
    from seqcirc.checks import check_file
    from seqcirc.checks.diagnostics import render_diagnostics

    failed = False
    for path in files:
        try:
            module = check_file(path)
        except SeqcircError as err:
            failed = True
            typer.echo(err.render(), err=True)
            continue
        if module.warnings:
            warnings = render_diagnostics(tuple(module.warnings), path, module.program.text)
            typer.echo(warnings, err=True)
        typer.echo(f"{path}: ok")
    if failed:
        raise SystemExit(2)


@app.command()
def plan(file: str = typer.Argument(..., help="a .circ file", metavar="FILE")) -> None:
    """Print the intervention plan a .circ file compiles to, as JSON.

    Example:  seqcirc plan hypotheses/months.circ
    """
    from seqcirc.plan import plan_to_json
    from seqcirc.plan.compile import compile_file

    typer.echo(plan_to_json(compile_file(file)))


@app.command()
def fmt(
    files: list[str] = typer.Argument(..., help=".circ files", metavar="FILE..."),  # noqa: B008
    write: bool = typer.Option(False, "--write", "-w", help="rewrite the files in place"),
    check_only: bool = typer.Option(
        False, "--check", help="exit 1 if a file is not in the canonical layout"
    ),
) -> None:
    """Print .circ files in the canonical layout (comments kept).

    Example:  seqcirc fmt --write hypotheses/*.circ
    """
    from pathlib import Path

    from seqcirc.errors import InputError
    from seqcirc.language.fmt import format_text

    changed = False
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read {path}: {err}", code="E110") from None
        formatted = format_text(text, path)
        if check_only:
            if formatted != text:
                changed = True
                typer.echo(f"{path}: would reformat")
        elif write:
            if formatted != text:
                Path(path).write_text(formatted, encoding="utf-8")
        else:
            typer.echo(formatted, nl=False)
    if changed:
        raise SystemExit(1)


# ---- data: the prompt sets behind results (tasks/) ----

data_app = typer.Typer(
    help="Prompt sets: export the exact prompts a task uses.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("export")
def data_export(
    file: str = typer.Argument(..., help="A .circ file.", metavar="FILE.circ"),
    task: str | None = typer.Option(None, "--task", help="Task name (needed if several)."),
    model: str | None = typer.Option(
        None, "--model", help="Whose tokenizer (needed if the task has several models)."
    ),
    out: str | None = typer.Option(None, "--out", "-o", help="Write here (default: stdout)."),
    unfiltered: bool = typer.Option(
        False, "--unfiltered", help="Skip the task's `filter correct` (no model run)."
    ),
) -> None:
    """Write a task's exact prompts, token ids and answers as JSONL.

    One line per prompt (clean, corrupted, ids, answers, named positions), after a first
    line with the task's parameters and seed: enough to reproduce results outside seqcirc.

    Example:  seqcirc data export hypotheses/months.circ --task months -o months.jsonl
    """
    from seqcirc.usecases.data_export import export_circ_task

    target = out if out is not None else sys.stdout
    summary = export_circ_task(file, target, task=task, model=model, apply_filter=not unfiltered)
    where = out or "stdout"
    typer.echo(
        f"wrote {summary.n_prompts} prompts of task {summary.task} "
        f"(tokenized for {summary.model}) to {where}",
        err=True,
    )
    if summary.filter:
        typer.echo(summary.filter, err=True)


# ---- seqcirc test: evaluate every claim of .circ files ----


@app.command("test")
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
    json_path: str | None = typer.Option(None, "--json", help="write the results JSON here"),
    junit_path: str | None = typer.Option(None, "--junit", help="write JUnit XML here"),
    markdown_path: str | None = typer.Option(None, "--markdown", help="write Markdown here"),
    html_path: str | None = typer.Option(None, "--html", help="write the HTML report here"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the summary line"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show every detail"),
) -> None:
    """Evaluate every claim of .circ files against their models.

    Exit codes: 0 every claim holds; 1 a claim fails; 2 bad input; 3 model or run failure.

    Examples:

      seqcirc test hypotheses/months.circ --on seqcirc-mini --html months.html

      seqcirc test hypotheses/*.circ --seed 1 --junit results.xml
    """
    from pathlib import Path

    from rich.console import Console

    from seqcirc.errors import EXIT_CLAIM_FAILED, EXIT_OK
    from seqcirc.report import print_terminal, write_reports
    from seqcirc.usecases.session import Options, Session

    out = Console()
    err_console = Console(stderr=True)
    status = err_console.status("starting") if err_console.is_terminal and not quiet else None

    def progress(message: str) -> None:
        if status is not None:
            status.update(message)

    session = Session(
        Options(
            model=model,
            seed=seed,
            prompts=prompts,
            device=device,
            batch_rows=batch_size,
            cache_dir=cache_dir,
            only_model=on,
        ),
        progress=progress,
    )
    failed = False
    for i, file in enumerate(files):
        if not Path(file).is_file():
            raise SeqcircError(f"no such file: {file}", code="E001", hint="check the path")
        if status is not None:
            status.start()
        try:
            result = session.evaluate_file(file)
        finally:
            if status is not None:
                status.stop()
        suffix = "" if len(files) == 1 else f".{i}"
        written = write_reports(
            result,
            json_path=_suffixed(json_path, suffix),
            junit_path=_suffixed(junit_path, suffix),
            markdown_path=_suffixed(markdown_path, suffix),
            html_path=_suffixed(html_path, suffix),
        )
        if quiet:
            from seqcirc.report.view import summary_line

            out.print(summary_line(result))
        else:
            print_terminal(result, out, verbose=verbose)
        for path in written:
            err_console.print(f"wrote {path}")
        failed = failed or not result.passed
    raise typer.Exit(EXIT_CLAIM_FAILED if failed else EXIT_OK)


def _suffixed(path: str | None, suffix: str) -> str | None:
    """report.json -> report.0.json when several files share one report option."""
    if path is None or not suffix:
        return path
    stem, dot, ext = path.rpartition(".")
    return f"{stem}{suffix}.{ext}" if dot else f"{path}{suffix}"


# ---- discover and compare: the paper's circuit discovery and shared-circuit analysis ----


@app.command()
def discover(
    model: str = typer.Option("seqcirc-mini", "--model", help="model to prune"),
    task: str = typer.Option(..., "--task", help="ordered set: numerals, number_words, months..."),
    threshold: float = typer.Option(
        0.8, "--threshold", help="keep more than this share of the FULL model's score"
    ),
    edges: bool = typer.Option(False, "--edges", help="also prune edges among the found nodes"),
    prompts: int = typer.Option(1536, "--prompts", help="prompts generated (the paper's 1536)"),
    seed: int = typer.Option(0, "--seed", help="seed of the prompts and of every claim's draws"),
    no_filter: bool = typer.Option(
        False, "--no-filter", help="keep prompts the model gets wrong (no `filter correct`)"
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        help="torch device: auto (a GPU if present, else cpu), cpu, cuda, cuda:1",
    ),
    name: str | None = typer.Option(None, "--name", help="circuit name (default: the task's)"),
    output: str | None = typer.Option(None, "--output", "-o", help="write the .circ file here"),
) -> None:
    """Find a circuit by the paper's iterative pruning and write it as a .circ file.

    Starts from every head and MLP and sweeps layers last -> 0 (MLP, then heads), then
    0 -> last; a component is dropped when the circuit without it still keeps MORE than
    --threshold of the FULL model's score (F(C - v) / F(M) > 0.8; relative to the full
    model, never to the previous step); sweeps repeat until one drops nothing. The file
    holds the task, the circuit (heads grouped by the roles a scan supports, MLPs as
    ranges), the per-component ablation table and role scan as comments, and
    expectations measured on the file itself, so `seqcirc test` passes it.

    Example:  seqcirc discover --model seqcirc-mini --task months -o months.circ

    Example:  seqcirc discover --task numerals --threshold 0.9 --edges -o numerals.circ
    """
    from seqcirc.usecases.discover import run_discover, summary

    run = run_discover(
        model=model, set_name=task, threshold=threshold, prompts=prompts, seed=seed,
        device=device, edges=edges, filter_correct=not no_filter, output=output, name=name,
    )  # fmt: skip
    if output is None:
        typer.echo(run.written.text, nl=False)
        typer.echo(summary(run), err=True)
    else:
        typer.echo(summary(run))


@app.command()
def compare(
    files: list[str] = typer.Argument(..., help=".circ files with circuits", metavar="FILE..."),  # noqa: B008
    model: str | None = typer.Option(None, "--model", help="evaluate every circuit on this model"),
    seed: int | None = typer.Option(None, "--seed", help="task seed (default: each file's)"),
    prompts: int | None = typer.Option(None, "--prompts", help="prompts per generated task"),
    device: str = typer.Option(
        "auto",
        "--device",
        help="torch device: auto (a GPU if present, else cpu), cpu, cuda, cuda:1",
    ),
    plot: str | None = typer.Option(None, "--plot", help="save the heatmaps as PNG here"),
    json_path: str | None = typer.Option(None, "--json", help="write the numbers as JSON here"),
    output: str | None = typer.Option(None, "--output", "-o", help="write the Markdown here"),
) -> None:
    """Overlap of circuits (intersections, IoU, the shared sub-circuit) and the cross-task
    matrix: every circuit evaluated on every circuit's task data, as % of the full
    model's score on that data (the paper's shared-circuit analysis).

    Example:  seqcirc compare numerals.circ number_words.circ months.circ --plot cmp.png
    """
    from seqcirc.usecases.compare import compare as run_compare
    from seqcirc.usecases.compare import plot_comparison, write_json

    cmp = run_compare(files, model=model, seed=seed, prompts=prompts, device=device)
    text = cmp.table()
    typer.echo(text, nl=False)
    if output is not None:
        from seqcirc.report.files import write_text

        typer.echo(f"wrote {write_text(output, text, 'comparison')}", err=True)
    if json_path is not None:
        typer.echo(f"wrote {write_json(cmp, json_path)}", err=True)
    if plot is not None:
        typer.echo(f"wrote {plot_comparison(cmp, plot)}", err=True)
