"""The paper's shared-circuit analysis (`seqcirc compare`): how much circuits overlap
(pairwise intersections and IoU, the sub-circuit common to all) and the cross-task
performance matrix: each circuit evaluated on each task's data, as % of the full model's
score on that data (Lan, Torr & Barez 2024, "Circuits found")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.errors import InputError
from seqcirc.plan import CircuitPlan, Node


def iou(a: Sequence[Node], b: Sequence[Node]) -> float:
    """|A & B| / |A | B| (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0


@dataclass(frozen=True)
class Overlap:
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    intersection: NDArray[np.int64]  # [k, k] |A_i & A_j|
    iou: NDArray[np.float64]  # [k, k]
    shared: tuple[Node, ...]  # in every circuit


def overlap(names: Sequence[str], circuits: Sequence[Sequence[Node]]) -> Overlap:
    k = len(circuits)
    inter = np.zeros((k, k), dtype=np.int64)
    ious = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            inter[i, j] = len(set(circuits[i]) & set(circuits[j]))
            ious[i, j] = iou(circuits[i], circuits[j])
    shared = set(circuits[0]) if circuits else set()
    for c in circuits[1:]:
        shared &= set(c)
    return Overlap(
        tuple(names), tuple(len(set(c)) for c in circuits), inter, ious, tuple(sorted(shared))
    )


@dataclass(frozen=True)
class Comparison:
    overlap: Overlap
    rows: tuple[str, ...]  # circuits (and "shared" when there is one)
    columns: tuple[str, ...]  # tasks
    performance: NDArray[np.float64]  # [rows, columns]: F(C on T) / F(M on T)
    f_model: tuple[float, ...]  # per task
    n_prompts: tuple[int, ...]
    model: str
    metric: str

    def to_dict(self) -> dict[str, Any]:
        o = self.overlap
        return {
            "model": self.model,
            "metric": self.metric,
            "circuits": list(o.names),
            "sizes": list(o.sizes),
            "intersection": o.intersection.tolist(),
            "iou": o.iou.tolist(),
            "shared": [str(v) for v in o.shared],
            "rows": list(self.rows),
            "tasks": list(self.columns),
            "performance": self.performance.tolist(),
            "f_model": list(self.f_model),
            "n_prompts": list(self.n_prompts),
        }

    def table(self) -> str:
        """Both tables as Markdown (the matrix in % of the full model, as the paper)."""
        o = self.overlap
        lines = [
            f"Cross-task performance on {self.model} (% of the full model's {self.metric} "
            "on each task's data; row = circuit, column = data):",
            "",
            "| circuit | " + " | ".join(self.columns) + " |",
            "|---|" + "---:|" * len(self.columns),
        ]
        for name, row in zip(self.rows, self.performance, strict=True):
            lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
        lines += [
            "",
            "Overlap (|A & B| components, IoU in brackets):",
            "",
            "| circuit (size) | " + " | ".join(o.names) + " |",
            "|---|" + "---:|" * len(o.names),
        ]
        for i, name in enumerate(o.names):
            cells = [f"{o.intersection[i, j]} ({o.iou[i, j]:.2f})" for j in range(len(o.names))]
            lines.append(f"| {name} ({o.sizes[i]}) | " + " | ".join(cells) + " |")
        shared = " ".join(str(v) for v in o.shared) or "(none)"
        lines += ["", f"Shared by all {len(o.names)}: {shared}"]
        return "\n".join(lines) + "\n"


Column = tuple[CircuitPlan, Path, int]  # a task's owner circuit, its folder, the task seed


def compare(
    files: Sequence[str],
    *,
    model: str | None = None,
    on: str | None = None,
    renames: Sequence[str] = (),
    seed: int | None = None,
    prompts: int | None = None,
    device: str = "auto",
) -> Comparison:
    """Overlap and the cross-task matrix of the node circuits in `files`: with `on`,
    those stated on that model; `renames` ("[FILE:]OLD=NEW") where names collide."""
    from seqcirc.plan import Plan
    from seqcirc.usecases.compare_inputs import load_circuits, parse_rename
    from seqcirc.usecases.session import Options, Session, apply_options

    entries = load_circuits(files, on=on, renames=[parse_rename(r) for r in renames])
    models = {model or e.circuit.model.name for e in entries}
    if len(models) > 1:
        raise InputError(
            f"the circuits are on different models: {_by_model(entries)}",
            code="E351",
            hint="--on MODEL compares the circuits each file states on MODEL; --model MODEL "
            "evaluates every circuit on MODEL (it must have their heads and layers)",
        )
    options = Options(model=model, seed=seed, prompts=prompts, device=device)
    session = Session(options)
    circuits = [
        apply_options(Plan(source="", circuits=(e.circuit,)), options).circuits[0] for e in entries
    ]
    names = tuple(e.name for e in entries)
    ov = overlap(names, [c.nodes for c in circuits])
    rows = list(names)
    node_sets = [c.nodes for c in circuits]
    ablations = [c.ablation for c in circuits]
    if len(circuits) > 1 and ov.shared:
        rows.append("shared")
        node_sets.append(ov.shared)
        ablations.append(circuits[0].ablation)  # set algebra keeps the first operand's
    tasks = _task_columns(entries, circuits, seed)
    metrics = {c.task.metric for c, _, _ in tasks}
    if len(metrics) > 1:
        used = "; ".join(
            f"{m}: {', '.join(c.task.name for c, _, _ in tasks if c.task.metric == m)}"
            for m in sorted(metrics)
        )
        raise InputError(
            f"the tasks score with different metrics ({used})",
            code="E351",
            hint="compare circuits whose tasks use one metric (a cross-task share of the "
            "full model's score needs one unit)",
        )
    perf, fms, ns = _cross_task(session, tasks, node_sets, ablations)
    return Comparison(
        ov,
        tuple(rows),
        tuple(c.task.name for c, _, _ in tasks),
        perf,
        tuple(fms),
        tuple(ns),
        next(iter(models)),
        next(iter(metrics)),
    )


def _by_model(entries: Sequence[Any]) -> str:
    """ "gpt2-small (months, numerals), seqcirc-mini (months_mini)" """
    groups: dict[str, list[str]] = {}
    for e in entries:
        groups.setdefault(e.circuit.model.name, []).append(e.name)
    return ", ".join(f"{m} ({', '.join(names)})" for m, names in sorted(groups.items()))


def _task_columns(
    entries: Sequence[Any], circuits: Sequence[CircuitPlan], seed: int | None
) -> list[Column]:
    """One column per distinct task (a task is its spec and seed; circuits may share one)."""
    tasks: list[Column] = []
    for e, c in zip(entries, circuits, strict=True):
        task_seed = e.seed if seed is None else seed
        if all((t.task, s) != (c.task, task_seed) for t, _, s in tasks):
            tasks.append((c, e.folder, task_seed))
    return tasks


def _cross_task(
    session: Any, tasks: Sequence[Column], node_sets: Sequence[Any], ablations: Sequence[Any]
) -> tuple[NDArray[np.float64], list[float], list[int]]:
    """Every row's circuit on every column's task, as a share of the full model's score."""
    from seqcirc.claims.measures import f_model
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import node_mask, run_circuits
    from seqcirc.progress import phase

    perf = np.zeros((len(node_sets), len(tasks)))
    fms, ns = [], []
    for j, (owner, base, task_seed) in enumerate(tasks):
        loaded = session.model(owner, base)
        # one phase per column: every circuit scored on this task's data
        with phase(f"on task {owner.task.name}", total=len(node_sets), unit="circuits"):
            task = session.task(loaded, owner, base, task_seed)
            # each circuit keeps its own ablation set-up; the means come from this task's data
            by_ablation: dict[Any, list[int]] = {}
            for i, ablation in enumerate(ablations):
                by_ablation.setdefault(ablation, []).append(i)
            fm = 0.0
            for ablation, members in by_ablation.items():
                state = prepare(loaded.bridge, task, ablation, owner.task.metric)
                fm = f_model(state)
                masks = np.stack([node_mask(state, node_sets[i]) for i in members])
                perf[members, j] = run_circuits(state, masks).mean(axis=1) / fm
        fms.append(fm)
        ns.append(task.n_prompts)
    return perf, fms, ns


def plot_comparison(cmp: Comparison, path: str | Path) -> Path:
    """Two heatmaps side by side: IoU of the circuits, and the cross-task matrix (%)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    o = cmp.overlap
    k, t = len(o.names), len(cmp.columns)
    fig = Figure(figsize=(3.2 + 1.1 * (k + t), 1.8 + 0.6 * max(k, len(cmp.rows))))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [k, t]})
    im1 = ax1.imshow(o.iou, vmin=0, vmax=1, cmap="Blues")
    ax1.set_title("overlap (IoU)", fontsize=10)
    for i in range(k):
        for j in range(k):
            ax1.text(
                j,
                i,
                f"{o.iou[i, j]:.2f}\n({o.intersection[i, j]})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if o.iou[i, j] > 0.6 else "black",
            )
    ax1.set_xticks(range(k), o.names, rotation=30, ha="right", fontsize=8)
    ax1.set_yticks(
        range(k), [f"{n} ({s})" for n, s in zip(o.names, o.sizes, strict=True)], fontsize=8
    )
    fig.colorbar(im1, ax=ax1, fraction=0.046, pad=0.04)
    pct = 100 * cmp.performance
    span = max(100.0, float(np.abs(pct - 100).max()) + 100) if pct.size else 100.0
    im2 = ax2.imshow(pct, vmin=100 - span, vmax=100 + span, cmap="RdBu", aspect="auto")
    ax2.set_title(f"circuit on task (% of full model's {cmp.metric})", fontsize=10)
    for i in range(len(cmp.rows)):
        for j in range(t):
            ax2.text(j, i, f"{pct[i, j]:.1f}", ha="center", va="center", fontsize=9)
    ax2.set_xticks(range(t), cmp.columns, rotation=30, ha="right", fontsize=8)
    ax2.set_yticks(range(len(cmp.rows)), cmp.rows, fontsize=8)
    ax2.set_xlabel("data (task)", fontsize=8)
    ax2.set_ylabel("circuit", fontsize=8)
    fig.colorbar(im2, ax=ax2, fraction=0.046, pad=0.04)
    fig.suptitle(f"seqcirc compare on {cmp.model}", fontsize=11)
    fig.tight_layout()
    fig.text(
        0.01, 0.0, "Look for: left, dark cells off the diagonal (circuits that share "
        "components); right, rows near 100% across the columns (a circuit that does the other "
        "tasks too), and the shared row: how much of each task the common sub-circuit keeps.",
        ha="left", va="top", fontsize=8, wrap=True,
    )  # fmt: skip
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120, bbox_inches="tight")
    except OSError as err:
        raise InputError(f"cannot write {out}: {err.strerror or err}", code="E901") from err
    return out


def write_table(cmp: Comparison, path: str | Path) -> Path:
    """Both tables as Markdown (Comparison.table) at `path`."""
    from seqcirc.report.files import write_text

    return write_text(path, cmp.table(), "comparison")


def write_json(cmp: Comparison, path: str | Path) -> Path:
    """The numbers as JSON at `path` (`-`: stdout), atomically."""
    from seqcirc.report.files import write_text

    return write_text(path, json.dumps(cmp.to_dict(), indent=2) + "\n", "comparison JSON")
