"""Measures built from many circuit runs: single-component ablation, minimality and
completeness (IOI, Wang et al. 2022; docs/language.md). F(X) = E m(X), the mean
per-prompt metric; every relative figure divides by F(M), the full model's.

Node measures batch all the circuits they need into one run_circuits call (one batched
forward over R x n rows), so a measure costs about R forward passes' worth of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from seqcirc.engine.edges import edge_mask, run_edges
from seqcirc.engine.runner import (
    EvalState,
    empty_metric,
    node_mask,
    run_circuits,
)
from seqcirc.errors import EvaluationError
from seqcirc.plan import Edge, Node


def f_model(state: EvalState) -> float:
    """F(M); relative measures are undefined when it is 0 (e.g. kl)."""
    value = float(np.mean(state.m_model))
    if value == 0.0:
        raise EvaluationError(
            f"F(M) = E {state.metric} of the full model is 0: relative measures are undefined",
            code="E312",
            hint="use logit_diff or prob for minimality and completeness",
        )
    return value


def _scores(state: EvalState, masks: list[NDArray[np.bool_]]) -> NDArray[np.float64]:
    """F of each masked circuit, in one batched pass."""
    if not masks:
        return np.empty(0)
    return run_circuits(state, np.stack(masks)).mean(axis=1)


def faithfulness_of_masks(
    state: EvalState, masks: NDArray[np.bool_], variant: str = "performance_ratio"
) -> NDArray[np.float64]:
    """Faithfulness [R] of R node circuits given as keep-masks [R, n_nodes] (mask order of
    seqcirc.stats.baseline), in one batched pass: the random-circuit baseline's values."""
    f = run_circuits(state, masks).mean(axis=1)
    if variant == "performance_ratio":
        return f / f_model(state)
    if variant == "normalized_faithfulness":
        f_empty = float(np.mean(empty_metric(state, "node")))
        den = float(np.mean(state.m_model)) - f_empty
        if den == 0.0:
            raise EvaluationError("E m(M) = E m(empty): normalized faithfulness is undefined",
                                  code="E312")  # fmt: skip
        return (f - f_empty) / den
    raise EvaluationError(f"unknown faithfulness variant {variant!r}", code="E311")


@dataclass(frozen=True)
class ComponentEffect:
    """F(M without v) for one component v (the paper's per-head table)."""

    node: str
    f_without: float  # F(M \ {v})
    relative: float  # F(M \ {v}) / F(M): the paper's "% remaining" / 100


def single_component_ablation(
    state: EvalState, nodes: Iterable[Node] | None = None
) -> list[ComponentEffect]:
    """Ablate each component alone from the full model."""
    chosen = tuple(nodes) if nodes is not None else state.nodes
    full = np.ones(state.weights.n_nodes, dtype=bool)
    masks = [full & ~node_mask(state, [v]) for v in chosen]
    fm = f_model(state)
    return [
        ComponentEffect(str(v), float(f), float(f) / fm)
        for v, f in zip(chosen, _scores(state, masks), strict=True)
    ]


@dataclass(frozen=True)
class MinimalityEntry:
    """How much v matters: (F(C \\ K) - F(C \\ (K + v))) / F(M), for K = {} and K = v's
    role group without v. `score` is the larger of the two magnitudes."""

    node: str
    drop_alone: float
    group: str | None
    drop_in_group: float | None
    score: float


def minimality(
    state: EvalState,
    circuit: Sequence[Node],
    groups: Mapping[str, Sequence[Node]] | None = None,
) -> list[MinimalityEntry]:
    groups = groups or {}
    group_of = {v: name for name, members in groups.items() for v in members}
    c = node_mask(state, circuit)
    masks = [c]
    keys: list[tuple[str, Node | None, str | None]] = [("C", None, None)]
    for v in circuit:
        masks.append(c & ~node_mask(state, [v]))
        keys.append(("C-v", v, None))
        g = group_of.get(v)
        if g is not None:
            rest = [u for u in groups[g] if u != v and u in circuit]
            masks.append(c & ~node_mask(state, rest))
            keys.append(("C-K", v, g))
            masks.append(c & ~node_mask(state, [*rest, v]))
            keys.append(("C-K-v", v, g))
    f = dict(zip(keys, _scores(state, masks), strict=True))
    fm, fc = f_model(state), f[("C", None, None)]
    out = []
    for v in circuit:
        alone = (fc - f[("C-v", v, None)]) / fm
        g = group_of.get(v)
        in_group = None if g is None else (f[("C-K", v, g)] - f[("C-K-v", v, g)]) / fm
        score = max(abs(alone), abs(in_group) if in_group is not None else 0.0)
        out.append(MinimalityEntry(str(v), float(alone), g, in_group, float(score)))
    return out


def edge_minimality(state: EvalState, circuit: Sequence[Edge]) -> list[tuple[str, float]]:
    """(F(C) - F(C without e)) / F(M) for each edge e: one patched pass per edge."""
    keep = edge_mask(state, circuit)
    fm, fc = f_model(state), float(run_edges(state, keep).mean())
    out = []
    for e in circuit:
        k = keep.copy()
        k[state.graph.index[e]] = False
        out.append((str(e), (fc - float(run_edges(state, k).mean())) / fm))
    return out


@dataclass(frozen=True)
class CompletenessPoint:
    """One knocked-out subset K of C: the y = x plot's point (F(M \\ K), F(C \\ K))."""

    knocked_out: tuple[str, ...]
    source: str  # "random" | "group:<name>" | "greedy"
    f_model_minus: float  # F(M \ K)
    f_circuit_minus: float  # F(C \ K)
    incompleteness: float  # |F(C \ K) - F(M \ K)| / |F(M)|


@dataclass(frozen=True)
class Completeness:
    points: tuple[CompletenessPoint, ...]
    worst: CompletenessPoint
    mean: float  # mean incompleteness over all points
    f_model: float
    seed: int


def completeness(
    state: EvalState,
    circuit: Sequence[Node],
    groups: Mapping[str, Sequence[Node]] | None = None,
    *,
    n_random: int = 20,
    greedy_steps: int = 3,
    seed: int = 0,
) -> Completeness:
    """Incompleteness |F(C\\K) - F(M\\K)| / |F(M)| for random K (each node of C in with
    probability 1/2), for each role group, and along a greedy search for the worst K."""
    if not circuit:
        raise EvaluationError("completeness needs a non-empty circuit", code="E306")
    fm = f_model(state)
    c = node_mask(state, circuit)
    full = np.ones_like(c)
    rng = np.random.default_rng(seed)
    subsets: list[tuple[tuple[Node, ...], str]] = []
    for _ in range(n_random):
        pick = rng.random(len(circuit)) < 0.5
        subsets.append((tuple(v for v, p in zip(circuit, pick, strict=True) if p), "random"))
    for name, members in (groups or {}).items():
        subsets.append((tuple(v for v in members if v in circuit), f"group:{name}"))

    def points_for(ks: list[tuple[tuple[Node, ...], str]]) -> list[CompletenessPoint]:
        masks = []
        for k, _ in ks:
            km = node_mask(state, k)
            masks.extend([full & ~km, c & ~km])
        f = _scores(state, masks).reshape(-1, 2)
        return [
            CompletenessPoint(
                tuple(str(v) for v in k), src, float(fmk), float(fck), abs(fck - fmk) / abs(fm)
            )
            for (k, src), (fmk, fck) in zip(ks, f, strict=True)
        ]

    points = points_for(subsets)
    chosen: tuple[Node, ...] = ()
    for _ in range(min(greedy_steps, len(circuit))):
        candidates = [((*chosen, v), "greedy") for v in circuit if v not in chosen]
        step = points_for(candidates)
        best = max(range(len(step)), key=lambda i: step[i].incompleteness)
        chosen = candidates[best][0]
        points.append(step[best])
    worst = max(points, key=lambda p: p.incompleteness)
    mean = float(np.mean([p.incompleteness for p in points]))
    return Completeness(tuple(points), worst, mean, fm, seed)
