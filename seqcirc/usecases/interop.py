"""What `seqcirc export`, `seqcirc import` and `seqcirc draw` run: a circuit section of a
.circ file to the EAP-IG/MIB graph JSON or a diagram, and a graph JSON to a .circ file
that `seqcirc check` and `seqcirc test` take as written. No model is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.interop.graph import GraphShape, implied_edges, prune
from seqcirc.plan import CircuitPlan, Edge

FORMATS = ("mib",)
DRAW_FORMATS = ("svg", "png", "pdf")


@dataclass(frozen=True)
class Section:
    """One circuit section of a checked file, with what export and draw need."""

    plan: CircuitPlan
    shape: Any  # models.shapes.ModelShape | None
    scores: dict[Edge, float]  # from `# score X` comments


def pick_section(path: str, circuit: str | None, model: str | None) -> Section:
    """The file's section named `circuit` (on `model`), or its only one (E615)."""
    from seqcirc.checks import check_file
    from seqcirc.interop.circ_text import comment_scores
    from seqcirc.language import ast
    from seqcirc.plan.compile import compile_module

    module = check_file(path)
    plans = {(p.name, p.model.name): p for p in compile_module(module).circuits}
    own = [c for c in module.own if (c.name, c.model.ref.name) in plans]
    found = [
        c
        for c in own
        if (circuit is None or c.name == circuit) and (model is None or c.model.ref.name == model)
    ]
    if len(found) != 1:
        listed = ", ".join(f"{c.name} on {c.model.ref.name}" for c in own) or "none"
        raise InputError(
            f"{path}: {'no' if not found else len(found)} circuit sections match"
            + (f" `{circuit}`" if circuit else ""),
            code="E615",
            hint=f"choose one with --circuit NAME (and --model MODEL); sections: {listed}",
        )
    c = found[0]
    section = next(
        s
        for s in module.program.of_type(ast.CircuitDef)
        if s.name.name == c.name and s.span == c.span
    )
    plan = plans[(c.name, c.model.ref.name)]
    return Section(plan, c.model.shape, comment_scores(module.program, section))


def graph_shape(shape: Any, model: str) -> GraphShape:
    if shape is None:
        raise InputError(
            f"the shape of `{model}` is not known offline",
            code="E615",
            hint="the graph JSON lists every edge of the model: name a model seqcirc knows, "
            'or a local folder with a config.json ("./my-model")',
        )
    return GraphShape.of(shape)


def kept_edges(plan: CircuitPlan, shape: GraphShape) -> list[Edge]:
    """An edge circuit's edges; a node circuit's implied ones (interop.graph)."""
    return list(plan.edges) if plan.ablation.is_edge else implied_edges(plan.nodes, shape)


@dataclass(frozen=True)
class Exported:
    data: dict[str, Any]
    summary: str


def export_circuit(
    path: str,
    *,
    fmt: str = "mib",
    circuit: str | None = None,
    model: str | None = None,
    scores: str | None = None,
) -> Exported:
    """The section as a graph JSON; scores from `scores` (a graph or attribution JSON)
    or else from the section's `# score` comments (0.0 where none)."""
    from seqcirc.interop.mib import read_graph, to_mib
    from seqcirc.interop.select import check_shape

    if fmt not in FORMATS:
        raise InputError(
            f"unknown --format `{fmt}`",
            code="E615",
            hint=f"formats: {', '.join(FORMATS)} (the EAP-IG/MIB graph JSON)",
        )
    sec = pick_section(path, circuit, model)
    shape = graph_shape(sec.shape, sec.plan.model.name)
    kept = kept_edges(sec.plan, shape)
    edge_scores, node_scores = sec.scores, None
    if scores is not None:
        given = read_graph(scores)
        check_shape(given, shape, sec.plan.model.name)
        edge_scores, node_scores = given.scores, given.node_scores or None
    data = to_mib(shape, kept, edge_scores, node_scores)
    n_all = len(data["edges"])
    what = "edge" if sec.plan.ablation.is_edge else "node"
    summary = (
        f"{sec.plan.name} on {sec.plan.model.name} ({what} circuit): {len(kept)} of "
        f"{n_all} edges in the graph"
    )
    dangling = len(kept) - len(prune(kept))
    if dangling:
        summary += (
            f"; {dangling} of them lie on no path from the input to the logits "
            "(EAP-IG's evaluate_graph prunes them)"
        )
    return Exported(data, summary)


def write_json(data: dict[str, Any], output: str) -> Path:
    from seqcirc.report.files import write_text

    return write_text(output, json.dumps(data), "graph JSON")


@dataclass(frozen=True)
class Drawn:
    data: bytes
    graph: Any  # the networkx MultiDiGraph drawn (report.circuit_graph.build_graph)
    summary: str


def draw_circuit(
    path: str, output: str, *, circuit: str | None = None, model: str | None = None
) -> Drawn:
    """The section's diagram in the format `output`'s suffix names (svg, png, pdf)."""
    from seqcirc.report.circuit_graph import build_graph, render

    fmt = Path(output).suffix.lower().lstrip(".")
    if fmt not in DRAW_FORMATS:
        raise InputError(
            f"-o {output}: cannot tell the drawing's format from its suffix",
            code="E615",
            hint="end the file name in .svg, .png or .pdf",
        )
    sec = pick_section(path, circuit, model)
    plan = sec.plan
    edges = plan.edges if plan.ablation.is_edge else plan.highlighted_edges
    specs = [(e.sender, e.receiver, e.input) for e in edges]
    scores: dict[tuple[str, str, str], float] = {
        (e.sender, e.receiver, e.input): v for e, v in sec.scores.items()
    }
    graph = build_graph(
        [str(n) for n in plan.nodes],
        specs,
        groups={g: [str(n) for n in nodes] for g, nodes in plan.groups},
        scores=scores or None,
        highlighted=not plan.ablation.is_edge,
    )
    kind = "edges kept" if plan.ablation.is_edge else "highlighted edges (a node circuit)"
    title = (
        f"circuit {plan.name} on {plan.model.name}: {len(plan.nodes)} nodes, {len(specs)} {kind}"
    )
    return Drawn(render(graph, title, fmt), graph, title)


def write_bytes(data: bytes, output: str, what: str) -> Path:
    from seqcirc.report.files import write_bytes as write

    return write(output, data, what)
