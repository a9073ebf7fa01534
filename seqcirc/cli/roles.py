"""`seqcirc roles`: score every head on every role (seqcirc.usecases.roles_scan)."""

from __future__ import annotations

import typer

from seqcirc.cli import options


def roles(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="seqcirc-mini, a hub name, or a model folder"
    ),
    task: str = typer.Option(
        ..., "--task", metavar="SET", help="ordered set, e.g. months, numerals"
    ),
    top: int = typer.Option(5, "--top", metavar="K", help="k of the OV top-k scores"),
    attends: list[str] = typer.Option(  # noqa: B008
        [], "--attends", metavar="FROM:TO", help="named positions (repeatable), e.g. S3:S2"
    ),
    prompts: int = options.prompts(
        66, "task prompts for --attends (a multiple of 3: one third per template)"
    ),
    context: str = typer.Option(
        "prompts",
        "--context",
        metavar="prompts|alone",
        help="OV scores of members in prompt context, or alone",
    ),
    seed: int = options.seed(0, "seed of the prompts and the repeated random tokens"),
    device: str = options.device(),
    repeat_len: int = typer.Option(
        20, "--repeat-len", metavar="N", help="random tokens repeated once for pattern roles"
    ),
    sort: str = typer.Option("successor", "--sort", metavar="ROLE", help="sort the rows by ROLE"),
    limit: int = typer.Option(20, "--limit", metavar="N", help="rows shown (0: every head)"),
    plot: str | None = typer.Option(
        None, "--plot", metavar="PATH", help="save the heatmaps as a PNG at PATH"
    ),
    json_path: str | None = options.report("--json", "every head's scores as JSON"),
    output: str | None = options.output("the table"),
    quiet: bool = options.quiet(),
) -> None:
    """Score every head on every role (successor, copy, previous-token, duplicate,
    induction, attends) to find candidate heads before writing a hypothesis.

    Rows are heads, sorted by --sort and cut at --limit. successor and copy read each
    head's OV map on the set's members (a hit: the target in the top --top of the
    vocabulary); the pattern roles its attention on random tokens repeated once;
    attends(FROM->TO) its attention between named positions of the task's prompts.

    Examples:
      seqcirc roles seqcirc-mini --task months --limit 4
      seqcirc roles seqcirc-mini --task months --attends S3:S2 --plot roles.png
    """
    from pathlib import Path

    from seqcirc.report.files import is_stdout, write_text
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.limits import check_option_sizes
    from seqcirc.usecases.roles_scan import (
        check_options,
        parse_attends,
        scan_model,
        summary,
    )

    if context not in ("prompts", "alone"):
        raise typer.BadParameter("use prompts or alone", param_hint="--context")
    if limit < 0:
        raise typer.BadParameter("rows shown: 0 (every head) or more", param_hint="--limit")
    options.check_outputs(
        {"json": "role table JSON", "output": "role table"}, json=json_path, output=output
    )
    pairs = parse_attends(attends)
    check_options(task, pairs, sort)
    check_option_sizes(
        "E809", top=(top, "top"), prompts=(prompts, "prompts"), seed=(seed, "seed"),
        repeat_len=(repeat_len, "half_len"),
    )  # fmt: skip
    with stderr_progress(quiet=quiet):
        table = scan_model(
            model, task, attends=pairs, top_k=top, context=context,  # type: ignore[arg-type]
            prompts=prompts, seed=seed, half_len=repeat_len, device=device,
        )  # fmt: skip
    text = summary(table, sort_by=sort, limit=limit, plot=Path(plot) if plot else None) + "\n"
    if json_path is not None:
        written = write_text(json_path, table.to_json() + "\n", "role table JSON")
        if not is_stdout(json_path):
            typer.echo(f"wrote {written}", err=True)
    if output is not None and not is_stdout(output):
        typer.echo(f"wrote {write_text(output, text, 'role table')}", err=True)
    else:  # with --json -, the table goes to stderr so stdout holds only the JSON
        typer.echo(text, nl=False, err=is_stdout(json_path))
