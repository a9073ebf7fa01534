"""What `seqcirc import` runs: a graph JSON (EAP-IG/MIB, or seqcirc's attribution JSON)
checked against a model, a circuit chosen from it (in_graph, or the top N by score,
pruned as EAP-IG prunes), and the .circ file that states it, checked before it is
written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from seqcirc.errors import InputError
from seqcirc.interop.mib import GraphFile
from seqcirc.interop.select import Selection

ABLATIONS = ("resample", "mean", "mean pooled", "zero")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Imported:
    text: str
    selection: Selection
    n_edges: int  # edges the file lists
    summary: str


@dataclass(frozen=True)
class _Task:
    before: list[str]  # lines before the circuit: seed, import or task definition
    name: str
    taken: frozenset[str]  # circuit names an imported file already defines


def _task(task: str, folder: Path) -> _Task:
    """--task: an ordered set (`months`), a prompt file (`data/p.jsonl`), or a task of a
    .circ file (`f.circ:t`, imported with the file's seed: prompts are drawn with it)."""
    from seqcirc.checks import check_file
    from seqcirc.language import ast

    file, _, name = task.rpartition(":")
    if file.endswith(".circ") and _NAME.fullmatch(name):
        rel = Path(os.path.relpath(Path(file).absolute(), folder.absolute())).as_posix()
        module = check_file(file)
        seeds = module.program.of_type(ast.SeedStmt)
        seed = [f"seed {seeds[0].value}"] if seeds else []
        return _Task([*seed, f'import "{rel}"'], name, frozenset(c.name for c in module.own))
    if task.endswith((".jsonl", ".csv")):
        rel = Path(os.path.relpath(Path(task).absolute(), folder.absolute())).as_posix()
        return _Task([f'task prompts = file("{rel}")'], "prompts", frozenset())
    if _NAME.fullmatch(task):
        return _Task([f"task {task} = sequence({task})"], task, frozenset())
    raise InputError(
        f"--task `{task}` is not an ordered set, a prompt file or FILE.circ:TASK",
        code="E615",
        hint="e.g. --task months, --task data/prompts.jsonl, --task hypotheses/months.circ:months",
    )


def _default_name(graph: str, taken: frozenset[str]) -> str:
    """The graph file's stem as a circuit name (`ioi-eap-ig.json` -> ioi_eap_ig), with
    `_imported` after it when the task's file has a circuit of that name."""
    name = re.sub(r"\W", "_", Path(graph).stem) or "imported"
    name = f"c_{name}" if name[0].isdigit() else name
    return f"{name}_imported" if name in taken else name


def _header(path: str, graph: GraphFile, sel: Selection, command: str, as_edges: bool) -> list[str]:
    """The comment lines that say where the circuit came from and how it was chosen."""
    header = [
        f"# Imported by: {command}",
        f"# From {Path(path).name} ({sel.how}): {sel.chosen} of its {len(graph.scores)} edges; "
        f"pruning as EAP-IG's evaluate_graph does removed {sel.pruned}, leaving "
        f"{len(sel.edges)} edges over {len(sel.nodes)} heads and MLPs.",
    ]
    if sel.node_circuit and not as_edges:
        header.append("# These are exactly the edges of a node circuit on those nodes.")
    differ = _flags_differ(graph, sel)
    if differ:
        header.append(
            f"# The file's node in_graph flags disagree with its edges for {', '.join(differ)}; "
            "the edges decide (EAP-IG's prune recomputes the nodes from them too)."
        )
    return header


def _flags_differ(graph: GraphFile, sel: Selection) -> list[str]:
    """EAP-IG node names whose in_graph flag in the file differs from what the chosen
    edges make of it (a kept edge touches it; logits always)."""
    from seqcirc.interop.mib import to_mib

    if not graph.node_flags or sel.how != "in_graph" or graph.shape is None:
        return []
    derived = to_mib(graph.shape, list(sel.edges))["nodes"]
    return [n for n, flag in graph.node_flags.items() if derived[n]["in_graph"] != flag]


def _check_options(name: str, ablation: str, top: int | None, in_graph: bool) -> None:
    if top is not None and in_graph:
        raise InputError(
            "--top and --in-graph both given",
            code="E614",
            hint="choose the circuit one way: the file's in_graph, or --top N",
        )
    if not _NAME.fullmatch(name):
        raise InputError(
            f"--name `{name}` is not a circuit name",
            code="E615",
            hint="letters, digits and _, not starting with a digit",
        )
    if ablation not in ABLATIONS:
        raise InputError(
            f"--ablation `{ablation}` is not an ablation value",
            code="E615",
            hint="one of: " + ", ".join(ABLATIONS) + " (resample is EAP-IG's "
            "default patching with the paired corrupted prompt)",
        )


def import_graph(
    path: str,
    *,
    model: str,
    task: str,
    top: int | None = None,
    in_graph: bool = False,
    signed: bool = False,
    name: str | None = None,
    ablation: str = "resample",
    as_edges: bool = False,
    output: str | None = None,
    command: str = "seqcirc import",
) -> Imported:
    """The .circ text of the circuit the graph file holds (not written: write_text)."""
    from seqcirc.checks.components import resolve_model_option
    from seqcirc.discovery.circ_file import model_text
    from seqcirc.interop.circ_text import section
    from seqcirc.interop.mib import read_graph
    from seqcirc.interop.select import check_shape, select
    from seqcirc.language.fmt import format_text
    from seqcirc.plan.compile import compile_text
    from seqcirc.usecases.interop import graph_shape

    folder = Path(output).parent if output else Path()
    spec = _task(task, folder)
    before, task_name = spec.before, spec.name
    name = name or _default_name(path, spec.taken)
    _check_options(name, ablation, top, in_graph)
    resolved = resolve_model_option(model)
    shape = graph_shape(resolved.shape, model)
    graph = read_graph(path)
    check_shape(graph, shape, model)
    sel = select(graph, shape, top=top, signed=signed)
    header = _header(path, graph, sel, command, as_edges)
    body = section(
        sel,
        graph.scores if any(graph.scores.values()) else None,
        name=name,
        model=model_text(model),
        task=task_name,
        ablation=ablation,
        as_edges=as_edges,
    )
    text = format_text("\n".join([*header, "", *before, "", *body]) + "\n", "<import>")
    where = str(Path(output)) if output else "<import>"
    compile_text(text, where)  # the file states what it should, or the error says why
    summary = (
        f"{name} on {model}: {len(sel.edges)} edges ({sel.how}; {sel.pruned} pruned), "
        f"{len(sel.nodes)} heads and MLPs"
        + (", written as a node circuit" if sel.node_circuit and not as_edges else "")
    )
    return Imported(text, sel, len(graph.scores), summary)
