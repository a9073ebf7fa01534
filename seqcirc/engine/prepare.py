"""prepare(): the forward passes every circuit on one (model, task, ablation set-up, metric)
shares, run once: the corrupted run gives the ablation values, the clean run the reference
logits at the answer position and how much each replacement changes its target.

Patching the circuit into corrupted input (direction patch_circuit) swaps the runs' roles:
circuit nodes get their clean activations, the rest runs on the corrupted prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.engine.answers import Forced, Reads, one_token_input, teacher_forced
from seqcirc.engine.generation import generate_scores, generation_of
from seqcirc.engine.means_cache import Means, MeansCache, array_digest, cache_key
from seqcirc.engine.memory import (
    ForwardShape,
    budget_bytes,
    edge_row_bytes,
    node_row_bytes,
    rows_for,
)
from seqcirc.engine.metric import check_metric, per_prompt
from seqcirc.engine.ragged import RaggedMeans, check_ragged, uses_slot_means
from seqcirc.engine.runner import EvalState, at_answer, columns_of, row_chunks
from seqcirc.errors import EvaluationError, InputError
from seqcirc.forward.common import NodeRun, Replacement
from seqcirc.forward.hooked import HookedModel
from seqcirc.forward.select import (
    DEFAULT_ENGINE,
    Model,
    check_edge_structure,
    edge_graph,
    engine_of,
    forward_nodes,
    select,
)
from seqcirc.plan import AblationSpec
from seqcirc.progress import advance, phase
from seqcirc.tasks.types import TokenizedTask

BRIDGE_CHECK_ROWS = 2  # prompts on which our forward is checked against the bridge's
# Largest difference from the bridge's logits, relative to their size + 1, per dtype:
# float32 as before; half precision 8 units of its last place (8 * torch.finfo(dtype).eps),
# since the two forwards round in another order (measured on seqcirc-mini, logits of
# 16-32: 0.125 in bfloat16, 0.012 in float16, about one step of the dtype there).
BRIDGE_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 6.25e-2, torch.float16: 7.8e-3}


def _tensor(a: object, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.long, device=device)


@dataclass(frozen=True, eq=False)
class _Prompts:
    """A task's token ids (teacher-forced: seqcirc.engine.answers) and answer positions on
    the model's device; `reads` where the metric reads several positions per prompt."""

    clean: Tensor  # [n, S]
    corrupted: Tensor  # [n, S]
    answer_pos: Tensor  # [n] the (first) position the metric reads
    correct: Tensor  # [n]
    incorrect: Tensor  # [n]
    last_pos: Tensor  # [n] the last position the metric reads
    valid: Tensor | None  # [n, S] False at padding (None: none)
    reads: Reads | None

    @classmethod
    def of(cls, forced: Forced, dev: torch.device) -> _Prompts:
        valid = None if forced.valid is None else torch.as_tensor(forced.valid, device=dev)
        return cls(
            _tensor(forced.clean, dev), _tensor(forced.corrupted, dev),
            _tensor(forced.read_pos[:, 0], dev), _tensor(forced.correct[:, 0], dev),
            _tensor(forced.incorrect, dev), _tensor(forced.last_pos, dev), valid,
            Reads.of(forced, dev),
        )  # fmt: skip


def _check_setup(
    task: TokenizedTask, ablation: AblationSpec, w: Model, seq: int, forced: bool
) -> None:
    ablation.check()
    if ablation.is_edge:
        edge_graph(w)  # E302 / E307 / E308 before any forward pass
    ablation.check_edges()
    if task.clean.shape != task.corrupted.shape:
        raise InputError(
            f"clean {task.clean.shape} and corrupted {task.corrupted.shape} prompts differ in "
            "shape; per-position means need aligned prompts",
            code="E321",
        )
    if seq > w.n_ctx:
        raise InputError(
            f"prompts of {seq} tokens (answer tokens appended) exceed the model's context"
            if seq > task.seq_len
            else f"prompts of {seq} tokens exceed the model's context",
            code="E321",
        )
    check_ragged(task, ablation)  # E323: per-position means of prompts of different lengths
    if forced and task.ragged:
        raise InputError(
            f"task {task.name}: answers of several tokens are teacher-forced after prompts "
            "of one length; these prompts have different lengths",
            code="E329",
            hint="split the prompts into one task per length, or score by generation: "
            "metric accuracy(generate, max_new_tokens=N)",
        )
    for name in ablation.positions or ():
        if name not in task.positions:
            raise InputError(
                f"position {name!r} is not defined by task {task.name!r}",
                code="E322",
                hint=f"known positions: {', '.join(sorted(task.positions))}",
            )


@dataclass(frozen=True)
class _Rows:
    """Rows per chunk of a circuit pass, of a captured sweep, of an edge pass."""

    circuit: int
    sweep: int
    edge: int

    @classmethod
    def of(cls, w: Model, task: TokenizedTask, seq: int, ablation: AblationSpec,
           batch_rows: int | None, memory_budget: int | None, reads: int = 1) -> _Rows:  # fmt: skip
        """`batch_rows` if given, else as many as `memory_budget` bytes hold (default
        seqcirc.engine.memory.budget_bytes of the model's device). With several reads per
        prompt a circuit's prompt is `reads` rows, so circuit and edge chunks take fewer."""
        budget = memory_budget if memory_budget is not None else budget_bytes(w.device)
        shape = ForwardShape.of(w, seq)
        own = ablation.per_prompt_values or uses_slot_means(task, ablation)
        return cls(
            max(1, (batch_rows or rows_for(budget, node_row_bytes(shape, per_prompt_values=own)))
                // reads),
            batch_rows or rows_for(budget, node_row_bytes(shape, capture=True)),
            max(1, (batch_rows or rows_for(budget * _edge_budget_share(w, memory_budget),
                                           edge_row_bytes(shape, per_prompt_values=own)))
                // reads),
        )  # fmt: skip


def _edge_budget_share(w: Model, memory_budget: int | None) -> int:
    """The generic engine's edge pass pays per-chunk costs (a hooked forward, the weights
    read again) that larger chunks spread: 4x the default CPU budget there (measured
    faster; the fast engine measured no gain). A GPU's budget, or one given, is kept."""
    cpu_default = memory_budget is None and w.device.type == "cpu"
    return 4 if cpu_default and engine_of(w) != "fast" else 1


class _Acts:
    """Activations of a sweep over all prompts: kept whole, or as per-position sums.
    Sums are accumulated in float32 whatever the model's dtype (a bfloat16 sum over
    thousands of prompts would lose the mean's low bits; a float16 one can overflow);
    the means are cast back to the model's dtype, the dtype the forward replaces in."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.parts: list[NodeRun] = []
        self.sums: NodeRun | None = None
        self.n = 0
        self.count: Tensor | None = None  # [S] rows with a real token (padding: answers)
        self.dtype = torch.float32

    def add(self, run: NodeRun, valid: Tensor | None = None) -> None:
        """One chunk's activations; `valid` [b, S]: where its tokens are real (padded
        positions are left out of the means)."""
        assert run.embed is not None
        self.n += run.embed.shape[0]
        self.dtype = run.embed.dtype
        if self.keep:
            self.parts.append(run)
            return
        if valid is not None:
            part = valid.sum(0, dtype=torch.float32)
            self.count = part if self.count is None else self.count + part

        def total(t: Tensor) -> Tensor:
            if valid is not None:
                t = t * valid.reshape(*valid.shape, *(1,) * (t.dim() - 2)).to(t.dtype)
            return t.sum(0, dtype=torch.float32)

        z, mlp = tuple(total(t) for t in run.z), tuple(total(t) for t in run.mlp)
        emb = total(run.embed)
        if self.sums is not None:
            assert self.sums.embed is not None
            z = tuple(a + b for a, b in zip(self.sums.z, z, strict=True))
            mlp = tuple(a + b for a, b in zip(self.sums.mlp, mlp, strict=True))
            emb = self.sums.embed + emb
        self.sums = NodeRun(None, emb, z, mlp, emb)

    def whole(self) -> tuple[Replacement, Tensor]:
        cat = torch.cat
        n_layers = len(self.parts[0].z)
        z = tuple(cat([p.z[i] for p in self.parts]) for i in range(n_layers))
        mlp = tuple(cat([p.mlp[i] for p in self.parts]) for i in range(n_layers))
        return Replacement(z, mlp), cat([p.embed for p in self.parts if p.embed is not None])

    def mean(self, per_position: bool = True) -> tuple[Replacement, Tensor]:
        """Means over the prompts [S, ...]; not per position: one mean over every prompt
        and position, repeated at each position (the same shape, so nothing else changes)."""
        assert self.sums is not None and self.sums.embed is not None

        def of(t: Tensor) -> Tensor:
            if self.count is not None:
                return _counted_mean(t, self.count, per_position).to(self.dtype)
            if per_position:
                return (t / self.n).to(self.dtype)
            mean = t.sum(0, keepdim=True) / (self.n * t.shape[0])
            return mean.to(self.dtype).expand_as(t).contiguous()

        z, mlp = tuple(of(t) for t in self.sums.z), tuple(of(t) for t in self.sums.mlp)
        return Replacement(z, mlp), of(self.sums.embed)


def _counted_mean(t: Tensor, count: Tensor, per_position: bool) -> Tensor:
    """Sums [S, ...] over the rows real at each position, divided by their count [S]."""
    c = count.reshape(-1, *(1,) * (t.dim() - 1))
    if per_position:
        return t / c
    return (t.sum(0, keepdim=True) / count.sum()).expand_as(t).contiguous()


def _read_logits(w: Model, tokens: Tensor, reads: Reads, rows: int) -> Tensor:
    """Logits [n, K, vocab] at every position the metric reads (one row per read)."""
    parts = []
    for sl in row_chunks(tokens.shape[0], max(1, rows // reads.k)):
        idx, pos = reads.expand(torch.arange(sl.start, sl.stop, device=tokens.device))
        run = forward_nodes(w, tokens[idx], pos)
        assert run.logits is not None
        parts.append(run.logits.reshape(sl.stop - sl.start, reads.k, -1))
    return torch.cat(parts)


def _sweep(
    w: Model,
    tokens: Tensor,
    answer_pos: Tensor,
    rows: int,
    visit: Callable[[slice, NodeRun], None],
    *,
    logits: bool = True,
    forward: Callable[[slice], NodeRun] | None = None,
    trim: bool = False,
) -> Tensor | None:
    """A captured forward of every prompt in chunks (`forward`'s, if given); the answer
    logits [n, vocab] if asked. `trim`: the last layer at the answer only (_trims)."""
    parts = []
    for sl in row_chunks(tokens.shape[0], rows):
        if forward is not None:
            run = forward(sl)
        else:
            run = forward_nodes(w, tokens[sl], answer_pos[sl], capture=True, logits=logits,
                                trim_capture=trim)  # fmt: skip
        if run.logits is not None:
            parts.append(run.logits)
        visit(sl, run)
        advance(sl.stop - sl.start, "prompts")
    return torch.cat(parts) if parts else None


def _trims(w: Model, task: TokenizedTask, ablation: AblationSpec, p: _Prompts,
           generating: bool) -> bool:  # fmt: skip
    """Whether the sweeps may run the last layer at the answer only (its captured values
    zero elsewhere): when whatever reads their last layer reads it there. Every circuit
    pass reads the last layer at the answer alone (nothing comes after it), so it holds
    with one answer position for all prompts (a per-position mean there averages every
    prompt), one read each, no padding, per-position values (pooled means average every
    position) and no generation (which reads past the prompt); on the fast engine (the
    generic one captures through the model's own forward). A sweep then costs ~0.1 bare
    forwards less on the GPT-2-small shape."""
    return (
        engine_of(w) == "fast" and not generating and p.reads is None and p.valid is None
        and not task.ragged and (ablation.per_position or not ablation.uses_means)
        and bool((p.answer_pos == p.answer_pos[0]).all())
    )  # fmt: skip


def _check_against_bridge(bridge: torch.nn.Module, w: Model, state_clean: Tensor,
                          answer_pos: Tensor, ours: Tensor) -> float:  # fmt: skip
    """Our forward must reproduce the bridge's logits: the weights were read right (a
    misread weight moves logits by their own size; rounding in half precision by a few
    units of its last place, BRIDGE_TOLERANCE)."""
    k = min(BRIDGE_CHECK_ROWS, state_clean.shape[0])
    ref = bridge(state_clean[:k])
    ref = ref[torch.arange(k, device=ref.device), answer_pos[:k]].to(ours.dtype)
    diff = float((ref - ours[:k]).float().abs().max())
    scale = float(ref.float().abs().max()) + 1.0
    if not diff <= BRIDGE_TOLERANCE.get(ours.dtype, 1e-4) * scale:
        raise EvaluationError(
            f"the evaluator's forward disagrees with the model's own by {diff:.3g} in the logits",
            code="E304",
            hint="the model's weights or config are not what the evaluator assumes; report this",
        )
    return diff


def _output_change(
    w: Model, run: NodeRun, values: Replacement, embed_values: Tensor, first_read: Tensor,
    last_read: Tensor,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Per node, the largest change its replacement makes to the activation it targets
    (hook_z of a head, hook_mlp_out of an MLP) where it can reach the metric: up to the
    last position the metric reads, and in the last layer, which only its own position
    reads, at the read positions alone (0: the intervention can change nothing); and the
    same for the embeddings."""
    assert run.embed is not None
    seq = run.embed.shape[1]
    position = torch.arange(seq, device=last_read.device)[None, :]
    upto = (position <= last_read[:, None]).to(run.embed.dtype)  # [n, S]
    read = ((position >= first_read[:, None]) & (position <= last_read[:, None])).to(upto.dtype)
    heads, mlps = [], []
    for layer in range(w.n_layers):
        seen = read if layer == w.n_layers - 1 else upto
        dz = (values.z[layer] - run.z[layer]).abs().amax(-1)  # [n, S, H]
        heads.append((dz * seen[..., None]).amax((0, 1)))
        dm = (values.mlp[layer] - run.mlp[layer]).abs().amax(-1)  # [n, S]
        mlps.append((dm * seen).amax())
    embed = ((embed_values - run.embed).abs().amax(-1) * upto).amax()
    return torch.cat([torch.cat(heads), torch.stack(mlps)]), embed


def _means_like(w: Model, seq: int) -> Means:
    """Empty tensors of the names, shapes and dtype a model's mean values have."""
    z = torch.empty(seq, w.n_heads, w.d_head, dtype=w.dtype)
    m = torch.empty(seq, w.d_model, dtype=w.dtype)
    return Means((z,) * w.n_layers, (m,) * w.n_layers, m)


@dataclass(eq=False)
class _Values:
    """What replaced nodes and embedding senders get; the corrupted run's answer logits
    where it is the empty circuit (patching); prompts pushed through forward passes."""

    nodes: Replacement
    embed: Tensor
    empty_logits: Tensor | None = None
    forward_rows: int = 0


def _zeros(w: Model, seq: int) -> _Values:
    z0 = torch.zeros(seq, w.n_heads, w.d_head, dtype=w.dtype, device=w.device)
    m0 = torch.zeros(seq, w.d_model, dtype=w.dtype, device=w.device)
    return _Values(Replacement(tuple(z0 for _ in range(w.n_layers)), (m0,) * w.n_layers), m0)


def _corrupted_values(bridge: torch.nn.Module, w: Model, task: TokenizedTask,
                      ablation: AblationSpec, p: _Prompts, rows: int,
                      cache: MeansCache | None, trim: bool = False) -> _Values:  # fmt: skip
    """The ablation values from the corrupted run: zeros without one; means from the
    cache (seqcirc.engine.means_cache) when they are there, stored there when computed.
    `trim`: the last layer's at the answer only (_trims)."""
    seq = p.clean.shape[1]
    if not ablation.needs_corrupted_run:
        return _zeros(w, seq)
    key = None
    if cache is not None:
        key = cache_key(bridge, p.corrupted.cpu().numpy(), p.answer_pos.cpu().numpy(),
                        ablation, dtype=w.dtype, device=w.device,
                        rows=min(rows, p.clean.shape[0]))  # fmt: skip
        if p.valid is not None:  # padded answers: means over the real tokens only
            key["valid"] = array_digest(p.valid.cpu().numpy())
        if engine_of(w) != "fast":  # the engines round differently; fast keys unchanged
            key["engine"] = engine_of(w)
        if trim:  # zeros off the answer: never what a state that reads there loads
            key["last_layer"] = "answer"
        cached = cache.load(key, _means_like(w, seq), w.device)
        if cached is not None:
            return _Values(Replacement(cached.z, cached.mlp), cached.embed)
    corr = _Acts(keep=ablation.per_prompt_values)
    ragged = (
        RaggedMeans(task, ablation.per_position) if task.ragged and ablation.uses_means else None
    )

    valid = p.valid

    def visit(sl: slice, run: NodeRun) -> None:
        if ragged is not None:
            ragged.add(sl, run)
        else:
            corr.add(run, None if valid is None else valid[sl])

    # its logits are only needed where the corrupted run is the empty circuit
    name = "corrupted run (means)" if ablation.uses_means else "corrupted run"
    with phase(name, total=p.corrupted.shape[0], unit="prompts"):
        empty_logits = _sweep(
            w, p.corrupted, p.answer_pos, rows, visit,
            logits=ablation.patches_circuit and p.reads is None, trim=trim,
        )  # fmt: skip
        if ablation.patches_circuit and p.reads is not None:
            empty_logits = _read_logits(w, p.corrupted, p.reads, rows)
    if ragged is not None:
        values, embed = ragged.values(w.n_layers)
    else:
        values, embed = corr.whole() if corr.keep else corr.mean(ablation.per_position)
    if cache is not None and key is not None:
        cache.store(key, Means(values.z, values.mlp, embed))
    return _Values(values, embed, empty_logits, p.clean.shape[0])


@dataclass(eq=False)
class _Clean:
    """What the clean run gives: the full model's answer logits (with logit_diff on the
    fast engine of the bridge check's rows only: _two_logits) and per-prompt metric, the
    clean embeddings at the answer, the largest change each replacement makes, and (when
    patching) every clean activation."""

    logits: Tensor
    m_model: NDArray[np.float64]
    embed_answer: Tensor
    change: Tensor
    embed_change: Tensor
    acts: _Acts


def _two_logits(w: Model, metric: str, p: _Prompts, forward: object) -> bool:
    """Whether the clean run unembeds each prompt's two tokens only: logit_diff at one
    position reads no other logit, and the fast engine's unembedding of a few tokens gives
    each logit as the whole one does (forward.common.vocab_columns); ~0.04 bare forwards
    of the GPT-2-small shape's 50,257-token unembedding saved."""
    one_position = p.reads is None and forward is None
    return metric == "logit_diff" and one_position and engine_of(w) == "fast"


def _clean_run(w: Model, metric: str, p: _Prompts, values: _Values, rows: int, patch: bool,
               forward: Callable[[slice], NodeRun] | None = None,
               trim: bool = False) -> _Clean:  # fmt: skip
    acts = _Acts(keep=patch)
    embeds: list[Tensor] = []
    m_model: list[NDArray[np.float64]] = []
    change = torch.zeros(w.n_nodes, dtype=w.dtype, device=w.device)
    embed_change = torch.zeros((), dtype=w.dtype, device=w.device)

    reads = p.reads
    two = _two_logits(w, metric, p, forward)
    n_check = min(BRIDGE_CHECK_ROWS, p.clean.shape[0])
    checked: list[Tensor] = []  # with `two`: the bridge check's rows' whole logits

    def visit(sl: slice, run: NodeRun) -> None:
        nonlocal change, embed_change
        assert run.embed is not None
        if two:
            assert not isinstance(w, HookedModel)
            cols, correct, incorrect = columns_of(p.correct[sl], p.incorrect[sl])
            logits = w.unembed(run.resid_final, cols)
            m_model.append(per_prompt(metric, logits, correct, incorrect))
            if sl.start < n_check:
                checked.append(w.unembed(run.resid_final[: n_check - sl.start]))
            embeds.append(at_answer(run.embed, p.answer_pos[sl], 3))
        elif reads is None:
            assert run.logits is not None
            m_model.append(
                per_prompt(metric, run.logits, p.correct[sl], p.incorrect[sl], run.logits)
            )
            embeds.append(at_answer(run.embed, p.answer_pos[sl], 3))
        else:  # the clean embeddings at every read
            local = torch.arange(run.embed.shape[0], device=run.embed.device)[:, None]
            embeds.append(run.embed[local, reads.pos[sl]])
        if patch:
            acts.add(run)
            return
        idx = torch.arange(sl.start, sl.stop, device=w.device)
        emb_vals = values.embed[idx] if values.embed.dim() == 3 else values.embed
        c, e = _output_change(w, run, values.nodes.rows(idx), emb_vals, p.answer_pos[sl],
                              p.last_pos[sl])  # fmt: skip
        change, embed_change = torch.maximum(change, c), torch.maximum(embed_change, e)

    with phase("clean run", total=p.clean.shape[0], unit="prompts"):
        logits = _sweep(w, p.clean, p.answer_pos, rows, visit, logits=not two,
                        forward=forward, trim=trim)  # fmt: skip
    if two:
        logits = torch.cat(checked)
    assert logits is not None
    if reads is not None:
        read = _read_logits(w, p.clean, reads, rows)
        m_model.append(per_prompt(metric, read, reads.tokens, p.incorrect, None, reads.count))
    return _Clean(logits, np.concatenate(m_model), torch.cat(embeds), change, embed_change, acts)


def _patch_in(w: Model, clean: _Clean, corrupted: _Values, p: _Prompts) -> _Values:
    """Patching: the replacement values are the clean activations (circuit nodes get them;
    the rest runs on the corrupted prompt), and `clean`'s change of each is measured
    against the corrupted run's activations."""
    values, embed = clean.acts.whole()
    actual = NodeRun(None, corrupted.embed, corrupted.nodes.z, corrupted.nodes.mlp, corrupted.embed)
    clean.change, clean.embed_change = _output_change(w, actual, values, embed, p.answer_pos,
                                                      p.last_pos)  # fmt: skip
    return _Values(values, embed, corrupted.empty_logits, corrupted.forward_rows)


def _keep_positions(task: TokenizedTask, ablation: AblationSpec, p: _Prompts,
                    appended: Tensor) -> Tensor | None:  # fmt: skip
    """[n, S]: where circuit nodes stay clean (named positions; END also covers the
    answer tokens appended after it); None: everywhere."""
    if ablation.positions is None:
        return None
    n, dev = p.clean.shape[0], p.clean.device
    keep_pos = torch.zeros(p.clean.shape, dtype=torch.bool, device=dev)
    for name in ablation.positions:
        keep_pos[torch.arange(n, device=dev), _tensor(task.positions[name], dev)] = True
    if "END" in ablation.positions:
        end = _tensor(task.positions["END"], dev)[:, None]
        seq = torch.arange(p.clean.shape[1], device=dev)[None, :]
        keep_pos |= (seq > end) & (seq <= end + appended[:, None])
    return keep_pos


def prepare(
    bridge: torch.nn.Module,
    task: TokenizedTask,
    ablation: AblationSpec | None = None,
    metric: str = "logit_diff",
    *,
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    means_cache: MeansCache | None = None,
    engine: str = DEFAULT_ENGINE,
) -> EvalState:
    """Run the corrupted and clean prompts once and keep what every circuit needs.

    `engine`: auto, generic or fast (seqcirc.forward.select); the state records which ran.

    Zero ablation needs no corrupted run; mean ablation keeps per-position sums only, and
    with a `means_cache` (seqcirc.engine.means_cache) takes them from disk when they are there.
    Rows per chunk: `batch_rows` if given, else as many as `memory_budget` bytes hold
    (default seqcirc.engine.memory.budget_bytes of the model's device).
    """
    t0 = time.perf_counter()
    ablation = ablation or AblationSpec()
    check_metric(metric)
    w = select(bridge, engine, edges=ablation.is_edge)
    generation = generation_of(task, ablation, w)  # E328 before any forward pass
    # a generating metric decodes from the prompt alone: nothing is teacher-forced
    forcing = generation is None and task.multi_token
    forced = teacher_forced(task, metric) if forcing else one_token_input(task)
    _check_setup(task, ablation, w, int(forced.clean.shape[1]), forcing)
    if batch_rows is not None and batch_rows < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_rows}", code="E406")
    p = _Prompts.of(forced, w.device)
    n = p.clean.shape[0]
    rows = _Rows.of(w, task, p.clean.shape[1], ablation, batch_rows, memory_budget, forced.reads)
    # ragged tasks' means are not cached (seqcirc.engine.ragged takes them its own way)
    cache = means_cache if ablation.uses_means and not task.ragged else None
    patch = ablation.patches_circuit
    parts = {"setup": time.perf_counter() - t0}
    with torch.inference_mode():
        t1 = time.perf_counter()
        trim = _trims(w, task, ablation, p, generation is not None)
        values = _corrupted_values(bridge, w, task, ablation, p, rows.sweep, cache, trim)
        t2 = time.perf_counter()
        clean = _clean_run(w, metric, p, values, rows.sweep, patch, trim=trim)
        t3 = time.perf_counter()
        bridge_diff = _check_against_bridge(bridge, w, p.clean, p.answer_pos, clean.logits)
        t4 = time.perf_counter()
        parts.update(corrupted_run=t2 - t1, clean_run=t3 - t2, bridge_check=t4 - t3)
        checked = check_edge_structure(w, p.clean) if ablation.is_edge else 0
        if patch:
            values = _patch_in(w, clean, values, p)
    state = EvalState(
        weights=w, task=task, ablation=ablation, metric=metric, clean=p.clean,
        corrupted=p.corrupted, correct=p.correct, incorrect=p.incorrect,
        answer_pos=p.answer_pos,
        keep_pos=_keep_positions(task, ablation, p, _tensor(forced.appended, w.device)),
        values=values.nodes, embed_values=values.embed,
        clean_embed_answer=clean.embed_answer if p.reads is None else clean.embed_answer[:, 0],
        clean_logits=clean.logits if metric == "kl" else None,
        empty_logits=values.empty_logits if patch else None,
        m_model=clean.m_model, batch_rows=rows.circuit, capture_rows=rows.sweep,
        edge_rows=rows.edge, bridge_max_abs_diff=bridge_diff,
        output_change=clean.change.double().cpu().numpy(),
        embed_change=float(clean.embed_change),
        forward_rows=values.forward_rows + n + min(BRIDGE_CHECK_ROWS, n) + checked
        + (0 if p.reads is None else n * p.reads.k * (2 if patch else 1)),  # the reads
        means_cache=cache.last_status if cache is not None else "",
        reads=None if p.reads is None else replace(p.reads, clean_embed=clean.embed_answer),
    )  # fmt: skip
    if generation is not None:  # the full model's score: its own greedy continuations
        state.generation = generation
        with torch.inference_mode():
            state.m_model = generate_scores(
                w, generation, p.clean, torch.arange(n, device=w.device), rows.sweep
            )
        state.forward_rows += n * generation.max_new_tokens
    state.timings["prepare_s"] = time.perf_counter() - t0
    state.prepare_parts = {**parts, "other": state.timings["prepare_s"] - sum(parts.values())}
    return state


# (model, ablation values of the nodes, of the embeddings, rows) -> the rows' clean run:
# answer logits [B, vocab] and every activation (NodeRun with capture)
CleanForward = Callable[[Model, Replacement, Tensor, slice], NodeRun]


def prepare_values(
    bridge: torch.nn.Module,
    task: TokenizedTask,
    ablation: AblationSpec,
    metric: str,
    clean_forward: CleanForward,
    *,
    rows: int | None = None,
    memory_budget: int | None = None,
    means_cache: MeansCache | None = None,
    engine: str = DEFAULT_ENGINE,
) -> EvalState:
    """prepare() with the ablation values first and the clean sweep left to the caller's
    own pass over the clean prompts, `clean_forward`, in chunks of `rows` prompts (edge
    attribution's forward of every clean prompt gives what the sweep would: one pass
    fewer). Not for patching the circuit in, whose values are the clean run itself."""
    t0 = time.perf_counter()
    check_metric(metric)
    if ablation.patches_circuit:
        raise InputError("prepare_values: patching the circuit in needs prepare()", code="E320")
    # the caller's pass reads each prompt's END: one-token answers, nothing teacher-forced
    task.require_one_token("prepare_values (a clean pass at END)")
    w = select(bridge, engine, edges=ablation.is_edge)
    _check_setup(task, ablation, w, task.seq_len, False)
    p = _Prompts.of(one_token_input(task), w.device)
    n = p.clean.shape[0]
    own = _Rows.of(w, task, p.clean.shape[1], ablation, None, memory_budget)
    cache = means_cache if ablation.uses_means and not task.ragged else None
    with torch.inference_mode():
        trim = _trims(w, task, ablation, p, False)
        values = _corrupted_values(bridge, w, task, ablation, p, own.sweep, cache, trim)
    clean = _clean_run(w, metric, p, values, rows or own.sweep, False,
                       lambda sl: clean_forward(w, values.nodes, values.embed, sl))  # fmt: skip
    with torch.inference_mode():
        bridge_diff = _check_against_bridge(bridge, w, p.clean, p.answer_pos, clean.logits)
        checked = check_edge_structure(w, p.clean) if ablation.is_edge else 0
    state = EvalState(
        weights=w, task=task, ablation=ablation, metric=metric, clean=p.clean,
        corrupted=p.corrupted, correct=p.correct, incorrect=p.incorrect,
        answer_pos=p.answer_pos,
        keep_pos=_keep_positions(task, ablation, p, p.clean.new_zeros(n)),
        values=values.nodes, embed_values=values.embed, clean_embed_answer=clean.embed_answer,
        clean_logits=clean.logits if metric == "kl" else None, empty_logits=None,
        m_model=clean.m_model, batch_rows=own.circuit, capture_rows=own.sweep,
        edge_rows=own.edge, bridge_max_abs_diff=bridge_diff,
        output_change=clean.change.double().cpu().numpy(),
        embed_change=float(clean.embed_change),
        forward_rows=values.forward_rows + min(BRIDGE_CHECK_ROWS, n) + checked,
        means_cache=cache.last_status if cache is not None else "",
    )  # fmt: skip
    state.timings["prepare_s"] = time.perf_counter() - t0
    return state


__all__ = ["BRIDGE_CHECK_ROWS", "CleanForward", "prepare", "prepare_values"]
