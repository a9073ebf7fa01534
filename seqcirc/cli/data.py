"""`seqcirc data`: the prompt sets behind results (seqcirc.tasks)."""

from __future__ import annotations

import sys

import typer

from seqcirc.cli import options
from seqcirc.cli.help import Command, Group

data_app = typer.Typer(
    cls=Group, help="Prompt sets: export the exact prompts a task uses.", no_args_is_help=True
)


@data_app.command("export", cls=Command)
def data_export(
    file: str = typer.Argument(..., help="a .circ file", metavar="FILE.circ"),
    task: str | None = typer.Option(
        None, "--task", metavar="NAME", help="the task to export (needed if the file has several)"
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        metavar="MODEL",
        help="whose tokenizer and filter (needed if the task is evaluated on several models)",
    ),
    seed: int | None = options.seed(None, "the file's seed instead (a task's own seed= wins)"),
    prompts: int | None = options.prompts(None, "prompts to generate (default: the task's)"),
    device: str = options.device(),
    output: str | None = options.output("the JSONL", "--out"),
    unfiltered: bool = typer.Option(
        False, "--unfiltered", help="skip the task's `filter correct` (no model run)"
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        metavar="FOLDER",
        help="tokenize with the tokenizer in FOLDER, loading no model (needs --unfiltered "
        "when the task filters)",
    ),
    quiet: bool = options.quiet(),
) -> None:
    """Write a task's exact prompts, token ids and answers as JSONL.

    One line per prompt (clean, corrupted, ids, answers, named positions), after a first
    line with the task's parameters and seed: enough to reproduce results outside seqcirc.
    --seed and --prompts change the task as they do for seqcirc test, so the export is
    the prompt set that run used.

    Example:
      seqcirc data export hypotheses/months.circ --task months_mini -o m.jsonl
    """
    from seqcirc.report.files import is_stdout
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.data_export import export_circ_task

    options.stdout_taken(output=output)
    target = sys.stdout if output is None or is_stdout(output) else output
    with stderr_progress(quiet=quiet):
        summary = export_circ_task(
            file, target, task=task, model=model,
            apply_filter=not unfiltered, tokenizer=tokenizer, seed=seed, prompts=prompts,
            device=device,
        )  # fmt: skip
    typer.echo(
        f"wrote {summary.n_prompts} prompts of task {summary.task} "
        f"(tokenized for {summary.model}) to {'stdout' if target is sys.stdout else output}",
        err=True,
    )
    if summary.filter:
        typer.echo(summary.filter, err=True)
