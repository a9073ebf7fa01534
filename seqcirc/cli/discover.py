"""`seqcirc discover`: the paper's circuit discovery (seqcirc.usecases.discover)."""

from __future__ import annotations

import typer

from seqcirc.cli import options


def discover(
    model: str = typer.Option("seqcirc-mini", "--model", metavar="MODEL", help="model to prune"),
    task: str = typer.Option(
        ..., "--task", metavar="SET", help="ordered set: numerals, number_words, months, ..."
    ),
    threshold: float = typer.Option(
        0.8, "--threshold", metavar="X", help="keep more than this share of the FULL model's score"
    ),
    edges: bool = typer.Option(False, "--edges", help="also prune edges among the found nodes"),
    prompts: int = options.prompts(1536, "prompts generated (the paper's 1536)"),
    seed: int = options.seed(0, "seed of the prompts and of every claim's draws"),
    no_filter: bool = typer.Option(
        False, "--no-filter", help="keep prompts the model gets wrong (no `filter correct`)"
    ),
    device: str = options.device(),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="circuit name (default: the task's)"
    ),
    output: str | None = options.output("the .circ file"),
    quiet: bool = options.quiet(),
) -> None:
    """Find a circuit by the paper's iterative pruning and write it as a .circ file.

    Starts from every head and MLP and sweeps layers last -> 0 (MLP, then heads), then
    0 -> last; a component is dropped when the circuit without it still keeps MORE than
    --threshold of the FULL model's score (F(C - v) / F(M) > 0.8; relative to the full
    model, never to the previous step); sweeps repeat until one drops nothing.

    The file holds the task, the circuit (heads grouped by the roles a scan supports,
    MLPs as ranges), the per-component ablation table and role scan as comments, and
    expectations measured on the file itself, so `seqcirc test` passes it. Without -o
    it is printed, and the summary goes to stderr.

    Examples:
      seqcirc discover --model seqcirc-mini --task months -o months.circ
      seqcirc discover --task numerals --threshold 0.9 --edges -o numerals.circ
    """
    from seqcirc.report.files import is_stdout
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.discover import run_discover, summary

    options.check_outputs({"output": "circuit file"}, output=output)
    to_file = output is not None and not is_stdout(output)
    with stderr_progress(quiet=quiet):
        run = run_discover(
            model=model, set_name=task, threshold=threshold, prompts=prompts, seed=seed,
            device=device, edges=edges, filter_correct=not no_filter,
            output=output if to_file else None, name=name,
        )  # fmt: skip
    if to_file:
        typer.echo(summary(run))
    else:
        typer.echo(run.written.text, nl=False)
        typer.echo(summary(run), err=True)
