"""Edge attribution: a score for every edge of the model's edge graph, estimating how much
the task metric changes when that edge alone is ablated (docs/attribution.md).

The edge graph and the ablation values are the evaluator's own (a prepared edge state,
seqcirc.engine.prepare): an ablated edge s -> r gives receiver r the sender's ablation
value v_s (mean over the corrupted prompts per position, the paired corrupted prompt's
activation, or zero) instead of its activation a_s. With m the mean per-prompt metric
and r_e the edge's removed weight (forward.gpt2_edges.forward_edges with a float matrix):

- `eap` (Syed et al. 2023): dm/dr_e at r = 0, i.e. the sum over positions of
  g_r . (v_s - a_s) averaged over prompts, g_r the gradient at r's input in the clean
  run: one forward and one backward for every edge at once.
- `eap-ig-inputs` (Hanna et al. 2024, the EAP-IG library's EAP-IG-inputs): the same with
  g_r averaged over `steps` runs whose input embeddings are interpolated from ablated to
  clean, alpha = k / steps for k = 0 .. steps - 1; (v_s - a_s) from the clean run.
- `eap-ig-activations` (the library's EAP-IG-activations): g_r averaged over runs that
  replace one block's output (the embeddings, the heads of one layer, one MLP) by the
  constant alpha a + (1 - alpha) v, alpha = k / steps for k = 1 .. steps, for every block:
  (2 L + 1) steps runs.
- `exact`: m with the edge ablated minus m, one evaluator pass per edge.

Sign: a negative score is an edge whose ablation lowers the metric (one the task needs).
Node scores are the sums over each sender's outgoing edges (for `exact`: the node's
outgoing edges all ablated at once, one pass per sender).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.errors import InputError
from seqcirc.language.vocab import LIMITS, METRICS
from seqcirc.plan import AblationSpec, Edge

if TYPE_CHECKING:  # torch is imported where scores are computed: checks stay light
    from torch import Tensor

    from seqcirc.engine.runner import EvalState
    from seqcirc.forward.common import NodeRun, Replacement
    from seqcirc.forward.edge_grads import Mix
    from seqcirc.tasks.types import TokenizedTask

METHODS = ("eap", "eap-ig-inputs", "eap-ig-activations", "exact")
IG_METHODS = ("eap-ig-inputs", "eap-ig-activations")
DEFAULT_STEPS = 5
GRAD_METRICS = ("logit_diff", "prob", "kl")  # accuracy has no gradient
# Bytes per chunk at least. On the GPT-2-small shape (1 CPU thread) EAP over 64 prompts
# took 4.75 bare forwards in chunks of 7 prompts, 2.77 in chunks of 16, 3.05 in 32.
MIN_BUDGET = 320 << 20
Progress = Callable[[int, int], None]  # (units done, units in all)


@dataclass(frozen=True)
class Attribution:
    """Scores of every edge (graph order) and, if asked, of every sender node."""

    method: str
    steps: int | None
    metric: str
    edges: tuple[Edge, ...]
    scores: NDArray[np.float64]  # [n_edges] estimated change of the mean metric
    senders: tuple[str, ...]  # embed, L.H, mlpL in residual order
    node_scores: NDArray[np.float64] | None  # [n_senders]
    n_prompts: int
    f_model: float  # mean metric of the full model
    f_empty: float  # every edge ablated
    forward_rows: int  # prompt rows through forward passes (prepare excluded)
    backward_rows: int  # prompt rows through backward passes
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passes(self) -> float:
        """Forward passes over the prompts plus backward ones (each counted once)."""
        return (self.forward_rows + self.backward_rows) / self.n_prompts


def check_method(method: str, steps: int | None, metric: str) -> int | None:
    """The steps a method takes (None: not an IG method); E365 for what cannot run."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}", code="E365",
                         hint=f"use one of {', '.join(GRAD_METRICS)}")  # fmt: skip
    if method not in METHODS:
        raise InputError(
            f"unknown attribution method {method!r}", code="E365",
            hint=f"use one of {', '.join(METHODS)}",
        )  # fmt: skip
    if method in IG_METHODS:
        steps = DEFAULT_STEPS if steps is None else steps
        if not 1 <= steps <= LIMITS["ig_steps"]:
            raise InputError(f"--steps must be 1..{LIMITS['ig_steps']:,}, got {steps}",
                             code="E365")  # fmt: skip
    elif steps is not None:
        raise InputError(
            f"--steps applies to the integrated-gradient methods, not {method}", code="E365",
            hint=f"use --method {' or '.join(IG_METHODS)}, or drop --steps",
        )  # fmt: skip
    if method != "exact" and metric not in GRAD_METRICS:
        raise InputError(
            f"metric {metric} has no gradient: {method} cannot attribute it", code="E365",
            hint=f"use one of {', '.join(GRAD_METRICS)}, or --method exact",
        )  # fmt: skip
    return steps


Readout = tuple[Callable[["Tensor"], "Tensor"], "Tensor | None"]  # metric, its columns


def metric_fn(state: EvalState, idx: Tensor) -> Readout:
    """The per-prompt task metric of rows `idx`, differentiable (seqcirc.engine.metric),
    and the logits it reads ([B, 2]: correct, incorrect; None: the whole vocabulary)."""
    clean = state.clean_logits[idx] if state.clean_logits is not None else None
    return readout(state.metric, state.correct[idx], state.incorrect[idx], clean)


def readout(metric: str, correct: Tensor, incorrect: Tensor, clean: Tensor | None) -> Readout:
    """metric_fn of the rows' answer tokens; for kl, `clean`: the full model's answer
    logits of the rows (None: the logits read, detached, i.e. measured at the clean run
    that reads them: EAP's own)."""
    import torch

    if metric == "logit_diff":
        pair = torch.stack([correct, incorrect], 1)
        return (lambda x: x[:, 0].double() - x[:, 1].double()), pair

    def value(logits: Tensor) -> Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        x = logits.double()
        if metric == "prob":
            return torch.softmax(x, -1)[rows, correct]
        log_p = torch.log_softmax(x.detach() if clean is None else clean.double(), -1)
        return (log_p.exp() * (log_p - torch.log_softmax(x, -1))).sum(-1)

    return value, None


def attribution_rows(state: EvalState) -> int:
    """Prompts per attribution chunk (rows_of on the state's model)."""
    return rows_of(state.weights, int(state.clean.shape[1]))


def rows_of(w: object, seq: int) -> int:
    """Prompts per attribution chunk: the edge pass's memory per row twice over (the
    backward keeps every layer's activations; the sender differences are as large as the
    edge pass's buffer), within the larger of the device's budget and MIN_BUDGET."""
    from seqcirc.engine.memory import ForwardShape, budget_bytes, edge_row_bytes, rows_for

    row = 2 * edge_row_bytes(ForwardShape.of(w, seq))
    return rows_for(max(budget_bytes(w.device), MIN_BUDGET), row)  # type: ignore[attr-defined]


def _mixes(method: str, n_layers: int, steps: int) -> list[Mix | None]:
    from seqcirc.forward.edge_grads import Mix

    if method == "eap":
        return [None]
    if method == "eap-ig-inputs":
        return [Mix("input", 0, k / steps) for k in range(steps)]
    blocks = [("input", 0)]
    for layer in range(n_layers):
        blocks += [("attn", layer), ("mlp", layer)]
    return [Mix(b, layer, k / steps) for b, layer in blocks for k in range(1, steps + 1)]  # type: ignore[arg-type]


def _fixed(readout: Readout, _own: Tensor | None) -> Readout:
    return readout


class _Scorer:
    """The gradient methods' sums [n_recv, n_senders] over prompts and runs, chunk by
    chunk; rows through forward and backward passes; the sender differences' buffer."""

    def __init__(self, w: Any, method: str, steps: int, n: int, rows: int, seq: int,
                 on_step: Progress | None) -> None:  # fmt: skip
        import torch

        from seqcirc.forward.edge_grads import edge_grad_fn
        from seqcirc.forward.gpt2 import Gpt2Weights
        from seqcirc.forward.select import edge_graph

        # E302 before any pass where the method has none (the generic engine: EAP alone)
        self.impl = edge_grad_fn(w, method)
        self.w = w  # Gpt2Weights, or (EAP) the generic engine's HookedModel
        self.method, self.on_step = method, on_step
        self.mixes = _mixes(method, self.w.n_layers, steps)
        graph = edge_graph(self.w)
        self.total = torch.zeros(graph.n_receivers, graph.n_senders, dtype=torch.float64,
                                 device=self.w.device)  # fmt: skip
        self.fwd = self.bwd = self.done = 0
        self.units = -(-n // rows) * len(self.mixes)
        # one buffer for every chunk's sender differences (fresh ones are page-faulted
        # anew); the generic engine's EAP has none
        fast = isinstance(w, Gpt2Weights)
        size = graph.n_senders * min(rows, n) * seq * self.w.d_model if fast else 0
        self.scratch = torch.empty(size, dtype=w.dtype, device=w.device)

    def _step(self, b: int) -> None:
        self.fwd, self.bwd, self.done = self.fwd + b, self.bwd + b, self.done + 1
        if self.on_step is not None:
            self.on_step(self.done, self.units)

    def chunk(self, tokens: Tensor, pos: Tensor, vals: object,
              readout_of: Callable[[Tensor | None], Readout]) -> NodeRun | None:  # fmt: skip
        """Rows `tokens`: their scores added to the total, their clean run returned (EAP:
        its own forward; IG: a captured run); `readout_of(the rows' clean answer logits;
        None for EAP: its forward's own)`: their metric."""
        from seqcirc.forward.edge_grads import sender_acts_of, sender_run

        b = int(tokens.shape[0])
        if self.method == "eap":
            metric, columns = readout_of(None)
            scores, run = self.impl.edge_grads(self.w, tokens, pos, vals, metric,
                                               columns=columns, scratch=self.scratch)  # fmt: skip
            self.total += scores
            self._step(b)
            return run
        ref = sender_run(self.w, tokens, pos)
        self.fwd += b
        metric, columns = readout_of(ref.logits)
        acc = None
        for mix in self.mixes:  # the runs share the differences: one contraction per chunk
            acc = self.impl.receiver_grads(self.w, tokens, pos, vals, metric, mix=mix,
                                           columns=columns, into=acc)  # fmt: skip
            self._step(b)
        assert acc is not None
        self.total += self.impl.contract(self.w, acc, vals, sender_acts_of(self.w, ref),
                                         tokens, pos, scratch=self.scratch)  # fmt: skip
        return ref

    def mean(self, n: int) -> Tensor:
        return self.total / (n * len(self.mixes))


def _gradient_scores(state: EvalState, method: str, steps: int, rows: int,
                     on_step: Progress | None) -> tuple[Tensor, int, int]:  # fmt: skip
    """Summed scores [n_recv, n_senders] over prompts and runs on a prepared state; rows
    through forward and backward passes."""
    import torch

    from seqcirc.engine.runner import row_chunks
    from seqcirc.forward.select import edge_values_rows

    w = state.weights
    n = state.n_prompts
    scorer = _Scorer(w, method, steps, n, rows, int(state.clean.shape[1]), on_step)
    values = state.edge_values
    for sl in row_chunks(n, rows):
        idx = torch.arange(sl.start, sl.stop, device=w.device)
        vals = edge_values_rows(values, idx) if state.ablation.per_prompt_values else values
        scorer.chunk(state.clean[idx], state.answer_pos[idx], vals,
                     functools.partial(_fixed, metric_fn(state, idx)))  # fmt: skip
    return scorer.mean(n), scorer.fwd, scorer.bwd


def _exact(state: EvalState, nodes: bool, on_step: Progress | None
           ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:  # fmt: skip
    """Each edge ablated alone (and, with `nodes`, each sender's outgoing edges at once):
    the evaluator's mean metric minus the full model's."""
    from seqcirc.engine.edges import run_edges

    graph = state.graph
    fm = float(state.m_model.mean())
    cols = graph.cols.numpy()
    n_units = graph.n_edges + (graph.n_senders if nodes else 0)
    out = np.empty(n_units)
    for i in range(n_units):
        keep = np.ones(graph.n_edges, dtype=bool)
        if i < graph.n_edges:
            keep[i] = False
        else:
            keep[cols == i - graph.n_edges] = False
        out[i] = float(run_edges(state, keep).mean()) - fm
        if on_step is not None:
            on_step(i + 1, n_units)
    return out[: graph.n_edges], (out[graph.n_edges :] if nodes else None)


def attribute(
    state: EvalState,
    method: str,
    *,
    steps: int | None = None,
    nodes: bool = False,
    batch_rows: int | None = None,
    on_step: Progress | None = None,
) -> Attribution:
    """Score every edge of `state`'s model (a prepared edge state: prepare(...,
    AblationSpec(granularity="edge", ...), metric)); see the module docstring."""
    steps = check_method(method, steps, state.metric)
    _check_rows(batch_rows)
    t0 = time.perf_counter()
    graph = state.graph
    rows0 = state.forward_rows
    node_scores = None
    if method == "exact":
        scores, node_scores = _exact(state, nodes, on_step)
        return _result(state, method, steps, scores, node_scores,
                       state.forward_rows - rows0, 0, t0)  # fmt: skip
    rows = batch_rows or attribution_rows(state)
    matrix, fwd, bwd = _gradient_scores(state, method, steps or 1, rows, on_step)
    scores = matrix[graph.rows, graph.cols].cpu().numpy()
    return _result(state, method, steps, scores, _node_sums(state, scores, nodes), fwd, bwd, t0)


def attribute_from_nothing(
    bridge: object,
    task: TokenizedTask,
    ablation: AblationSpec,
    metric: str,
    method: str,
    *,
    steps: int | None = None,
    nodes: bool = False,
    batch_rows: int | None = None,
    on_step: Progress | None = None,
) -> tuple[Attribution, EvalState]:
    """attribute() and its prepared state, the state's clean sweep being the attribution's
    own pass over the clean prompts (seqcirc.engine.prepare.prepare_values): EAP's
    forward, EAP-IG's clean run; one pass fewer. The same scores; `exact` prepares first."""
    from seqcirc.engine.prepare import prepare, prepare_values

    steps = check_method(method, steps, metric)
    _check_rows(batch_rows)
    if method == "exact":
        state = prepare(bridge, task, ablation, metric, batch_rows=batch_rows)  # type: ignore[arg-type]
        return attribute(state, method, nodes=nodes, on_step=on_step), state
    t0 = time.perf_counter()
    held: list[_Scorer] = []

    def clean_forward(w: object, values: Replacement, embed: Tensor, sl: slice) -> NodeRun:
        import torch

        from seqcirc.forward.gpt2_edges import EdgeValues
        from seqcirc.forward.select import edge_values

        if not held:
            held.append(_Scorer(w, method, steps or 1, task.n_prompts, rows, task.seq_len,
                                on_step))  # fmt: skip
        idx = _index(sl, embed)
        if idx is not None:  # per-prompt values (resample): the rows' own
            embed, values = embed[idx], values.rows(idx)
        vals = edge_values(w, embed, values)  # type: ignore[arg-type]
        assert isinstance(vals, EdgeValues)
        dev = embed.device
        tokens = torch.as_tensor(task.clean[sl], device=dev)
        pos = torch.as_tensor(task.answer_pos[sl], device=dev)
        correct = torch.as_tensor(task.correct[sl], device=dev)
        incorrect = torch.as_tensor(task.incorrect[sl], device=dev)
        run = held[0].chunk(tokens, pos, vals,
                            lambda own: readout(metric, correct, incorrect, own))  # fmt: skip
        assert run is not None  # the fast engine's passes give their clean run
        return run

    from seqcirc.forward.edge_grads import edge_grad_fn
    from seqcirc.forward.gpt2 import Gpt2Weights
    from seqcirc.forward.select import select

    w = select(bridge, edges=True)
    edge_grad_fn(w, method)  # E302 before the corrupted run where the method has no passes
    # the generic engine's EAP, or answers of several tokens (teacher-forced reads):
    # no clean run to lend
    if not isinstance(w, Gpt2Weights) or task.multi_token or task.meta.get("generation"):
        state = prepare(bridge, task, ablation, metric)  # type: ignore[arg-type]
        return attribute(state, method, nodes=nodes, batch_rows=batch_rows,
                         on_step=on_step), state  # fmt: skip
    rows = batch_rows or rows_of(w, task.seq_len)
    state = prepare_values(bridge, task, ablation, metric, clean_forward, rows=rows)  # type: ignore[arg-type]
    scorer = held[0]
    graph = state.graph
    scores = scorer.mean(state.n_prompts)[graph.rows, graph.cols].cpu().numpy()
    att = _result(state, method, steps, scores, _node_sums(state, scores, nodes), scorer.fwd,
                  scorer.bwd, t0)  # fmt: skip
    return att, state


def _index(sl: slice, like: Tensor) -> Tensor | None:
    """Rows `sl` of per-prompt values ([n, S, d] embeddings); None: shared values."""
    import torch

    return torch.arange(sl.start, sl.stop, device=like.device) if like.dim() == 3 else None


def _check_rows(batch_rows: int | None) -> None:
    if batch_rows is not None and batch_rows < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_rows}", code="E406")


def _node_sums(state: EvalState, scores: NDArray[np.float64], nodes: bool
               ) -> NDArray[np.float64] | None:  # fmt: skip
    if not nodes:
        return None
    graph = state.graph
    sums = np.bincount(graph.cols.numpy(), scores, minlength=graph.n_senders)
    return sums.astype(np.float64)


def _result(state: EvalState, method: str, steps: int | None, scores: NDArray[np.float64],
            node_scores: NDArray[np.float64] | None, fwd: int, bwd: int,
            t0: float) -> Attribution:  # fmt: skip
    from seqcirc.engine.runner import empty_metric
    from seqcirc.forward.gpt2_edges import sender_names

    return Attribution(
        method=method, steps=steps, metric=state.metric, edges=state.graph.edges, scores=scores,
        senders=sender_names(state.weights),  # type: ignore[arg-type]
        node_scores=node_scores, n_prompts=state.n_prompts,
        f_model=float(state.m_model.mean()),
        f_empty=float(empty_metric(state, "edge").mean()),
        forward_rows=fwd, backward_rows=bwd,
        timings={"attribute_s": time.perf_counter() - t0},
    )  # fmt: skip


__all__ = ["DEFAULT_STEPS", "IG_METHODS", "METHODS", "Attribution", "attribute",
           "attribute_from_nothing", "attribution_rows", "check_method", "metric_fn",
           "readout", "rows_of"]  # fmt: skip
