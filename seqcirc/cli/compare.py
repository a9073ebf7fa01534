"""`seqcirc compare`: the paper's shared-circuit analysis (seqcirc.usecases.compare)."""

from __future__ import annotations

import typer


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr"),
) -> None:
    """Overlap of circuits (intersections, IoU, the shared sub-circuit) and the cross-task
    matrix: every circuit evaluated on every circuit's task data, as % of the full
    model's score on that data (the paper's shared-circuit analysis).

    Example:  seqcirc compare numerals.circ number_words.circ months.circ --plot cmp.png
    """
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.compare import compare as run_compare
    from seqcirc.usecases.compare import plot_comparison, write_json, write_table

    with stderr_progress(quiet=quiet):
        cmp = run_compare(files, model=model, seed=seed, prompts=prompts, device=device)
    typer.echo(cmp.table(), nl=False)
    if output is not None:
        typer.echo(f"wrote {write_table(cmp, output)}", err=True)
    if json_path is not None:
        typer.echo(f"wrote {write_json(cmp, json_path)}", err=True)
    if plot is not None:
        typer.echo(f"wrote {plot_comparison(cmp, plot)}", err=True)
