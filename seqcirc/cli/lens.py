"""`seqcirc lens`: the logit lens on a task's prompts (seqcirc.usecases.lens_run)."""

from __future__ import annotations

import typer

TASK_HELP = "an ordered set (months), a prompt file (p.jsonl), or FILE.circ:TASK"
PROMPTS_HELP = "prompts generated for --task SET (default 66), or a prompt file"


def lens(
    model: str = typer.Argument(..., help="seqcirc-mini, a hub name, or a model folder"),
    task: str | None = typer.Option(None, "--task", help=TASK_HELP),
    prompts: str | None = typer.Option(None, "--prompts", help=PROMPTS_HELP),
    seed: int = typer.Option(0, "--seed", help="seed of generated prompts"),
    filter_correct: bool = typer.Option(
        False, "--filter", help="keep only prompts the model gets right (the paper's filter)"
    ),
    components: bool = typer.Option(
        False, "--components", help="also decode after every head and MLP, not only each block"
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps"),
    output: str | None = typer.Option(None, "--output", "-o", help="plot: .png, .svg or .pdf"),
    json_path: str | None = typer.Option(
        None, "--json", help="write the table as JSON (- : stdout)"
    ),
) -> None:
    """The logit lens: each layer's residual stream decoded into answer ranks and logits.

    The residual stream at the answer position, after the embeddings and after every
    block (with --components, after every head and MLP), decoded by the model's own
    final norm and unembedding, on the task's clean prompts and the unablated model.
    Prints, per row, the median rank (1 = top) and mean logit of the correct answer and
    of the last member (the task's incorrect token), and the most common top-1 token.
    After the last block the lens equals the model's logits.

    Example:  seqcirc lens seqcirc-mini --task months --prompts 30 -o lens.png

    Example:  seqcirc lens gpt2-small --task numerals --components --json lens.json
    """
    from seqcirc.usecases.lens_run import run_lens, summary

    run = run_lens(
        model, task=task, prompts=prompts, seed=seed, filter_correct=filter_correct,
        components=components, device=device, plot=output, json_path=json_path,
    )  # fmt: skip
    if json_path == "-":
        import json

        typer.echo(json.dumps(run.table, indent=1))
        typer.echo(summary(run, plot=output, json_path=None), err=True)
    else:
        typer.echo(summary(run, plot=output, json_path=json_path))
