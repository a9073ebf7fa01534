"""`seqcirc compare`: the paper's shared-circuit analysis (seqcirc.usecases.compare)."""

from __future__ import annotations

import typer

from seqcirc.cli import options


def compare(
    files: list[str] = typer.Argument(..., help=".circ files with circuits", metavar="FILE..."),  # noqa: B008
    on: str | None = typer.Option(
        None, "--on", metavar="MODEL", help="compare only the circuits each file states on MODEL"
    ),
    model: str | None = typer.Option(
        None, "--model", metavar="MODEL", help="evaluate every circuit on MODEL instead"
    ),
    rename: list[str] = typer.Option(  # noqa: B008
        [],
        "--rename",
        metavar="[FILE:]OLD=NEW",
        help="rename a circuit whose name another file uses too (repeatable)",
    ),
    seed: int | None = options.seed(None, "task seed (default: each file's)"),
    prompts: int | None = options.prompts(None, "prompts per generated task"),
    device: str = options.device(),
    plot: str | None = typer.Option(
        None, "--plot", metavar="PATH", help="save the heatmaps as a PNG at PATH"
    ),
    json_path: str | None = options.report("--json", "the numbers as JSON"),
    markdown_path: str | None = options.report("--markdown", "the tables as Markdown"),
    output: str | None = options.output("the tables"),
    quiet: bool = options.quiet(),
) -> None:
    """Overlap of circuits (intersections, IoU, the shared sub-circuit) and the cross-task
    matrix: every circuit evaluated on every circuit's task data, as % of the full
    model's score on that data (the paper's shared-circuit analysis).

    The circuits must be on one model: library files state circuits on several, so pick
    one with --on. Two circuits with one name (say two discovered months.circ) need
    --rename FILE:OLD=NEW for all but one.

    Examples:
      seqcirc compare numerals.circ months.circ --on seqcirc-mini --plot cmp.png
      seqcirc compare months.circ found.circ --rename found.circ:months=found
    """
    from seqcirc.report.files import is_stdout, write_text
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.compare import compare as run_compare
    from seqcirc.usecases.compare import plot_comparison, write_json

    options.check_outputs(
        {"json": "comparison JSON", "markdown": "comparison", "output": "comparison",
         "plot": "comparison plot"},
        json=json_path, markdown=markdown_path, output=output, plot=plot,
    )  # fmt: skip
    with stderr_progress(quiet=quiet):
        cmp = run_compare(
            files, model=model, on=on, renames=rename, seed=seed, prompts=prompts, device=device
        )
    table = cmp.table()
    for path, write in ((json_path, lambda p: write_json(cmp, p)),
                        (markdown_path, lambda p: write_text(p, table, "comparison"))):  # fmt: skip
        if path is not None:
            written = write(path)
            if not is_stdout(path):
                typer.echo(f"wrote {written}", err=True)
    if output is not None and not is_stdout(output):
        typer.echo(f"wrote {write_text(output, table, 'comparison')}", err=True)
    else:  # with a report on stdout (-), the tables go to stderr
        typer.echo(table, nl=False, err=is_stdout(json_path) or is_stdout(markdown_path))
    if plot is not None:
        typer.echo(f"wrote {plot_comparison(cmp, plot)}", err=True)
