"""`seqcirc attention`: heads' attention patterns on prompts (seqcirc.usecases.attention_run)."""

from __future__ import annotations

import typer

from seqcirc.cli import options
from seqcirc.cli.lens import PROMPTS_HELP, TASK_HELP


def attention(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="seqcirc-mini, a hub name, or a model folder"
    ),
    heads: list[str] = typer.Option(  # noqa: B008
        ...,
        "--heads",
        metavar="HEADS",
        help="heads, comma-separated or repeated: 4.4,9.1 (a9.h1, L9H1 ...)",
    ),
    task: str | None = typer.Option(None, "--task", metavar="TASK", help=TASK_HELP),
    prompts: str | None = typer.Option(None, "--prompts", metavar="N|FILE", help=PROMPTS_HELP),
    builtin: str | None = typer.Option(
        None,
        "--builtin",
        metavar="mixed",
        help="the paper's in-order and random-order digits and months",
    ),
    src: str | None = typer.Option(
        None, "--from", metavar="POS", help="named position attending, e.g. S3"
    ),
    dst: str | None = typer.Option(
        None, "--to", metavar="POS", help="named position attended to, e.g. S2"
    ),
    seed: int = options.seed(0, "seed of generated prompts and random orders"),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="DIR", help="folder for the heatmaps"
    ),
    fmt: str = typer.Option("png", "--format", metavar="png|svg|pdf", help="heatmap file type"),
    json_path: str | None = options.report("--json", "the patterns as JSON"),
    device: str = options.device(),
    quiet: bool = options.quiet(),
) -> None:
    """Token-level attention heatmaps of heads, and attention between named positions.

    For each group of prompts of one token length, each head's pattern averaged over
    its prompts (query rows, key columns, labelled with the first prompt's tokens and
    the named positions S1.., N1.., END),
    one heatmap file per head in -o DIR. With --from/--to, the mean attention between
    two named positions, read at each prompt's own indices (as `role H attends(from=,
    to=)` reads it). --builtin mixed: the paper's in-order and random-order digits and
    months, and number words interleaved with months.

    Examples:
      seqcirc attention seqcirc-mini --heads 1.0,2.1 --builtin mixed -o attn
      seqcirc attention gpt2-small --heads 4.4 --task months --from S3 --to S2
    """
    from seqcirc.errors import InputError
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.attention_run import run_attention, summary

    if (src is None) != (dst is None):
        raise InputError("give --from and --to together", code="E361",
                         hint="e.g. --from S3 --to S2")  # fmt: skip
    pair = (src, dst) if src is not None and dst is not None else None
    with stderr_progress(quiet=quiet):
        run = run_attention(
            model, heads, task=task, prompts=prompts, builtin=builtin, seed=seed, pair=pair,
            output_dir=output, fmt=fmt, json_path=json_path, device=device,
        )  # fmt: skip
    if json_path == "-":
        import json

        typer.echo(json.dumps({"meta": run.meta, "records": run.records}))
        typer.echo(summary(run), err=True)
    else:
        typer.echo(summary(run))
