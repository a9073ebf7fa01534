"""`seqcirc discover`: circuit discovery (seqcirc.usecases.discover, discover_edges)."""

from __future__ import annotations

import typer

from seqcirc.cli import options


def discover(
    model: str = typer.Option("seqcirc-mini", "--model", metavar="MODEL", help="model to search"),
    task: str = typer.Option(
        ..., "--task", metavar="SET", help="ordered set: numerals, number_words, months, ..."
    ),
    method: str = typer.Option(
        "prune",
        "--method",
        metavar="METHOD",
        help="prune (the paper's, nodes) | paper (with --edges: the authors' edge pruning) "
        "| eap | eap-ig | acdc (edges)",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        metavar="X",
        help="prune, eap, eap-ig: keep more than this share of the FULL model's score "
        "(default 0.8); acdc (required): the smallest rise of the loss that keeps an edge",
    ),
    edges: bool = typer.Option(
        False, "--edges", help="prune, paper: also prune edges among the found nodes"
    ),
    steps: int | None = typer.Option(
        None, "--steps", metavar="N", help="eap-ig: interpolation steps (5)"
    ),
    selection: str | None = typer.Option(
        None,
        "--selection",
        metavar="topn|greedy",
        help="eap, eap-ig: topn (default) | greedy (EAP-IG's, from logits)",
    ),
    metric: str | None = typer.Option(
        None, "--metric", metavar="METRIC", help="acdc: logit_diff (default) | kl"
    ),
    ablate: str | None = typer.Option(
        None,
        "--ablate",
        metavar="VALUE",
        help="eap, eap-ig, acdc: mean (default) | mean-pooled | resample | zero",
    ),
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
    """Find a circuit and write it as a .circ file that `seqcirc test` runs as written.

    prune (default; the paper's): starts from every head and MLP and sweeps layers last
    -> 0 (MLP, then heads), then 0 -> last; a component is dropped when the circuit
    without it still keeps MORE than --threshold of the FULL model's score (F(C - v) /
    F(M) > 0.8; relative to the full model, never to the previous step); sweeps repeat
    until one drops nothing. The file holds the task, the circuit (heads grouped by the
    roles a scan supports, MLPs as ranges), the per-component ablation table and role
    scan as comments, and expectations measured on the file itself.

    paper --edges: the nodes as prune finds them, then the authors' edge pruning: each
    edge among them removed alone from the node circuit, kept when that leaves less than
    --threshold of the full model (prune --edges removes edges one after another).

    eap, eap-ig: score every edge (docs/attribution.md), keep the top n by |score| (or
    EAP-IG's greedy selection), n the smallest a bisection finds whose edge circuit the
    evaluator measures above --threshold. acdc: Conmy et al.'s sweep from the logits
    back, an edge removed when the loss rises by less than --threshold. These write an
    edge circuit (`ablate edges`), each edge's score as a comment. Without -o the file
    is printed, and the summary goes to stderr.

    Examples:
      seqcirc discover --model seqcirc-mini --task months -o months.circ
      seqcirc discover --task months --method eap-ig -o months_edges.circ
      seqcirc discover --task months --method acdc --threshold 0.05 -o acdc.circ
    """
    from seqcirc.report.files import is_stdout
    from seqcirc.report.progress import stderr_progress

    options.check_outputs({"output": "circuit file"}, output=output)
    to_file = output if output is not None and not is_stdout(output) else None
    with stderr_progress(quiet=quiet):
        if method in ("prune", "paper"):
            text, summary = _prune(
                model, task, threshold, edges, (steps, selection, metric, ablate), prompts,
                seed, no_filter, device, name, to_file, method,
            )  # fmt: skip
        else:
            text, summary = _edges(
                model, task, method, threshold, edges, (steps, selection, metric, ablate),
                prompts, seed, no_filter, device, name, to_file,
            )  # fmt: skip
    if to_file is not None:
        typer.echo(summary)
    else:
        typer.echo(text, nl=False)
        typer.echo(summary, err=True)


def _edges(model: str, task: str, method: str, threshold: float | None, edges: bool,
           edge_only: tuple[object, ...], prompts: int, seed: int, no_filter: bool,
           device: str, name: str | None, output: str | None) -> tuple[str, str]:  # fmt: skip
    from seqcirc.errors import InputError
    from seqcirc.usecases.discover_edges import EdgeOptions, run_discover_edges, summary_edges

    if edges:
        raise InputError("--edges applies to --method prune", code="E340",
                         hint="eap, eap-ig and acdc find edge circuits already")  # fmt: skip
    steps, selection, metric, ablate = edge_only
    opts = EdgeOptions.check(method, threshold, steps, selection, metric, ablate, prompts, seed)  # type: ignore[arg-type]
    command = " ".join(["seqcirc discover", "--model", model, "--task", task, "--method",
                        method, f"--threshold {opts.threshold:g}",
                        *([f"--steps {opts.steps}"] if opts.steps else []),
                        *([f"--selection {selection}"] if selection else []),
                        *([f"--metric {metric}"] if metric else []),
                        *([f"--ablate {ablate}"] if ablate else []),
                        f"--prompts {prompts} --seed {seed}"])  # fmt: skip
    run = run_discover_edges(
        model=model, set_name=task, opts=opts, prompts=prompts,
        seed=seed, device=device, filter_correct=not no_filter, output=output, name=name,
        command=command,
    )  # fmt: skip
    return run.written.text, summary_edges(run)


def _prune(model: str, task: str, threshold: float | None, edges: bool,
           edge_only: tuple[object, ...], prompts: int, seed: int, no_filter: bool,
           device: str, name: str | None, output: str | None,
           method: str = "prune") -> tuple[str, str]:  # fmt: skip
    from seqcirc.errors import InputError
    from seqcirc.usecases.discover import run_discover, summary

    flags = ("--steps", "--selection", "--metric", "--ablate")
    given = [f for f, v in zip(flags, edge_only, strict=True) if v is not None]
    if given:
        raise InputError(f"{', '.join(given)} applies to the edge methods, not {method}",
                         code="E340", hint="add --method eap, eap-ig or acdc")  # fmt: skip
    if method == "paper" and not edges:
        raise InputError("--method paper is the authors' edge pruning: it needs --edges",
                         code="E340",
                         hint="add --edges, or use --method prune for nodes")  # fmt: skip
    run = run_discover(
        model=model, set_name=task, threshold=0.8 if threshold is None else threshold,
        prompts=prompts, seed=seed, device=device, edges=edges, edge_method=method,
        filter_correct=not no_filter, output=output, name=name,
    )  # fmt: skip
    return run.written.text, summary(run)
