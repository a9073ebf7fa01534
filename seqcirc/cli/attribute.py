"""`seqcirc attribute`: a score for every edge of a model (seqcirc.usecases.attribute)."""

from __future__ import annotations

import typer

from seqcirc.cli import options


def attribute(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="seqcirc-mini, a hub name, or a model folder"
    ),
    task: str = typer.Option(
        ..., "--task", metavar="SET", help="ordered set: numerals, number_words, months..."
    ),
    method: str = typer.Option(
        "eap",
        "--method",
        metavar="METHOD",
        help="eap | eap-ig-inputs | eap-ig-activations | exact",
    ),
    steps: int | None = typer.Option(
        None, "--steps", metavar="N", help="interpolation steps of the eap-ig methods (default 5)"
    ),
    nodes: bool = typer.Option(False, "--nodes", help="also score every node (embed, heads, MLPs)"),
    metric: str = typer.Option(
        "logit_diff", "--metric", metavar="METRIC", help="logit_diff | prob | kl"
    ),
    ablate: str = typer.Option(
        "mean",
        "--ablate",
        metavar="VALUE",
        help="mean (per position) | mean-pooled | resample | zero",
    ),
    prompts: int = options.prompts(1536, "prompts generated (the paper's 1536)"),
    seed: int = options.seed(0, "seed of the prompts"),
    no_filter: bool = typer.Option(
        False, "--no-filter", help="keep prompts the model gets wrong (no `filter correct`)"
    ),
    device: str = options.device(),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        metavar="ROWS",
        help="prompts per forward chunk (default: from a memory budget)",
    ),
    top: int = typer.Option(15, "--top", metavar="N", help="edges listed in the summary"),
    json_path: str | None = options.report("--json", "every score (MIB graph JSON)"),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="PATH", help="write a heatmap PNG at PATH"
    ),
    quiet: bool = options.quiet(),
) -> None:
    """Score every edge of MODEL on a task by attribution (EAP, EAP-IG) or exactly.

    A score is the estimated change of the task's mean metric when that edge alone is
    ablated, with the evaluator's edge graph and ablation values.

    eap: one forward and one backward pass over all prompts for all edges (Syed et al.
    2023); eap-ig-inputs / eap-ig-activations: the EAP-IG library's integrated-gradient
    variants over --steps (Hanna et al. 2024); exact: one evaluator pass per edge.

    Examples:
      seqcirc attribute seqcirc-mini --task months --method eap-ig-inputs -o s.png
      seqcirc attribute gpt2-small --task numerals --nodes -o scores.png
    """
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.attribute import run_attribute, summary
    from seqcirc.usecases.limits import check_option_sizes

    check_option_sizes("E365", top=(top, "top"))
    with stderr_progress(quiet=quiet):
        run = run_attribute(
            model=model, set_name=task, method=method, steps=steps, nodes=nodes, metric=metric,
            ablate=ablate, prompts=prompts, seed=seed, device=device,
            filter_correct=not no_filter, batch_rows=batch_size, json_path=json_path,
            heatmap=output,
        )  # fmt: skip
    typer.echo(summary(run, top=top))
