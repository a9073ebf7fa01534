"""An edge circuit from attribution scores: the top-n edges (or the EAP-IG library's greedy
selection from the logits up), pruned to the edges on a path from the embeddings to the
logits, with n the smallest a bisection finds whose circuit keeps more than `threshold`
of the full model's score, F(C) / F(M), measured by the evaluator (one edge pass per n
tried; the scores only order the edges).

Pruning follows the EAP-IG library's Graph.prune: a node stays while it has a kept
outgoing edge and a kept incoming edge (the embeddings need none), an edge while its
sender and its receiver's node stay (the logits always do); repeated until nothing changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from seqcirc.errors import EvaluationError, InputError

if TYPE_CHECKING:
    from seqcirc.engine.runner import EvalState
    from seqcirc.forward.gpt2_edges import EdgeGraph

SELECTIONS = ("topn", "greedy")
Selection = Literal["topn", "greedy"]


@dataclass(frozen=True)
class Probe:
    """One evaluator pass: the top `n` edges, `kept` after pruning, their F(C)/F(M)."""

    n: int
    kept: int
    score: float


@dataclass(frozen=True)
class EdgeSearch:
    keep: NDArray[np.bool_]  # [n_edges] the found circuit
    n: int  # edges taken from the ranking (before pruning)
    score: float  # F(C) / F(M)
    probes: tuple[Probe, ...]  # every pass, in order
    selection: str
    threshold: float

    @property
    def passes(self) -> int:
        return len(self.probes)


def receiver_nodes(graph: EdgeGraph) -> NDArray[np.int64]:
    """Each edge's receiver node as a sender column (-1: the logits), by name: every
    node but the logits is also a sender."""
    cols = graph.cols.numpy()
    column = {e.sender: int(c) for e, c in zip(graph.edges, cols, strict=True)}
    return np.array([column.get(e.receiver, -1) for e in graph.edges], dtype=np.int64)


def prune_dangling(graph: EdgeGraph, keep: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The edges of `keep` on paths from the embeddings to the logits (Graph.prune)."""
    cols = graph.cols.numpy()
    node_of = receiver_nodes(graph)  # each edge's receiver node (-1: logits)
    keep = keep.copy()
    while True:
        has_out = np.bincount(cols[keep], minlength=graph.n_senders) > 0
        has_in = np.zeros(graph.n_senders, dtype=bool)
        into = node_of[keep]
        has_in[into[into >= 0]] = True
        has_in[0] = True  # the embeddings
        alive = has_out & has_in
        new = keep & alive[cols] & ((node_of < 0) | alive[np.maximum(node_of, 0)])
        if (new == keep).all():
            return keep
        keep = new


def top_n(graph: EdgeGraph, scores: NDArray[np.float64], n: int) -> NDArray[np.bool_]:
    """The n edges of largest |score| (ties: graph order), pruned."""
    order = np.argsort(-np.abs(scores), kind="stable")
    keep = np.zeros(graph.n_edges, dtype=bool)
    keep[order[:n]] = True
    return prune_dangling(graph, keep)


def greedy(graph: EdgeGraph, scores: NDArray[np.float64], n: int) -> NDArray[np.bool_]:
    """The EAP-IG library's apply_greedy: from the logits up, repeatedly the edge of
    largest |score| into a node already reached; its sender's own inputs join the
    candidates when it is first reached. Then pruned."""
    cols = graph.cols.numpy()
    node_of = receiver_nodes(graph)
    into: dict[int, list[int]] = {}
    for e, node in enumerate(node_of):
        into.setdefault(int(node), []).append(e)
    heap = [(-abs(scores[e]), e) for e in into[-1]]
    heapq.heapify(heap)
    reached = np.zeros(graph.n_senders, dtype=bool)
    keep = np.zeros(graph.n_edges, dtype=bool)
    while heap and keep.sum() < n:
        _, e = heapq.heappop(heap)
        keep[e] = True
        s = int(cols[e])
        if s != 0 and not reached[s]:
            reached[s] = True
            for f in into.get(s, []):
                heapq.heappush(heap, (-abs(scores[f]), f))
    return prune_dangling(graph, keep)


SELECT: dict[str, Callable[[EdgeGraph, NDArray[np.float64], int], NDArray[np.bool_]]] = {
    "topn": top_n,
    "greedy": greedy,
}


def search_edges(
    state: EvalState,
    scores: NDArray[np.float64],
    threshold: float,
    *,
    selection: str = "topn",
    on_probe: Callable[[Probe], None] | None = None,
) -> EdgeSearch:
    """The smallest n (bisection) whose selected circuit keeps more than `threshold` of
    F(M); the empty circuit must not (E342), the whole model does by definition."""
    from seqcirc.engine.edges import run_edges
    from seqcirc.engine.runner import empty_metric

    if selection not in SELECT:
        raise InputError(f"unknown selection {selection!r}", code="E340", hint="use topn or greedy")
    graph = state.graph
    fm = float(state.m_model.mean())
    empty = float(empty_metric(state, "edge").mean()) / fm
    if empty > threshold:
        raise EvaluationError(
            f"the empty circuit keeps {empty:.1%} of the full model's score, more than the "
            f"threshold {threshold:g}: there is nothing to find",
            code="E342",
            hint="check the corrupted prompts, or raise --threshold",
        )
    select = SELECT[selection]
    probes: list[Probe] = []
    lo, hi = 0, graph.n_edges  # lo fails (empty), hi holds (the whole model)
    found = np.ones(graph.n_edges, dtype=bool), 1.0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        keep = select(graph, scores, mid)
        score = float(run_edges(state, keep).mean()) / fm if keep.any() else empty
        probe = Probe(mid, int(keep.sum()), score)
        probes.append(probe)
        if on_probe is not None:
            on_probe(probe)
        if score > threshold:
            hi, found = mid, (keep, score)
        else:
            lo = mid
    return EdgeSearch(found[0], hi, found[1], tuple(probes), selection, threshold)


__all__ = ["SELECTIONS", "EdgeSearch", "Probe", "greedy", "prune_dangling",
           "receiver_nodes", "search_edges", "top_n"]  # fmt: skip
