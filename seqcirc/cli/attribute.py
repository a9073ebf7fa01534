"""`seqcirc attribute`: a score for every edge of a model (seqcirc.usecases.attribute)."""

from __future__ import annotations

import typer


def attribute(
    model: str = typer.Argument(..., help="seqcirc-mini, a hub name, or a model folder"),
    task: str = typer.Option(..., "--task", help="ordered set: numerals, number_words, months..."),
    method: str = typer.Option(
        "eap", "--method", help="eap | eap-ig-inputs | eap-ig-activations | exact"
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="interpolation steps of the eap-ig methods (default 5)"
    ),
    nodes: bool = typer.Option(False, "--nodes", help="also score every node (embed, heads, MLPs)"),
    metric: str = typer.Option("logit_diff", "--metric", help="logit_diff | prob | kl"),
    ablate: str = typer.Option(
        "mean", "--ablate", help="mean (per position) | mean-pooled | resample | zero"
    ),
    prompts: int = typer.Option(1536, "--prompts", help="prompts generated (the paper's 1536)"),
    seed: int = typer.Option(0, "--seed", help="seed of the prompts"),
    no_filter: bool = typer.Option(
        False, "--no-filter", help="keep prompts the model gets wrong (no `filter correct`)"
    ),
    device: str = typer.Option(
        "auto", "--device", help="torch device: auto (a GPU if present, else cpu), cpu, cuda"
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="prompts per forward chunk (default: from a memory budget)"
    ),
    top: int = typer.Option(15, "--top", help="edges listed in the summary"),
    json_path: str | None = typer.Option(
        None, "--json", help="write every score here (MIB graph JSON, docs/attribution.md)"
    ),
    output: str | None = typer.Option(None, "--output", "-o", help="write a heatmap PNG here"),
) -> None:
    """Score every edge of MODEL on a task by attribution (EAP, EAP-IG) or exactly.

    A score is the estimated change of the task's mean metric when that edge alone is
    ablated, with the evaluator's edge graph and ablation values.

    eap: one forward and one backward pass over all prompts for all edges (Syed et al.
    2023); eap-ig-inputs / eap-ig-activations: the EAP-IG library's integrated-gradient
    variants over --steps (Hanna et al. 2024); exact: one evaluator pass per edge.

    Example:  seqcirc attribute seqcirc-mini --task months --method eap-ig-inputs --json s.json

    Example:  seqcirc attribute gpt2-small --task numerals --nodes -o scores.png
    """
    from seqcirc.usecases.attribute import run_attribute, summary
    from seqcirc.usecases.limits import check_option_sizes

    check_option_sizes("E365", top=(top, "top"))
    run = run_attribute(
        model=model, set_name=task, method=method, steps=steps, nodes=nodes, metric=metric,
        ablate=ablate, prompts=prompts, seed=seed, device=device,
        filter_correct=not no_filter, batch_rows=batch_size, json_path=json_path,
        heatmap=output,
    )  # fmt: skip
    typer.echo(summary(run, top=top))
