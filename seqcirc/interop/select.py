"""A circuit chosen from a graph file: its `in_graph` edges, or the top N by score, each
pruned as EAP-IG prunes before it evaluates (interop.graph.prune). The file is checked
against the model the circuit is for first (E612-E614)."""

from __future__ import annotations

from dataclasses import dataclass

from seqcirc.errors import InputError
from seqcirc.interop.graph import GraphShape, all_edges, implied_edges, prune, touched_nodes
from seqcirc.interop.mib import GraphFile, edge_set, mib_edge_name
from seqcirc.plan import EMBED, Edge, Node


@dataclass(frozen=True)
class Selection:
    edges: tuple[Edge, ...]  # in EAP-IG's order
    how: str  # "in_graph" or "top N by |score|" / "top N by score"
    chosen: int  # edges chosen before pruning
    nodes: tuple[Node, ...]  # the heads and MLPs the edges touch, sorted
    node_circuit: bool  # the edges are exactly those of a node circuit on `nodes`

    @property
    def pruned(self) -> int:
        return self.chosen - len(self.edges)


def check_shape(graph: GraphFile, shape: GraphShape, model: str) -> None:
    """The file's cfg is the model's shape, and (without a cfg) every edge is the model's."""
    if graph.shape is not None and graph.shape != shape:
        theirs, ours = graph.shape.cfg(), shape.cfg()
        diff = ", ".join(f"{k} {theirs[k]} (model {ours[k]})" for k in ours if theirs[k] != ours[k])
        raise InputError(
            f"{graph.path}: cfg does not match `{model}`: {diff}",
            code="E613",
            hint="give the --model the graph was made on",
        )
    known = edge_set(shape)
    for edge in graph.scores:
        if edge not in known:
            raise InputError(
                f"{graph.path}: edge `{mib_edge_name(edge)}` does not exist in `{model}`",
                code="E612",
                hint=f"`{model}` has {shape.n_layers} layers of {shape.n_heads} heads; "
                "edges run forward through them",
            )


def select(graph: GraphFile, shape: GraphShape, *, top: int | None, signed: bool) -> Selection:
    """`top` None: the file's in_graph edges; else the `top` highest |score| (score, when
    `signed`), ties in the file's order, as EAP-IG's `apply_topn`. Then pruned."""
    if top is None:
        if graph.in_graph is None:
            raise InputError(
                f"{graph.path}: no edge says whether it is in the graph",
                code="E614",
                hint="choose the circuit by score: --top N",
            )
        chosen: set[Edge] = set(graph.in_graph)
        how = "in_graph"
    else:
        n = len(graph.scores)
        if not 1 <= top <= n:
            raise InputError(
                f"--top {top}: the file lists {n} edges",
                code="E614",
                hint=f"choose 1 .. {n} edges",
            )
        ranked = sorted(
            graph.scores, key=lambda e: -graph.scores[e] if signed else -abs(graph.scores[e])
        )
        chosen = set(ranked[:top])
        how = f"top {top} by {'score' if signed else '|score|'}"
    kept = prune(chosen)
    if not kept:
        raise InputError(
            f"{graph.path}: no edge is left ({how}, {len(chosen)} chosen, then pruned: no "
            "path from the input to the logits)",
            code="E614",
            hint="choose more edges (--top N) or check the file's in_graph flags",
        )
    order = [e for e in all_edges(shape) if e in kept]
    nodes = tuple(sorted(touched_nodes(order)))
    node_circuit = any(e.sender == EMBED for e in order) and set(
        implied_edges(nodes, shape)
    ) == set(order)
    return Selection(tuple(order), how, len(chosen), nodes, node_circuit)
