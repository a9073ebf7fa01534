"""`seqcirc lens`: the logit lens on a task's prompts (seqcirc.usecases.lens_run)."""

from __future__ import annotations

import typer

from seqcirc.cli import options

TASK_HELP = "an ordered set (months), a prompt file (p.jsonl), or FILE.circ:TASK"
PROMPTS_HELP = "prompts generated for --task SET (default 66), or a prompt file"


def lens(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="seqcirc-mini, a hub name, or a model folder"
    ),
    task: str | None = typer.Option(None, "--task", metavar="TASK", help=TASK_HELP),
    prompts: str | None = typer.Option(None, "--prompts", metavar="N|FILE", help=PROMPTS_HELP),
    seed: int = options.seed(0, "seed of generated prompts"),
    filter_correct: bool = typer.Option(
        False, "--filter", help="keep only prompts the model gets right (the paper's filter)"
    ),
    components: bool = typer.Option(
        False, "--components", help="also decode after every head and MLP, not only each block"
    ),
    device: str = options.device(),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="PATH", help="the plot: .png, .svg or .pdf"
    ),
    json_path: str | None = options.report("--json", "the table as JSON"),
    quiet: bool = options.quiet(),
) -> None:
    """The logit lens: each layer's residual stream decoded into answer ranks and logits.

    The residual stream at the answer position, after the embeddings and after every
    block (with --components, after every head and MLP), decoded by the model's own
    final norm and unembedding, on the task's clean prompts and the unablated model.
    Prints, per row, the median rank (1 = top) and mean logit of the correct answer and
    of the last member (the task's incorrect token), and the most common top-1 token.
    After the last block the lens equals the model's logits.

    Examples:
      seqcirc lens seqcirc-mini --task months --prompts 30 -o lens.png
      seqcirc lens gpt2-small --task numerals --components --json lens.json

    Example, as a claim in a .circ circuit (docs/language.md, "Logit lens"):
      expect lens(layer=9) rank(correct) <= 1
    """
    from seqcirc.report.progress import stderr_progress
    from seqcirc.usecases.lens_run import run_lens, summary

    with stderr_progress(quiet=quiet):
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
