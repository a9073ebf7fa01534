"""Measures built from many circuit runs: single-component ablation, minimality and
completeness (IOI, Wang et al. 2022; docs/language.md). F(X) = E m(X), the mean
per-prompt metric; every relative figure divides by F(M), the full model's.

Node measures batch all the circuits they need into one run_circuits call (one batched
forward over R x n rows), so a measure costs about R forward passes' worth of work. The
completeness and minimality claims' handlers are here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from seqcirc.claims.context import ClaimContext, ClaimValue, param
from seqcirc.engine.edges import edge_mask, run_edges
from seqcirc.engine.runner import EvalState, node_mask, run_circuits
from seqcirc.errors import EvaluationError, SeqcircError
from seqcirc.plan import Claim, Edge, Node
from seqcirc.progress import phase

GREEDY_STEPS = 3  # the greedy search for the worst K adds up to this many nodes


def f_model(state: EvalState) -> float:
    """F(M); relative measures are undefined when it is 0 (e.g. kl)."""
    value = float(np.mean(state.m_model))
    if state.metric == "logprob":  # its 0 is certainty: dividing by F(M) < 0 flips signs
        raise EvaluationError(
            "measures relative to F(M) are undefined for logprob (its 0 is certainty, so "
            "F(M) < 0 and every ratio would turn around)",
            code="E312",
            hint="use logit_diff or accuracy for minimality, completeness and discovery",
        )
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


@dataclass(frozen=True)
class ComponentEffect:
    """One component v ablated alone: the paper's per-component tables, relative to F(M)."""

    node: str
    from_model: float  # F(M - v) / F(M): ablated alone from the full model
    from_circuit: float  # F(C - v) / F(M): taken out of the circuit C


def single_component_ablation(
    state: EvalState,
    nodes: Iterable[Node] | None = None,
    *,
    circuit: NDArray[np.bool_] | None = None,
) -> list[ComponentEffect]:
    """Take each component alone out of the full model and out of a circuit's keep-mask
    (default: the full model, where C - v is M - v), every circuit in one batched pass."""
    chosen = tuple(nodes) if nodes is not None else state.nodes
    fm = f_model(state)
    full = np.ones(state.weights.n_nodes, dtype=bool)
    masks = []
    for v in chosen:
        without_v = ~node_mask(state, [v])
        masks.append(full & without_v)
        if circuit is not None:
            masks.append(circuit & without_v)
    with phase("single-component ablations", total=len(masks), unit="circuits"):
        scores = _scores(state, masks)
    table = scores.reshape(len(chosen), 1 + (circuit is not None)) / fm
    return [
        ComponentEffect(str(v), float(row[0]), float(row[-1]))
        for v, row in zip(chosen, table, strict=True)
    ]


@dataclass(frozen=True)
class MinimalityEntry:
    """How much v matters: (F(C \\ K) - F(C \\ (K + v))) / F(M), for K = {} and K = v's
    role group without v. `score` is the larger of the two magnitudes (the IOI paper's
    form); `signed` the larger of the two drops with their sign, negative when taking v
    out helps in both cases."""

    node: str
    drop_alone: float
    group: str | None
    drop_in_group: float | None
    score: float
    signed: float = 0.0


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
    with phase("minimality", total=len(masks), unit="circuits"):
        f = dict(zip(keys, _scores(state, masks), strict=True))
    fm, fc = f_model(state), f[("C", None, None)]
    out = []
    for v in circuit:
        alone = (fc - f[("C-v", v, None)]) / fm
        g = group_of.get(v)
        in_group = None if g is None else (f[("C-K", v, g)] - f[("C-K-v", v, g)]) / fm
        score = max(abs(alone), abs(in_group) if in_group is not None else 0.0)
        signed = max(alone, in_group) if in_group is not None else alone
        out.append(MinimalityEntry(str(v), float(alone), g, in_group, float(score), float(signed)))
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

    steps = min(greedy_steps, len(circuit))
    total = 2 * (len(subsets) + sum(len(circuit) - i for i in range(steps)))
    with phase("completeness", total=total, unit="circuits"):
        points = points_for(subsets)
        chosen: tuple[Node, ...] = ()
        for _ in range(steps):
            candidates = [((*chosen, v), "greedy") for v in circuit if v not in chosen]
            step = points_for(candidates)
            best = max(range(len(step)), key=lambda i: step[i].incompleteness)
            chosen = candidates[best][0]
            points.append(step[best])
    worst = max(points, key=lambda p: p.incompleteness)
    mean = float(np.mean([p.incompleteness for p in points]))
    return Completeness(tuple(points), worst, mean, fm, seed)


def completeness_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """The handler of `expect completeness(...)`: the worst (or mean) incompleteness."""
    if ctx.circuit.ablation.is_edge:
        raise SeqcircError("completeness is defined for node circuits", code="E330")
    # `completeness(random=N, greedy, groups)` (docs/language.md): the K-sources named are
    # used; with none named, all three (20 random subsets, greedy, role groups).
    given = dict(claim.params)
    if not {"random", "greedy", "groups"} & set(given):
        given = {"random": 20, "greedy": True, "groups": True}
    comp = completeness(
        ctx.state, ctx.circuit.nodes,
        dict(ctx.circuit.groups) if given.get("groups") else {},
        n_random=int(given.get("random", 0)),
        greedy_steps=GREEDY_STEPS if given.get("greedy") else 0, seed=ctx.seed,
    )  # fmt: skip
    statistic = param(claim, "statistic", "worst")
    value = comp.worst.incompleteness if statistic == "worst" else comp.mean
    return ClaimValue(
        value,
        detail={
            "statistic": statistic, "worst": comp.worst.incompleteness, "mean": comp.mean,
            "worst_knocked_out": list(comp.worst.knocked_out), "seed": comp.seed,
            "points": [
                {"knocked_out": list(p.knocked_out), "source": p.source,
                 "f_model_minus": p.f_model_minus, "f_circuit_minus": p.f_circuit_minus,
                 "incompleteness": p.incompleteness}
                for p in comp.points
            ],
        },
    )  # fmt: skip


def minimality_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """The handler of `expect minimality`: the weakest component's score (every component
    must matter at least this much). `minimality(signed)` keeps the sign: a component whose
    removal helps the circuit scores below 0 and fails any threshold >= 0. The detail's
    per-node table carries both forms whichever is claimed."""
    signed = bool(param(claim, "signed", False))
    form = "signed" if signed else "absolute"
    if ctx.circuit.ablation.is_edge:
        per_edge = edge_minimality(ctx.state, ctx.circuit.edges)
        scores = {name: v if signed else abs(v) for name, v in per_edge}
        return ClaimValue(min(scores.values()), detail={"per_edge": dict(per_edge), "form": form})
    entries = minimality(ctx.state, ctx.circuit.nodes, dict(ctx.circuit.groups))
    return ClaimValue(
        min(e.signed if signed else e.score for e in entries),
        detail={
            "form": form,
            "per_node": {
                e.node: {"drop_alone": e.drop_alone, "group": e.group,
                         "drop_in_group": e.drop_in_group, "score": e.score,
                         "signed": e.signed}
                for e in entries
            },
        },
    )  # fmt: skip
