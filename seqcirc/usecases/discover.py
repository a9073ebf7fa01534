"""What `seqcirc discover` runs: load the model, build the task exactly as the written
file will state it, prune, scan roles, write the `.circ` file (the CLI only parses
options and prints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.discovery.circ_file import Written, render_circ, task_spec_of, task_text
from seqcirc.discovery.prune import DEFAULT_THRESHOLD, Discovery
from seqcirc.errors import InputError
from seqcirc.report.files import write_text
from seqcirc.usecases.limits import check_option_sizes


def check_prompts(prompts: int, seed: int, code: str = "E340") -> None:
    """--prompts 1..LIMITS and --seed 0..LIMITS, before anything heavy is imported."""
    if prompts < 1:
        raise InputError(f"--prompts must be >= 1, got {prompts}", code=code)
    check_option_sizes(code, prompts=(prompts, "prompts"), seed=(seed, "seed"))


def model_and_task(model: str, set_name: str, *, name: str, prompts: int, seed: int,
                   filter_correct: bool, device: str, code: str = "E340"
                   ) -> tuple[str, Any, Any]:  # fmt: skip
    """The task definition the written file will state, the loaded model, and the task's
    prompts for it, built exactly as that file will build them; `code`: of a bad size."""
    from seqcirc.models.load import load_model
    from seqcirc.tasks.for_model import task_for_model

    check_prompts(prompts, seed, code)
    task_def = task_text(name, set_name, prompts=prompts, seed=seed, filter_correct=filter_correct)
    spec = task_spec_of(task_def, model)  # also checks the set name and the model's shape
    loaded = load_model(model, device=device)
    task, _report = task_for_model(
        spec, loaded, seed=seed,
        none_kept=InputError(
            f"task {spec.name}: the filter kept no prompts", code="T406",
            hint="the model gets none right with p(correct) > 2 p(incorrect)",
        ),
    )  # fmt: skip
    return task_def, loaded, task


@dataclass(frozen=True)
class DiscoverRun:
    discovery: Discovery
    written: Written
    path: Path | None
    task: Any


def run_discover(
    *,
    model: str,
    set_name: str,
    threshold: float = DEFAULT_THRESHOLD,
    prompts: int = 1536,
    seed: int = 0,
    device: str = "auto",
    edges: bool = False,
    edge_method: str = "prune",
    filter_correct: bool = True,
    output: str | None = None,
    name: str | None = None,
    command: str | None = None,
    n_boot: int = 10_000,
) -> DiscoverRun:
    from seqcirc.discovery.prune import discover
    from seqcirc.plan.compile import compile_text
    from seqcirc.roles.scan import scan_roles
    from seqcirc.usecases.session import Options, Session

    name = name or set_name
    task_def, loaded, task = model_and_task(
        model, set_name, name=name, prompts=prompts, seed=seed,
        filter_correct=filter_correct, device=device,
    )  # fmt: skip
    found = discover(loaded.bridge, task, threshold=threshold, edges=edges,
                     edge_method=edge_method)  # fmt: skip
    table = scan_roles(loaded.bridge, loaded.tokenizer, set_name=set_name, seed=seed)
    table.meta["model"] = model

    # the written file is measured the way `seqcirc test` measures it
    session = Session(Options(device=device, n_boot=n_boot))
    base = Path(output).resolve().parent if output else Path.cwd()

    def evaluate(text: str) -> Any:
        return session.evaluate_plan(compile_text(text, output or "<discover>"), base)

    cmd = command or (
        f"seqcirc discover --model {model} --task {set_name} --threshold {threshold:g} "
        f"--prompts {prompts} --seed {seed}"
        + (" --edges" if edges else "")
        + (" --method paper" if edge_method == "paper" else "")
    )
    written = render_circ(
        found, name=name, model=model, task_def=task_def, task=task, seed=seed,
        command=cmd, role_table=table, evaluate=evaluate,
    )  # fmt: skip
    path = None
    if output is not None:
        path = write_text(output, written.text, "circuit file")
    return DiscoverRun(found, written, path, task)


def summary(run: DiscoverRun) -> str:
    d = run.discovery
    o = d.outcome
    lines = [
        f"found {len(d.heads)} heads and {len(d.mlps)} MLPs: {' '.join(str(v) for v in d.nodes)}",
        f"F(C)/F(M) = {d.score:.4f} on {d.n_prompts} prompts (threshold {d.threshold:g} of the "
        f"full model's {d.metric}); {o.n_sweeps} sweeps, {o.masks_needed} circuits scored, "
        f"{d.forward_rows} prompt rows through forward passes",
    ]
    if d.edges is not None:
        how = "each removed alone (the authors')" if d.edges.method == "paper" else "iterative"
        lines.append(
            f"edges ({how}): kept {len(d.edges.edges)} of {d.edges.n_candidates}, "
            f"F/F(M) = {d.edges.score:.4f}"
        )
    for circuit, claims in run.written.claims.items():
        for v in claims.values():
            lines.append(f"  {circuit}: {v['text']}: {v['verdict']} ({v['value']:.4g})")
    if run.path is not None:
        lines.append(f"wrote {run.path}")
    return "\n".join(lines)
