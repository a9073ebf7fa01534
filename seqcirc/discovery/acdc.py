"""ACDC (Conmy et al. 2023, "Towards Automated Circuit Discovery"): start from every edge
and visit the receivers in reverse topological order (the logits, then per layer from
the last: the MLP, then each head's v, k and q inputs); for each edge into the receiver,
latest sender first, remove it when the circuit's loss rises by less than `threshold`:

    loss(C - e) - loss(C) < threshold  ->  C := C - e

The loss is the evaluator's mean KL divergence from the full model (`kl`) or the mean
logit difference negated (`logit_diff`), in the metric's own units (nats, logits), as
ACDC's thresholds are. A node none of whose outgoing edges is left carries nothing to the
logits, so the edges into it go without a pass (ACDC visits only nodes still connected).
One evaluator pass (seqcirc.engine.edges.run_edges) per edge tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from seqcirc.errors import EvaluationError, InputError

if TYPE_CHECKING:
    from seqcirc.engine.runner import EvalState

ACDC_METRICS = ("logit_diff", "kl")


@dataclass(frozen=True)
class AcdcStep:
    edge: int  # index into the graph's edges
    loss: float  # loss(C - e)
    delta: float  # loss(C - e) - loss(C)
    removed: bool


@dataclass(frozen=True)
class AcdcOutcome:
    keep: NDArray[np.bool_]  # [n_edges]
    loss: float  # loss of the found circuit
    steps: tuple[AcdcStep, ...]  # every edge tested, in order
    skipped: int  # edges into nodes left with no outgoing edge (removed without a pass)
    threshold: float
    metric: str

    @property
    def passes(self) -> int:
        return len(self.steps)


def check_acdc(threshold: float | None, metric: str) -> float:
    if metric not in ACDC_METRICS:
        raise InputError(
            f"ACDC tests edges by logit_diff or kl, not {metric}", code="E340",
            hint="--metric logit_diff or --metric kl",
        )  # fmt: skip
    if threshold is None:
        raise InputError(
            "ACDC needs --threshold: the smallest rise of the loss that keeps an edge",
            code="E340",
            hint="in the metric's units: e.g. --threshold 0.01 (nats of KL) or 0.05 "
            "(logits of logit difference); ACDC's own command requires it too",
        )
    if not np.isfinite(threshold) or threshold < 0:
        raise InputError(f"ACDC threshold {threshold} must be >= 0", code="E340")
    return threshold


def receiver_order(n_layers: int, n_heads: int) -> list[int]:
    """Receiver rows in reverse topological order (forward.gpt2.receiver_row's layout:
    per layer q of each head, k, v, then the MLP; the logits last)."""
    per = 3 * n_heads + 1
    order = [n_layers * per]  # the logits
    for layer in reversed(range(n_layers)):
        base = layer * per
        order.append(base + 3 * n_heads)  # the MLP
        for h in reversed(range(n_heads)):
            order += [base + 2 * n_heads + h, base + n_heads + h, base + h]  # v, k, q
    return order


def acdc(
    state: EvalState,
    threshold: float,
    *,
    on_step: Callable[[AcdcStep], None] | None = None,
) -> AcdcOutcome:
    """ACDC on `state`'s edge graph with its metric (logit_diff or kl)."""
    from seqcirc.discovery.edge_search import receiver_nodes
    from seqcirc.engine.edges import run_edges

    metric = state.metric
    threshold = check_acdc(threshold, metric)
    sign = -1.0 if metric == "logit_diff" else 1.0

    def loss(keep: NDArray[np.bool_]) -> float:
        return sign * float(run_edges(state, keep).mean())

    graph = state.graph
    rows, cols = graph.rows.numpy(), graph.cols.numpy()
    node_of = receiver_nodes(graph)
    w = state.weights
    keep = np.ones(graph.n_edges, dtype=bool)
    current = sign * float(state.m_model.mean()) if metric == "logit_diff" else 0.0
    steps: list[AcdcStep] = []
    skipped = 0
    for r in receiver_order(w.n_layers, w.n_heads):
        into = np.flatnonzero(rows == r)
        node = int(node_of[into[0]])
        if node >= 0 and not keep[cols == node].any():
            skipped += int(keep[into].sum())
            keep[into] = False
            continue
        for e in into[::-1]:  # latest sender first
            trial = keep.copy()
            trial[e] = False
            value = loss(trial)
            step = AcdcStep(int(e), value, value - current, value - current < threshold)
            steps.append(step)
            if step.removed:
                keep, current = trial, value
            if on_step is not None:
                on_step(step)
    if not keep.any():
        raise EvaluationError(
            f"ACDC removed every edge (threshold {threshold:g} of {metric})",
            code="E342",
            hint="lower --threshold",
        )
    return AcdcOutcome(keep, current, tuple(steps), skipped, threshold, metric)


__all__ = ["ACDC_METRICS", "AcdcOutcome", "AcdcStep", "acdc", "check_acdc", "receiver_order"]
