"""Runs circuits against a prepared state (seqcirc.engine.prepare): the evaluator's
forward-pass engine.

The state holds the forward passes every circuit on one (model, task, ablation set-up,
metric) shares: the clean run (reference logits at the answer position, clean
activations) and the corrupted run (the ablation values). After that a node circuit costs
one forward pass with logits at the answer position only, R node circuits batched passes
of R x n rows in which what the circuits share is computed once (chunks of a block of
circuits by a block of prompts, within seqcirc.engine.memory's budget), an edge circuit
one patched pass (seqcirc.engine.edges), and the empty circuit no pass at all.

Named positions (AblationSpec.positions): circuit nodes stay clean only at the named
positions of each prompt; at every other position they are ablated like the complement.
The full model M is always the clean run. Patching the circuit into corrupted input
(direction patch_circuit) runs the corrupted prompt and gives circuit nodes their clean
activations; the embeddings stay corrupted, so patching in every node need not give M.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.engine.answers import Reads
from seqcirc.engine.generation import Decoding, generate_scores
from seqcirc.engine.metric import per_prompt
from seqcirc.errors import EvaluationError
from seqcirc.forward.common import ModelSizes, Replacement, all_nodes, node_index
from seqcirc.forward.gpt2_edges import EdgeGraph
from seqcirc.forward.nodes import Groups, Sharing
from seqcirc.forward.select import (
    Model,
    Senders,
    edge_graph,
    edge_values,
    empty_logits,
    engine_of,
    forward_nodes,
)
from seqcirc.plan import AblationSpec, Node
from seqcirc.progress import advance
from seqcirc.tasks.types import TokenizedTask


@dataclass(eq=False)
class EvalState:
    """Everything circuits on one (model, task, ablation set-up, metric) share.

    Memory stays bounded: per-prompt activations are kept only where the set-up needs
    them (resample values, patching the circuit in); means are running sums.
    """

    weights: Model  # the engine's model (seqcirc.forward.select)
    task: TokenizedTask
    ablation: AblationSpec
    metric: str
    clean: Tensor  # [n, S]
    corrupted: Tensor  # [n, S]
    correct: Tensor  # [n]
    incorrect: Tensor  # [n]
    answer_pos: Tensor  # [n]
    keep_pos: Tensor | None  # [n, S]: where circuit nodes stay clean (named positions)
    values: Replacement  # what a replaced node gets (mean / resample / zero / clean)
    embed_values: Tensor  # what an ablated embedding sender gets (edge circuits)
    clean_embed_answer: Tensor  # [n, d] clean embeddings at the answer position
    clean_logits: Tensor | None  # [n, vocab] at the answer position; kept for kl only
    empty_logits: Tensor | None  # patching: the corrupted run is the empty circuit
    m_model: NDArray[np.float64]  # per-prompt metric of the full model M
    batch_rows: int  # rows (prompt x circuit) per chunk of a circuit pass (seqcirc.engine.memory)
    capture_rows: int  # rows per chunk of the clean and corrupted sweeps
    edge_rows: int  # prompts per chunk of an edge pass
    bridge_max_abs_diff: float
    output_change: NDArray[np.float64]  # [n_nodes] max |replacement - actual| of each output
    embed_change: float  # the same for the embedding sender
    timings: dict[str, float] = field(default_factory=dict)
    # seconds of each part of prepare (corrupted_run, clean_run, bridge_check, other), for
    # the benchmark's breakdown; not in results
    prepare_parts: dict[str, float] = field(default_factory=dict)
    forward_rows: int = 0  # prompt-rows pushed through forward passes (cost accounting)
    means_cache: str = ""  # the on-disk means cache: "hit", "stored", "recomputed: why"
    generation: Decoding | None = None  # a generating metric (seqcirc.engine.generation)
    # several positions read per prompt (answers of several tokens: seqcirc.engine.answers);
    # None: one, at answer_pos, scoring correct / incorrect
    reads: Reads | None = None
    _graph: EdgeGraph | None = None
    _edge_values: Senders | None = None
    _m_empty: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return int(self.clean.shape[0])

    @property
    def nodes(self) -> tuple[Node, ...]:
        return all_nodes(self.weights)

    @property
    def engine(self) -> str:
        """Which engine runs this state: "fast" or "generic" (seqcirc.forward.select)."""
        return engine_of(self.weights)

    @property
    def graph(self) -> EdgeGraph:
        """Every edge of the model (E302 / E307 / E308 where it has no edge forward)."""
        if self._graph is None:
            self._graph = edge_graph(self.weights)
        return self._graph

    @property
    def edge_values(self) -> Senders:
        if self._edge_values is None:
            self._edge_values = edge_values(self.weights, self.embed_values, self.values)
        return self._edge_values


def row_chunks(n_rows: int, size: int) -> Iterable[slice]:
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def clean_logits_at(state: EvalState, index: Tensor | None) -> Tensor | None:
    """The full model's answer logits (kept for kl only; other metrics do not need them)."""
    if state.clean_logits is None:
        return None
    return state.clean_logits if index is None else state.clean_logits[index]


def at_answer(t: Tensor, answer_pos: Tensor, per_prompt_dims: int) -> Tensor:
    if t.dim() == per_prompt_dims:
        return t[torch.arange(t.shape[0], device=t.device), answer_pos]
    return t[answer_pos]


def _empty_reads(state: EvalState, gran: str, reads: Reads) -> Tensor:
    """The empty circuit's logits at every read: each prompt as one row per read."""
    assert reads.clean_embed is not None
    rows, pos = reads.expand(torch.arange(state.n_prompts, device=state.weights.device))
    embed = None if gran == "node" else state.embed_values
    if embed is not None and embed.dim() == 3:
        embed = embed[rows]
    clean_embed = reads.clean_embed.reshape(rows.shape[0], -1)
    return empty_logits(state.weights, state.clean[rows], pos, state.values.rows(rows), embed,
                        clean_embed)  # fmt: skip


# ---------------------------------------------------------------- node circuits


def node_mask(state: EvalState, nodes: Iterable[Node]) -> NDArray[np.bool_]:
    """Keep-mask [n_nodes] of a node circuit (mask order of seqcirc.stats.baseline)."""
    mask = np.zeros(state.weights.n_nodes, dtype=bool)
    for node in nodes:
        mask[node_index(state.weights, node)] = True
    return mask


def check_live(state: EvalState, keep: NDArray[np.bool_]) -> None:
    """Liveness: the plan must intervene on something whose output really changes."""
    patch = state.ablation.patches_circuit
    touched = keep if patch else ~keep
    if state.ablation.positions is not None and not patch:
        touched = np.ones_like(keep)  # circuit nodes are ablated off the named positions
    if not touched.any():
        raise EvaluationError(
            "the circuit is empty: nothing is patched in, nothing to measure"
            if patch
            else "the circuit is the whole model: no intervention, nothing to measure",
            code="E305",
            hint="patch in some head or MLP" if patch else "a circuit must leave some node out",
        )
    if not (state.output_change[touched] > 0).any():
        raise EvaluationError(
            "every intervention of this plan leaves its target unchanged (replacement values "
            "equal the actual activations), so any faithfulness would be a meaningless 100%",
            code="E305",
            hint="check the corrupted prompts: they must differ from the clean ones",
        )


def run_circuits(state: EvalState, masks: NDArray[np.bool_] | Tensor) -> NDArray[np.float64]:
    """Per-prompt metric [R, n] of R node circuits given as keep-masks [R, n_nodes].

    The R x n rows (circuit, prompt) go through batched forward passes in chunks of a
    block of circuits by a block of prompts. Within a chunk, what circuits share is
    computed once (seqcirc.forward.nodes.Sharing): circuits that agree on every node
    before a layer have the same residual stream up to it. The circuits are sorted by
    their masks, layer by layer, so that chunks keep such circuits together.
    """
    w = state.weights
    keep = np.asarray(masks, dtype=bool)
    if keep.ndim != 2 or keep.shape[1] != w.n_nodes:
        raise EvaluationError(
            f"masks must be [R, {w.n_nodes}], got {tuple(keep.shape)}", code="E306"
        )
    n, r_count = state.n_prompts, keep.shape[0]
    stages = stage_columns(w)
    order = np.lexsort(keep[:, stages[-1][::-1]].T)  # layer-major, first layer first
    out = np.empty((r_count, n))
    with torch.inference_mode():
        for circuits, prompt_blocks in circuit_chunks(r_count, n, state.batch_rows):
            idx = order[circuits]
            labels = [torch.as_tensor(_labels(keep[idx][:, cols])) for cols in stages]
            groups = [Groups.of(lab).to(w.device) for lab in labels]
            for prompts in prompt_blocks:
                out[idx, prompts] = _run_chunk(state, keep[idx], prompts, groups)
                # circuits scored, a chunk's share: the enclosing phase counts circuits
                advance(len(idx) * (prompts.stop - prompts.start) / n, "circuits")
    steps = 1 if state.generation is None else state.generation.max_new_tokens
    state.forward_rows += r_count * n * steps * (1 if state.reads is None else state.reads.k)
    return out


def circuit_chunks(r_count: int, n: int, rows: int) -> Iterable[tuple[slice, list[slice]]]:
    """Chunks of at most `rows` rows: blocks of as many circuits as fit (they share work),
    balanced, each with the blocks of as many prompts as then fit."""
    if r_count == 0:
        return
    per = -(-r_count // -(-r_count // rows))
    prompts = list(row_chunks(n, max(1, min(n, rows // per))))
    for c in range(0, r_count, per):
        yield slice(c, min(c + per, r_count)), prompts


def stage_columns(w: ModelSizes) -> list[list[int]]:
    """The mask columns each stage of the forward depends on (seqcirc.forward.nodes.Sharing):
    none before layer 0's heads, then each layer's heads and its MLP added in turn."""
    cols: list[int] = []
    out = [cols]
    for layer in range(w.n_layers):
        cols = cols + list(range(layer * w.n_heads, (layer + 1) * w.n_heads))
        out.append(cols)
        cols = [*cols, w.n_layers * w.n_heads + layer]
        out.append(cols)
    return out


def _labels(masks: NDArray[np.bool_]) -> NDArray[np.int64]:
    """One integer per distinct row of masks [R, k]."""
    if masks.shape[1] == 0:
        return np.zeros(masks.shape[0], dtype=np.int64)
    return np.unique(masks, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _run_chunk(
    state: EvalState, keep: NDArray[np.bool_], prompts: slice, groups: list[Groups]
) -> NDArray[np.float64]:
    """Per-prompt metric [c, p] of c circuits (their groups at each stage) on p prompts;
    row i * p + j is circuit i on prompt j."""
    w = state.weights
    c = keep.shape[0]
    prompt = torch.arange(prompts.start, prompts.stop, device=w.device)
    p = prompt.shape[0]
    rows = prompt.repeat(c)
    kept = torch.as_tensor(keep, device=w.device).repeat_interleave(p, 0)[:, None, :]
    if state.keep_pos is not None:
        kept = kept & state.keep_pos[rows][:, :, None]
    patch = state.ablation.patches_circuit
    if state.generation is not None:  # greedy decoding: the circuit's 0/1 per prompt
        keep_rows = torch.as_tensor(keep, device=w.device).repeat_interleave(p, 0)
        m = generate_scores(
            w, state.generation, state.clean[rows], rows, state.capture_rows,
            keep=keep_rows, keep_pos=state.keep_pos, values=state.values,
        )  # fmt: skip
        return m.reshape(c, p)
    tokens = state.corrupted if patch else state.clean
    reads, pos, prompt_rows = state.reads, state.answer_pos[rows], rows
    stages = tuple(g.times(p) for g in groups)
    if reads is not None:  # each row as one row per read (i * K + k)
        prompt_rows, pos = reads.expand(rows)
        kept = kept.repeat_interleave(reads.k, 0)
        stages = tuple(g.times(reads.k) for g in stages)
    cols = answer_columns(state, rows)
    run = forward_nodes(
        w, tokens[prompt_rows], pos,
        replace=kept if patch else ~kept, values=state.values, share=Sharing(prompt_rows, stages),
        columns=None if cols is None else cols[0],
    )  # fmt: skip
    assert run.logits is not None
    m = score_rows(state, run.logits, rows, cols)
    return m.reshape(c, p)


Columns = tuple[Tensor, Tensor, Tensor]  # answer_columns: tokens, correct and incorrect in them


def answer_columns(state: EvalState, rows: Tensor) -> Columns | None:
    """logit_diff at one position reads two logits a row: the tokens it needs [k] and each
    row's correct and incorrect token as an index into them, so that a pass unembeds k
    tokens, not the whole vocabulary (each logit the same number). None: the metric reads
    every logit (or several positions)."""
    if state.metric != "logit_diff" or state.reads is not None:
        return None
    return columns_of(state.correct[rows], state.incorrect[rows])


def columns_of(correct: Tensor, incorrect: Tensor) -> Columns:
    """The tokens [k] of rows' correct and incorrect answers, and each as an index into them."""
    cols, inv = torch.unique(torch.cat([correct, incorrect]), return_inverse=True)
    return cols, inv[: correct.shape[0]], inv[correct.shape[0] :]


def score_rows(
    state: EvalState, logits: Tensor, rows: Tensor, columns: Columns | None = None
) -> NDArray[np.float64]:
    """The metric of rows whose prompts are `rows`, from their logits (one per read);
    `columns`: answer_columns, when the logits are of those tokens only."""
    if columns is not None:
        return per_prompt(state.metric, logits, columns[1], columns[2],
                          clean_logits_at(state, rows))  # fmt: skip
    if state.reads is None:
        return per_prompt(
            state.metric, logits, state.correct[rows], state.incorrect[rows],
            clean_logits_at(state, rows),
        )  # fmt: skip
    reads = state.reads
    logits = logits.reshape(rows.shape[0], reads.k, -1)
    return per_prompt(state.metric, logits, reads.tokens[rows], state.incorrect[rows], None,
                      reads.count[rows])  # fmt: skip


def empty_metric(state: EvalState, granularity: str | None = None) -> NDArray[np.float64]:
    """m(empty) per prompt: everything ablated; computed without a forward pass.

    Node circuits keep the clean embeddings (they are not a node); edge circuits ablate
    the embedding sender too. Patching into corrupted input: empty = the corrupted run.
    """
    gran = granularity or state.ablation.granularity
    if gran in state._m_empty:
        return state._m_empty[gran]
    w, pos = state.weights, state.answer_pos
    prompts = torch.arange(state.n_prompts, device=w.device)
    cols = None
    if state.generation is not None:  # every node replaced while decoding
        with torch.inference_mode():
            state._m_empty[gran] = _generated_empty(state)
        return state._m_empty[gran]
    with torch.inference_mode():
        if state.ablation.patches_circuit:
            assert state.empty_logits is not None
            logits = state.empty_logits
        elif state.reads is None:
            embed = None if gran == "node" else state.embed_values
            cols = answer_columns(state, prompts)
            tokens = None if cols is None else cols[0]
            logits = empty_logits(w, state.clean, pos, state.values, embed,
                                  state.clean_embed_answer, tokens)  # fmt: skip
        else:
            logits = _empty_reads(state, gran, state.reads)
        m = score_rows(state, logits, prompts, cols)
    state._m_empty[gran] = m
    return m


def _generated_empty(state: EvalState) -> NDArray[np.float64]:
    assert state.generation is not None
    n, w = state.n_prompts, state.weights
    prompts = torch.arange(n, device=w.device)
    none = torch.zeros(n, w.n_nodes, dtype=torch.bool, device=w.device)
    return generate_scores(
        w, state.generation, state.clean, prompts, state.capture_rows, keep=none,
        values=state.values,
    )  # fmt: skip
