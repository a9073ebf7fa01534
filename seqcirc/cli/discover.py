"""`seqcirc discover`: the paper's circuit discovery (seqcirc.usecases.discover)."""

from __future__ import annotations

import typer


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr"),
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
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.discover import run_discover, summary

    with stderr_progress(quiet=quiet):
        run = run_discover(
            model=model, set_name=task, threshold=threshold, prompts=prompts, seed=seed,
            device=device, edges=edges, filter_correct=not no_filter, output=output, name=name,
        )  # fmt: skip
    if output is None:
        typer.echo(run.written.text, nl=False)
        typer.echo(summary(run), err=True)
    else:
        typer.echo(summary(run))
