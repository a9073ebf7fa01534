"""`seqcirc roles`: score every head on every role (seqcirc.usecases.roles_scan)."""

from __future__ import annotations

import typer


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr"),
) -> None:
    """Score every head on every role (successor, copy, previous-token, duplicate,
    induction, attends) to find candidate heads before writing a hypothesis.

    Example:  seqcirc roles seqcirc-mini --task months --attends S3:S2 --plot roles.png
    """
    from pathlib import Path

    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.limits import check_option_sizes
    from seqcirc.usecases.roles_scan import (
        check_options,
        parse_attends,
        save_plot,
        scan_model,
        summary,
    )

    if context not in ("prompts", "alone"):
        raise typer.BadParameter("use prompts or alone", param_hint="--context")
    pairs = parse_attends(attends)
    check_options(task, pairs, sort)
    check_option_sizes(
        "E809", top=(top, "top"), prompts=(prompts, "prompts"), seed=(seed, "seed"),
        repeat_len=(repeat_len, "half_len"),
    )  # fmt: skip
    with stderr_progress(quiet=quiet):
        table = scan_model(
            model, task, attends=pairs, top_k=top, context=context,  # type: ignore[arg-type]
            prompts=prompts, seed=seed, half_len=repeat_len,
        )  # fmt: skip
    if as_json:
        if plot:
            save_plot(table, Path(plot))
        typer.echo(table.to_json())
    else:
        typer.echo(summary(table, sort_by=sort, limit=limit, plot=Path(plot) if plot else None))
