"""`seqcirc data`: the prompt sets behind results (seqcirc.tasks)."""

from __future__ import annotations

import sys

import typer

data_app = typer.Typer(
    help="Prompt sets: export the exact prompts a task uses.", no_args_is_help=True
)


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
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenize with the tokenizer in this folder; no model or weights are loaded "
        "(needs --unfiltered when the task filters).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Write a task's exact prompts, token ids and answers as JSONL.

    One line per prompt (clean, corrupted, ids, answers, named positions), after a first
    line with the task's parameters and seed: enough to reproduce results outside seqcirc.

    Example:  seqcirc data export hypotheses/months.circ --task months -o months.jsonl
    """
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.data_export import export_circ_task

    target = out if out is not None else sys.stdout
    with stderr_progress(quiet=quiet):
        summary = export_circ_task(
            file, target, task=task, model=model, apply_filter=not unfiltered, tokenizer=tokenizer
        )
    where = out or "stdout"
    typer.echo(
        f"wrote {summary.n_prompts} prompts of task {summary.task} "
        f"(tokenized for {summary.model}) to {where}",
        err=True,
    )
    if summary.filter:
        typer.echo(summary.filter, err=True)
