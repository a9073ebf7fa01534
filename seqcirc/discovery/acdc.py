"""ACDC (Conmy et al. 2023, "Towards Automated Circuit Discovery"): start from every edge
and visit the receivers in reverse topological order (the logits, then per layer from
the last: the MLP, then each head's v, k and q inputs); for each edge into the receiver,
latest sender first, remove it when the circuit's loss rises by less than `threshold`:

    loss(C - e) - loss(C) < threshold  ->  C := C - e

The loss is the evaluator's mean KL divergence from the full model (`kl`) or the mean
logit difference negated (`logit_diff`), in the metric's own units (nats, logits), as
ACDC's thresholds are. A node none of whose outgoing edges is left carries nothing to the
logits, so the edges into it go without a pass (ACDC visits only nodes still connected).
One evaluator pass per edge tested.

Batches (`lookahead` > 1): a receiver's next candidates are scored in one call of edge
circuits (seqcirc.engine.edges.run_edge_circuits), each against the circuit the sweep
would have reached if every earlier candidate of the batch were decided as predicted
(as the last decision was). The decisions are then taken in order, exactly as one at a
time; at the first one against its prediction the rest of the batch was scored against
a circuit that does not exist: it is dropped and the sweep goes on from there. So the
circuit is the sequential one, at the price of the dropped circuits (`circuits_run`).
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

    circuits_run: int  # edge circuits scored, dropped speculative ones included

    @property
    def passes(self) -> int:
        """Edges tested: the sequential algorithm's passes over the prompts."""
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
    """Receiver rows in reverse topological order (forward.gpt2_edges.receiver_row's layout:
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
    lookahead: int | None = None,
    on_step: Callable[[AcdcStep], None] | None = None,
) -> AcdcOutcome:
    """ACDC on `state`'s edge graph with its metric (logit_diff or kl); `lookahead`
    candidates scored per call (default: one on a CPU, a chunk's worth on a GPU)."""
    from seqcirc.discovery.edge_search import receiver_nodes
    from seqcirc.discovery.prune import default_lookahead

    metric = state.metric
    threshold = check_acdc(threshold, metric)
    if lookahead is None:
        lookahead = default_lookahead(str(state.weights.device), state.n_prompts,
                                      state.edge_rows)  # fmt: skip
    if lookahead < 1:
        raise InputError(f"lookahead must be at least 1, got {lookahead}", code="E340")
    graph = state.graph
    rows, cols = graph.rows.numpy(), graph.cols.numpy()
    node_of = receiver_nodes(graph)
    w = state.weights
    sweep = _Sweep(state, threshold, np.ones(graph.n_edges, dtype=bool), on_step)
    skipped = 0
    for r in receiver_order(w.n_layers, w.n_heads):
        into = np.flatnonzero(rows == r)
        node = int(node_of[into[0]])
        if node >= 0 and not sweep.keep[cols == node].any():
            skipped += int(sweep.keep[into].sum())
            sweep.keep[into] = False
            continue
        pending = list(into[::-1])  # latest sender first
        while pending:
            pending = pending[sweep.batch(pending[:lookahead]) :]
    if not sweep.keep.any():
        raise EvaluationError(
            f"ACDC removed every edge (threshold {threshold:g} of {metric})",
            code="E342",
            hint="lower --threshold",
        )
    return AcdcOutcome(sweep.keep, sweep.current, tuple(sweep.steps), skipped, threshold,
                       metric, sweep.circuits_run)  # fmt: skip


class _Sweep:
    """ACDC's state: the circuit, its loss, the steps taken; candidates scored in
    speculative batches."""

    def __init__(self, state: EvalState, threshold: float, keep: NDArray[np.bool_],
                 on_step: Callable[[AcdcStep], None] | None) -> None:  # fmt: skip
        self.state, self.threshold, self.keep, self.on_step = state, threshold, keep, on_step
        self.sign = -1.0 if state.metric == "logit_diff" else 1.0
        self.current = self.sign * float(state.m_model.mean()) if self.sign < 0 else 0.0
        self.steps: list[AcdcStep] = []
        self.circuits_run = 0
        self.predict = True  # the next decision as the last one: removed at first

    def batch(self, edges: list[int]) -> int:
        """Score `edges` (candidates in order) speculatively and take their decisions up
        to the first one against its prediction; how many were decided."""
        from seqcirc.engine.edges import run_edge_circuits

        trials, keep = [], self.keep.copy()
        for e in edges:  # trial j: the circuit if decisions 0..j-1 go as predicted
            trial = keep.copy()
            trial[e] = False
            trials.append(trial)
            if self.predict:
                keep = trial
        values = self.sign * run_edge_circuits(self.state, np.stack(trials)).mean(axis=1)
        self.circuits_run += len(edges)
        for j, (e, value) in enumerate(zip(edges, values, strict=True)):
            value = float(value)
            step = AcdcStep(int(e), value, value - self.current,
                            value - self.current < self.threshold)  # fmt: skip
            self.steps.append(step)
            if step.removed:
                self.keep, self.current = trials[j], value
            if self.on_step is not None:
                self.on_step(step)
            if step.removed != self.predict:
                self.predict = step.removed
                return j + 1
        return len(edges)


__all__ = ["ACDC_METRICS", "AcdcOutcome", "AcdcStep", "acdc", "check_acdc", "receiver_order"]
