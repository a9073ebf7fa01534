"""What `seqcirc attribute MODEL --task T --method M` runs: the task built as `discover`
builds it, the evaluator's edge state (same graph, same ablation values), the scores
(seqcirc.discovery.attribute), then the JSON, the heatmap and a summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec

ABLATE_CHOICES = ("mean", "mean-pooled", "resample", "zero")


def edge_ablation(ablate: str, code: str = "E365") -> AblationSpec:
    """`--ablate` as the evaluator's edge set-up: mean (per position), mean-pooled,
    resample (the paired corrupted prompt: patching), zero."""
    if ablate not in ABLATE_CHOICES:
        raise InputError(
            f"--ablate {ablate!r} is not an ablation value", code=code,
            hint=f"use one of {', '.join(ABLATE_CHOICES)}",
        )  # fmt: skip
    value = "mean" if ablate == "mean-pooled" else ablate
    return AblationSpec(granularity="edge", value=value, per_position=ablate != "mean-pooled")  # type: ignore[arg-type]


@contextmanager
def counted_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (silent when stderr is not a terminal); yields the
    on_step(done, total) callback."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        disable=not console.is_terminal, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task(label, total=None)

        def on_step(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        yield on_step


@dataclass(frozen=True)
class AttributeRun:
    attribution: Any  # seqcirc.discovery.attribute.Attribution
    model: str
    task: Any
    ablation: AblationSpec
    json_path: Path | None
    heatmap: Path | None


def run_attribute(
    *,
    model: str,
    set_name: str,
    method: str,
    steps: int | None = None,
    nodes: bool = False,
    metric: str = "logit_diff",
    ablate: str = "mean",
    prompts: int = 1536,
    seed: int = 0,
    device: str = "auto",
    filter_correct: bool = True,
    batch_rows: int | None = None,
    json_path: str | None = None,
    heatmap: str | None = None,
) -> AttributeRun:
    from seqcirc.discovery.attribute import check_method
    from seqcirc.report.files import check_writable, write_text
    from seqcirc.usecases.discover import check_prompts

    check_method(method, steps, metric)  # every option before torch is imported
    check_prompts(prompts, seed, "E365")
    ablation = edge_ablation(ablate)
    for path, what in ((json_path, "attribution JSON"), (heatmap, "heatmap")):
        if path is not None:
            check_writable(path, what)
    from seqcirc.discovery.attribute import attribute_from_nothing
    from seqcirc.discovery.attribution_out import attribution_json, plot_attribution
    from seqcirc.usecases.discover import model_and_task

    _task_def, loaded, task = model_and_task(
        model, set_name, name=set_name, prompts=prompts, seed=seed,
        filter_correct=filter_correct, device=device, code="E365",
    )  # fmt: skip
    with counted_progress(f"{method} on {set_name}") as on_step:
        att, state = attribute_from_nothing(
            loaded.bridge, task, ablation, metric, method, steps=steps, nodes=nodes,
            batch_rows=batch_rows, on_step=on_step,
        )  # fmt: skip
    w = state.weights
    words = ablation.describe(task.name, task.n_prompts)
    meta = {"model": model, "task": {"set": set_name, "name": task.name,
            "prompts": prompts, "seed": seed, "filter_correct": filter_correct},
            "ablation": {"value": ablation.value, "per_position": ablation.per_position},
            "ablation_setup": words.setup, "values_from": words.values_from}  # fmt: skip
    out_json = out_png = None
    if json_path is not None:
        cfg = {"n_layers": w.n_layers, "n_heads": w.n_heads, "d_model": w.d_model}
        out_json = write_text(json_path, attribution_json(att, cfg=cfg, meta=meta),
                              "attribution JSON")  # fmt: skip
    if heatmap is not None:
        steps_note = f", {att.steps} steps" if att.steps else ""
        title = (f"{method}{steps_note} on {model}, task {set_name} ({att.n_prompts} prompts), "
                 f"{metric}; {words.setup}")  # fmt: skip
        out_png = plot_attribution(att, heatmap, n_receivers=state.graph.n_receivers,
                                   title=title)  # fmt: skip
    return AttributeRun(att, model, task, ablation, out_json, out_png)


def summary(run: AttributeRun, top: int = 15) -> str:
    from seqcirc.discovery.attribution_out import mib_edge, mib_node

    a = run.attribution
    steps = f", {a.steps} steps" if a.steps else ""
    lines = [
        f"{a.method}{steps}: {len(a.edges):,} edges of {run.model} scored on {a.n_prompts} "
        f"prompts ({a.metric}; {run.ablation.describe().setup})",
        f"full model {a.f_model:.4g}, every edge ablated {a.f_empty:.4g}; sum of scores "
        f"{float(np.sum(a.scores)):.4g}; {a.passes:g} passes (forward + backward) over the "
        f"prompts in {a.timings.get('attribute_s', 0.0):.1f} s",
        f"score = estimated change of the mean {a.metric} when the edge alone is ablated; "
        f"top {min(top, len(a.edges))} by |score|:",
    ]
    for i in np.argsort(-np.abs(a.scores), kind="stable")[:top]:
        lines.append(f"  {a.scores[i]:+10.4g}  {mib_edge(a.edges[i]):<24} {a.edges[i]}")
    if a.node_scores is not None:
        how = "all outgoing edges ablated" if a.method == "exact" else "sum of outgoing edges"
        lines.append(f"nodes ({how}), top by |score|:")
        for i in np.argsort(-np.abs(a.node_scores), kind="stable")[:top]:
            lines.append(f"  {a.node_scores[i]:+10.4g}  {mib_node(a.senders[i])}")
    if run.json_path is not None:
        lines.append(f"wrote {run.json_path}")
    if run.heatmap is not None:
        lines.append(f"heatmap: {run.heatmap}")
    return "\n".join(lines)


__all__ = ["ABLATE_CHOICES", "AttributeRun", "edge_ablation", "run_attribute", "summary"]
