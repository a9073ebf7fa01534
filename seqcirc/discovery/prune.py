"""Circuit discovery by the paper's iterative pruning (Lan, Torr & Barez 2024, "Method").

Start from every head and MLP. Sweep layers last -> 0 (in each layer the MLP first, then
the heads), then 0 -> last (heads, then the MLP). A component is dropped when the circuit
without it still keeps MORE than `threshold` (default 0.8) of the FULL model's score:
F(C - v) / F(M) > threshold. The threshold is relative to the full model, never to the
previous step, so a run of small drops cannot add up below it. Sweeps alternate until a
whole sweep drops nothing (the next sweep would score exactly the same circuits).

Cost: every circuit scored is one batched pass over all prompts (runner.run_circuits,
chunked). Scores are memoised by mask, so a circuit the algorithm meets twice (the last
tests of one sweep are the first of the next) is scored once. `lookahead` > 1 scores the
next few candidates against the current circuit in one batched call; results after a
drop are discarded (they were scored against a circuit that no longer exists), so the
found circuit is the same, at the price of some discarded rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from seqcirc.errors import EvaluationError, InputError
from seqcirc.plan import AblationSpec, Edge, Node
from seqcirc.progress import phase
from seqcirc.tasks.types import TokenizedTask

if TYPE_CHECKING:  # the claims import the engine (torch); discovery loads it when it runs
    from seqcirc.claims.measures import ComponentEffect

DEFAULT_THRESHOLD = 0.8
LOOKAHEAD_ROWS = 256  # a GPU scores this many rows of speculative candidates per call
Direction = Literal["backward", "forward"]
ScoreFn = Callable[[NDArray[np.bool_]], NDArray[np.float64]]  # masks [R, n] -> F(C)/F(M) [R]
StepFn = Callable[["PruneStep"], None]


@dataclass(frozen=True)
class PruneStep:
    """One test: item `item` taken out of the current circuit."""

    sweep: int  # 0-based
    direction: Direction
    item: int  # index into the item list (mask position)
    score: float  # F(C - item) / F(M)
    removed: bool
    memoised: bool  # the score came from an earlier sweep's identical circuit


@dataclass(frozen=True)
class PruneOutcome:
    keep: NDArray[np.bool_]  # [n_items] the found circuit
    score: float  # F(found) / F(M)
    steps: tuple[PruneStep, ...]
    n_sweeps: int
    masks_needed: int  # distinct circuits the (sequential) algorithm scores
    masks_run: int  # circuits actually scored (lookahead adds discarded ones)


def node_sweeps(n_layers: int, n_heads: int) -> tuple[list[int], list[int]]:
    """Mask positions (heads layer-major, then MLPs) in the two sweep orders."""

    def head(layer: int, h: int) -> int:
        return layer * n_heads + h

    def mlp(layer: int) -> int:
        return n_layers * n_heads + layer

    backward: list[int] = []
    for layer in reversed(range(n_layers)):
        backward += [mlp(layer), *(head(layer, h) for h in range(n_heads))]
    forward: list[int] = []
    for layer in range(n_layers):
        forward += [*(head(layer, h) for h in range(n_heads)), mlp(layer)]
    return backward, forward


def _untested(
    keep: NDArray[np.bool_], order: Sequence[int], memo: dict[bytes, float], lookahead: int
) -> list[NDArray[np.bool_]]:
    """The next `lookahead` candidates (the current circuit minus one item, in sweep
    order) not scored yet, to score against the current circuit in one call."""
    batch: list[NDArray[np.bool_]] = []
    for i in order:
        if len(batch) == lookahead:
            break
        if not keep[i]:
            continue
        m = keep.copy()
        m[i] = False
        if m.tobytes() not in memo:
            batch.append(m)
    return batch


def prune(
    n_items: int,
    orders: tuple[Sequence[int], Sequence[int]],
    score: ScoreFn,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    start: NDArray[np.bool_] | None = None,
    start_score: float = 1.0,
    lookahead: int = 1,
    on_step: StepFn | None = None,
    label: str = "pruning",
) -> PruneOutcome:
    """Iterative pruning over abstract items (nodes or edges); `score` gives F(C)/F(M) of
    a batch of keep-masks. Sweeps alternate orders[0], orders[1], ... until one drops
    nothing; each is a progress phase ("{label} sweep 2 (forward)") counting candidates."""
    if lookahead < 1:
        raise InputError(f"lookahead must be >= 1, got {lookahead}", code="E340")
    keep = np.ones(n_items, dtype=bool) if start is None else start.copy()
    current = start_score
    memo: dict[bytes, float] = {}
    seen: set[bytes] = set()  # masks the sequential algorithm looks up
    steps: list[PruneStep] = []
    masks_run = 0
    sweep = 0
    while True:
        direction: Direction = "backward" if sweep % 2 == 0 else "forward"
        order = [i for i in orders[sweep % 2] if keep[i]]
        dropped = False
        pos = 0
        name = f"{label} sweep {sweep + 1} ({direction})"
        with phase(name, total=len(order), unit="candidates") as bar:
            while pos < len(order):
                batch = _untested(keep, order[pos:], memo, lookahead)
                if batch:
                    values = np.asarray(score(np.stack(batch)), dtype=np.float64)
                    masks_run += len(batch)
                    for m, v in zip(batch, values, strict=True):
                        memo[m.tobytes()] = float(v)
                fresh = {m.tobytes() for m in batch}
                # decide in order, until a drop changes the circuit or a score is missing
                while pos < len(order):
                    i = order[pos]
                    m = keep.copy()
                    m[i] = False
                    key = m.tobytes()
                    if key not in memo:
                        break
                    value = memo[key]
                    removed = value > threshold
                    step = PruneStep(sweep, direction, i, value, removed, key not in fresh)
                    seen.add(key)
                    steps.append(step)
                    if on_step is not None:
                        on_step(step)
                    bar.advance()
                    pos += 1
                    if removed:
                        keep, current, dropped = m, value, True
                        break
        sweep += 1
        if not dropped:
            break
    return PruneOutcome(keep, current, tuple(steps), sweep, len(seen), masks_run)


@dataclass(frozen=True)
class EdgeDiscovery:
    edges: tuple[Edge, ...]
    score: float  # F(edge circuit) / F(M)
    start_score: float  # every edge among the found nodes
    n_candidates: int
    outcome: PruneOutcome
    method: str = "prune"  # prune: one after another; paper: each alone (paper_edges)


@dataclass(frozen=True)
class Discovery:
    """What `discover` found, with everything its report and .circ file need."""

    nodes: tuple[Node, ...]
    threshold: float
    f_model: float  # F(M), mean metric of the full model
    score: float  # F(C) / F(M)
    n_prompts: int
    metric: str
    ablation: AblationSpec
    outcome: PruneOutcome
    node_names: tuple[str, ...]  # mask position -> "L.H" / "mlpL"
    single: tuple[ComponentEffect, ...]  # the paper's two per-component tables
    forward_rows: int  # prompt rows through forward passes, prepare included
    prepare_rows: int
    edges: EdgeDiscovery | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def heads(self) -> tuple[Node, ...]:
        return tuple(v for v in self.nodes if v.head is not None)

    @property
    def mlps(self) -> tuple[Node, ...]:
        return tuple(v for v in self.nodes if v.head is None)


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0 or not np.isfinite(threshold):
        raise InputError(
            f"threshold {threshold} is outside (0, 1)",
            code="E340",
            hint="the threshold is a share of the full model's score, e.g. 0.8 (the paper's)",
        )


def default_lookahead(device: str, n_prompts: int, batch_rows: int) -> int:
    """Speculative candidates per call: on a GPU as many as fit one chunk (spare rows are
    almost free there); on a CPU one, since every discarded row costs its full share."""
    if device.startswith("cpu"):
        return 1
    return max(1, batch_rows // max(1, n_prompts))


def _doing_the_task(fm: float, metric: str) -> float:
    if fm < 0:
        raise EvaluationError(
            f"the full model's mean {metric} is {fm:.4g} < 0: it does not do the task, so "
            "'keeps more than a share of its score' means nothing",
            code="E341",
            hint="use prompts the model gets right (the paper's `filter correct`)",
        )
    return fm


def _check_not_empty(outcome: PruneOutcome, threshold: float) -> None:
    if not outcome.keep.any():
        raise EvaluationError(
            f"the empty circuit keeps {outcome.score:.1%} of the full model's score (more "
            f"than the threshold {threshold:g}): every component was pruned",
            code="E342",
            hint="the task does not depend on the model's heads and MLPs under this "
            "ablation; check the corrupted prompts, or raise --threshold",
        )


def discover(
    bridge: object,
    task: TokenizedTask,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ablation: AblationSpec | None = None,
    metric: str = "logit_diff",
    lookahead: int | None = None,
    batch_rows: int | None = None,
    edges: bool = False,
    edge_method: str = "prune",
    on_step: StepFn | None = None,
    on_edge_step: StepFn | None = None,
    engine: str = "auto",
) -> Discovery:
    """Iterative node pruning on `task` (and edge pruning over the found nodes if asked:
    `edge_method` prune, iterative, or paper, the authors' single-edge tests,
    seqcirc.discovery.paper_edges); `engine`: auto, generic or fast (seqcirc.forward.select)."""
    from seqcirc.claims.measures import f_model, single_component_ablation
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import run_circuits

    _check_threshold(threshold)
    ablation = ablation or AblationSpec()
    if ablation.is_edge:
        raise InputError("discovery prunes nodes; give a node ablation set-up", code="E340")
    t0 = time.perf_counter()
    state = prepare(bridge, task, ablation, metric, batch_rows=batch_rows, engine=engine)  # type: ignore[arg-type]
    prepare_rows = state.forward_rows
    fm = _doing_the_task(f_model(state), metric)
    w = state.weights
    names = tuple(str(v) for v in state.nodes)
    order_of = {str(v): i for i, v in enumerate(state.nodes)}
    back, fwd = node_sweeps(w.n_layers, w.n_heads)
    assert sorted(back) == sorted(order_of.values())

    def score(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        return run_circuits(state, masks).mean(axis=1) / fm

    if lookahead is None:
        lookahead = default_lookahead(
            str(w.device), state.n_prompts, min(state.batch_rows, LOOKAHEAD_ROWS)
        )
    outcome = prune(
        w.n_nodes, (back, fwd), score, threshold=threshold, lookahead=lookahead, on_step=on_step
    )
    t_prune = time.perf_counter() - t0
    _check_not_empty(outcome, threshold)
    nodes = tuple(v for v, k in zip(state.nodes, outcome.keep, strict=True) if k)
    # The paper's per-component tables, in one batched call: M - v and C - v for v in C.
    single = tuple(single_component_ablation(state, nodes, circuit=outcome.keep))
    edge_result = None
    if edges and edge_method == "paper":
        from seqcirc.discovery.paper_edges import paper_edges

        edge_result = paper_edges(state, nodes, threshold=threshold, on_step=on_edge_step)
    elif edges:
        edge_result = prune_edges(state, nodes, threshold=threshold, on_step=on_edge_step)
    return Discovery(
        nodes=nodes, threshold=threshold, f_model=fm, score=outcome.score,
        n_prompts=state.n_prompts, metric=metric, ablation=ablation, outcome=outcome,
        node_names=names, single=single, forward_rows=state.forward_rows,
        prepare_rows=prepare_rows, edges=edge_result,
        timings={"prune_s": t_prune, "total_s": time.perf_counter() - t0},
    )  # fmt: skip


def candidate_edges(state: object, nodes: Sequence[Node]) -> list[Edge]:
    """Every edge of the model between found nodes, from the embeddings, to the logits."""
    from seqcirc.plan import EMBED, LOGITS

    names = {str(v) for v in nodes}
    graph = state.graph  # type: ignore[attr-defined]
    return [
        e
        for e in graph.edges
        if (e.sender in names or e.sender == EMBED)
        and (e.receiver in names or e.receiver == LOGITS)
    ]


def edge_sweeps(n_edges: int) -> tuple[list[int], list[int]]:
    """Candidates in the model's edge order (by receiver in computation order: each
    layer's q, k, v inputs, its MLP, then the logits; senders in residual order): the
    backward sweep from the logits down, then forward."""
    return list(reversed(range(n_edges))), list(range(n_edges))


def prune_edges(
    state: object,
    nodes: Sequence[Node],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    on_step: StepFn | None = None,
) -> EdgeDiscovery:
    """Iterative pruning of the edges among the found nodes (path patching, one patched
    pass per edge circuit), with the same full-model-relative threshold."""
    from seqcirc.claims.measures import f_model
    from seqcirc.engine.edges import edge_mask, run_edges

    fm = f_model(state)  # type: ignore[arg-type]
    cands = candidate_edges(state, nodes)  # in the graph's order, as their mask positions
    base = edge_mask(state, cands)  # type: ignore[arg-type]
    idx = np.flatnonzero(base)

    def score(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        out = []
        for m in masks:
            full_mask = np.zeros_like(base)
            full_mask[idx[m]] = True
            out.append(float(run_edges(state, full_mask).mean()) / fm)  # type: ignore[arg-type]
        return np.asarray(out)

    start_score = float(score(np.ones((1, len(cands)), dtype=bool))[0])
    outcome = prune(
        len(cands), edge_sweeps(len(cands)), score, threshold=threshold,
        start_score=start_score, on_step=on_step, label="edge pruning",
    )  # fmt: skip
    kept = tuple(e for e, k in zip(cands, outcome.keep, strict=True) if k)
    return EdgeDiscovery(kept, outcome.score, start_score, len(cands), outcome)
