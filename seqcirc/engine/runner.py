"""Runs circuits against a prepared state: the evaluator's forward-pass engine.

prepare() makes the forward passes every circuit shares, once per (model, task, ablation
set-up, metric): the clean run (reference logits at the answer position, clean
activations) and the corrupted run (the ablation values). After that a node circuit costs
one forward pass with logits at the answer position only, R node circuits one batched
pass of R x n rows, an edge circuit one patched pass, and the empty circuit no pass at all.

Named positions (AblationSpec.positions): circuit nodes stay clean only at the named
positions of each prompt; at every other position they are ablated like the complement.
The full model M is always the clean run. Patching the circuit into corrupted input
(direction patch_circuit) runs the corrupted prompt and gives circuit nodes their clean
activations; the embeddings stay corrupted, so patching in every node need not give M.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.engine.means_cache import Means, MeansCache, cache_key
from seqcirc.engine.memory import (
    ForwardShape,
    budget_bytes,
    edge_row_bytes,
    node_row_bytes,
    rows_for,
)
from seqcirc.engine.metric import check_metric, per_prompt
from seqcirc.errors import EvaluationError, InputError
from seqcirc.forward.common import require_edges
from seqcirc.forward.gpt2 import (
    EdgeGraph,
    EdgeValues,
    ModelWeights,
    NodeRun,
    Replacement,
    all_nodes,
    all_replaced_resid,
    edge_graph,
    extract_weights,
    forward_nodes,
    node_index,
    unembed,
)
from seqcirc.plan import AblationSpec, Node
from seqcirc.tasks.types import TokenizedTask

BRIDGE_CHECK_ROWS = 2  # prompts on which our forward is checked against the bridge's


@dataclass(eq=False)
class EvalState:
    """Everything circuits on one (model, task, ablation set-up, metric) share.

    Memory stays bounded: per-prompt activations are kept only where the set-up needs
    them (resample values, patching the circuit in); means are running sums.
    """

    weights: ModelWeights
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
    forward_rows: int = 0  # prompt-rows pushed through forward passes (cost accounting)
    means_cache: str = ""  # the on-disk means cache: "hit", "stored", "recomputed: why"
    _graph: EdgeGraph | None = None
    _edge_values: EdgeValues | None = None
    _m_empty: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return int(self.clean.shape[0])

    @property
    def nodes(self) -> tuple[Node, ...]:
        return all_nodes(self.weights)

    @property
    def graph(self) -> EdgeGraph:
        """Every edge of the model (E302 where the architecture has no edge forward)."""
        if self._graph is None:
            self._graph = edge_graph(self.weights)
        return self._graph

    @property
    def edge_values(self) -> EdgeValues:
        if self._edge_values is None:
            self._edge_values = EdgeValues.from_nodes(self.weights, self.embed_values, self.values)
        return self._edge_values


def _tensor(a: object, device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.long, device=device)


def _check_setup(task: TokenizedTask, ablation: AblationSpec, w: ModelWeights) -> None:
    if ablation.value not in ("mean", "resample", "zero"):
        raise InputError(f"unknown ablation value {ablation.value!r}", code="E320")
    if ablation.direction == "patch_circuit" and ablation.value != "resample":
        raise InputError(
            "patching the circuit into corrupted input runs each prompt's paired corrupted "
            f"prompt, so the ablation value must be resample, not {ablation.value}",
            code="E320",
            hint="write `ablate resample` with `patch circuit`, or ablate the complement",
        )
    if ablation.granularity == "edge":
        require_edges(w)
    if ablation.granularity == "edge" and (
        ablation.positions is not None or ablation.direction != "ablate_complement"
    ):
        raise InputError(
            "edge circuits are evaluated at all positions with the complement ablated",
            code="E320",
            hint="drop the positions / patch-circuit options for an edge circuit",
        )
    if task.clean.shape != task.corrupted.shape:
        raise InputError(
            f"clean {task.clean.shape} and corrupted {task.corrupted.shape} prompts differ in "
            "shape; per-position means need aligned prompts",
            code="E321",
        )
    if task.seq_len > w.n_ctx:
        raise InputError(
            f"prompts of {task.seq_len} tokens exceed the model's context", code="E321"
        )
    for name in ablation.positions or ():
        if name not in task.positions:
            raise InputError(
                f"position {name!r} is not defined by task {task.name!r}",
                code="E322",
                hint=f"known positions: {', '.join(sorted(task.positions))}",
            )


def row_chunks(n_rows: int, size: int) -> Iterable[slice]:
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


class _Acts:
    """Activations of a sweep over all prompts: kept whole, or as per-position sums."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.parts: list[NodeRun] = []
        self.sums: NodeRun | None = None
        self.n = 0

    def add(self, run: NodeRun) -> None:
        assert run.embed is not None
        self.n += run.embed.shape[0]
        if self.keep:
            self.parts.append(run)
            return
        z, mlp = tuple(t.sum(0) for t in run.z), tuple(t.sum(0) for t in run.mlp)
        emb = run.embed.sum(0)
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

    def mean(self) -> tuple[Replacement, Tensor]:
        assert self.sums is not None and self.sums.embed is not None
        z = tuple(t / self.n for t in self.sums.z)
        return Replacement(z, tuple(t / self.n for t in self.sums.mlp)), self.sums.embed / self.n


def _sweep(
    w: ModelWeights,
    tokens: Tensor,
    answer_pos: Tensor,
    rows: int,
    visit: Callable[[slice, NodeRun], None],
    *,
    logits: bool = True,
) -> Tensor | None:
    """A captured forward of every prompt in chunks; the answer logits [n, vocab] if asked."""
    parts = []
    for sl in row_chunks(tokens.shape[0], rows):
        run = forward_nodes(w, tokens[sl], answer_pos[sl], capture=True, logits=logits)
        if run.logits is not None:
            parts.append(run.logits)
        visit(sl, run)
    return torch.cat(parts) if parts else None


def _check_against_bridge(bridge: torch.nn.Module, w: ModelWeights, state_clean: Tensor,
                          answer_pos: Tensor, ours: Tensor) -> float:  # fmt: skip
    """Our forward must reproduce the bridge's logits: the weights were read right."""
    k = min(BRIDGE_CHECK_ROWS, state_clean.shape[0])
    ref = bridge(state_clean[:k])
    ref = ref[torch.arange(k, device=ref.device), answer_pos[:k]].to(ours.dtype)
    diff = float((ref - ours[:k]).abs().max())
    scale = float(ref.abs().max()) + 1.0
    if not diff <= 1e-4 * scale:
        raise EvaluationError(
            f"the evaluator's forward disagrees with the model's own by {diff:.3g} in the logits",
            code="E304",
            hint="the model's weights or config are not what the evaluator assumes; report this",
        )
    return diff


def _output_change(
    w: ModelWeights, run: NodeRun, values: Replacement, embed_values: Tensor, answer_pos: Tensor
) -> tuple[Tensor, Tensor]:
    """Per node, the largest change its replacement makes to the activation it targets
    (hook_z of a head, hook_mlp_out of an MLP) at positions up to the answer (0: the
    intervention can change nothing); and the same for the embeddings."""
    assert run.embed is not None
    seq = run.embed.shape[1]
    upto = (torch.arange(seq, device=answer_pos.device)[None, :] <= answer_pos[:, None]).to(
        run.embed.dtype
    )  # [n, S]
    heads, mlps = [], []
    for layer in range(w.n_layers):
        dz = (values.z[layer] - run.z[layer]).abs().amax(-1)  # [n, S, H]
        heads.append((dz * upto[..., None]).amax((0, 1)))
        dm = (values.mlp[layer] - run.mlp[layer]).abs().amax(-1)  # [n, S]
        mlps.append((dm * upto).amax())
    embed = ((embed_values - run.embed).abs().amax(-1) * upto).amax()
    return torch.cat([torch.cat(heads), torch.stack(mlps)]), embed


def prepare(
    bridge: torch.nn.Module,
    task: TokenizedTask,
    ablation: AblationSpec | None = None,
    metric: str = "logit_diff",
    *,
    batch_rows: int | None = None,
    memory_budget: int | None = None,
    means_cache: MeansCache | None = None,
) -> EvalState:
    """Run the corrupted and clean prompts once and keep what every circuit needs.

    Zero ablation needs no corrupted run; mean ablation keeps per-position sums only, and
    with a `means_cache` (seqcirc.engine.means_cache) takes them from disk when they are there.
    Rows per chunk: `batch_rows` if given, else as many as `memory_budget` bytes hold
    (default seqcirc.engine.memory.budget_bytes of the model's device).
    """
    t0 = time.perf_counter()
    ablation = ablation or AblationSpec()
    check_metric(metric)
    w = extract_weights(bridge)
    _check_setup(task, ablation, w)
    if batch_rows is not None and batch_rows < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_rows}", code="E406")
    dev = w.device
    clean, corrupted = _tensor(task.clean, dev), _tensor(task.corrupted, dev)
    answer_pos = _tensor(task.answer_pos, dev)
    correct, incorrect = _tensor(task.correct, dev), _tensor(task.incorrect, dev)
    n, seq = clean.shape
    patch = ablation.direction == "patch_circuit"
    per_prompt_values = ablation.value == "resample" or patch
    budget = memory_budget if memory_budget is not None else budget_bytes(dev)
    shape = ForwardShape.of(w, seq)
    rows = batch_rows or rows_for(
        budget, node_row_bytes(shape, per_prompt_values=per_prompt_values)
    )
    sweep_rows = batch_rows or rows_for(budget, node_row_bytes(shape, capture=True))
    edge_rows = batch_rows or rows_for(
        budget, edge_row_bytes(shape, per_prompt_values=per_prompt_values)
    )
    cache = means_cache if ablation.value == "mean" and not patch else None
    key = None
    if cache is not None:
        key = cache_key(bridge, task.corrupted, task.answer_pos, ablation, dtype=w.dtype,
                        device=dev, rows=min(sweep_rows, n))  # fmt: skip
    n_forward = 0
    with torch.inference_mode():
        # 1. The corrupted run gives the ablation values (patching: the runs' roles swap).
        corr = _Acts(keep=ablation.value == "resample" or patch)
        empty_logits = None
        if ablation.value == "zero":
            z0 = torch.zeros(seq, w.n_heads, w.d_head, dtype=w.dtype, device=dev)
            m0 = torch.zeros(seq, w.d_model, dtype=w.dtype, device=dev)
            values = Replacement(tuple(z0 for _ in range(w.n_layers)), (m0,) * w.n_layers)
            embed_values = m0
        else:
            cached = None
            if cache is not None and key is not None:
                cached = cache.load(key, _means_like(w, seq), dev)
            if cached is not None:
                values, embed_values = Replacement(cached.z, cached.mlp), cached.embed
            else:
                # its logits are only needed where the corrupted run is the empty circuit
                empty_logits = _sweep(
                    w, corrupted, answer_pos, sweep_rows, lambda sl, run: corr.add(run),
                    logits=patch,
                )  # fmt: skip
                n_forward += n
                values, embed_values = corr.whole() if corr.keep else corr.mean()
                if cache is not None and key is not None:
                    cache.store(key, Means(values.z, values.mlp, embed_values))
        # 2. The clean run: the reference metric, and how much each replacement changes.
        clean_acts = _Acts(keep=patch)
        embeds: list[Tensor] = []
        m_model: list[NDArray[np.float64]] = []
        change = torch.zeros(w.n_nodes, dtype=w.dtype, device=dev)
        embed_change = torch.zeros((), dtype=w.dtype, device=dev)

        def visit(sl: slice, run: NodeRun) -> None:
            nonlocal change, embed_change
            assert run.logits is not None and run.embed is not None
            m_model.append(per_prompt(metric, run.logits, correct[sl], incorrect[sl], run.logits))
            embeds.append(_at_answer(run.embed, answer_pos[sl], 3))
            if patch:
                clean_acts.add(run)
                return
            idx = torch.arange(sl.start, sl.stop, device=dev)
            emb_vals = embed_values[idx] if embed_values.dim() == 3 else embed_values
            c, e = _output_change(w, run, values.rows(idx), emb_vals, answer_pos[sl])
            change, embed_change = torch.maximum(change, c), torch.maximum(embed_change, e)

        clean_logits = _sweep(w, clean, answer_pos, sweep_rows, visit)
        assert clean_logits is not None
        n_forward += n
        bridge_diff = _check_against_bridge(bridge, w, clean, answer_pos, clean_logits)
        if patch:
            # the circuit gets clean activations; the rest runs on the corrupted prompt
            corr_vals, corr_embed = values, embed_values
            values, embed_values = clean_acts.whole()
            actual = NodeRun(None, corr_embed, corr_vals.z, corr_vals.mlp, corr_embed)
            change, embed_change = _output_change(w, actual, values, embed_values, answer_pos)
    keep_pos = None
    if ablation.positions is not None:
        keep_pos = torch.zeros(clean.shape, dtype=torch.bool, device=dev)
        for name in ablation.positions:
            keep_pos[torch.arange(n, device=dev), _tensor(task.positions[name], dev)] = True
    state = EvalState(
        weights=w, task=task, ablation=ablation, metric=metric, clean=clean,
        corrupted=corrupted, correct=correct, incorrect=incorrect, answer_pos=answer_pos,
        keep_pos=keep_pos, values=values, embed_values=embed_values,
        clean_embed_answer=torch.cat(embeds),
        clean_logits=clean_logits if metric == "kl" else None,
        empty_logits=empty_logits if patch else None,
        m_model=np.concatenate(m_model), batch_rows=rows, capture_rows=sweep_rows,
        edge_rows=edge_rows, bridge_max_abs_diff=bridge_diff,
        output_change=change.double().cpu().numpy(), embed_change=float(embed_change),
        forward_rows=n_forward + min(BRIDGE_CHECK_ROWS, n),
        means_cache=cache.last_status if cache is not None else "",
    )  # fmt: skip
    state.timings["prepare_s"] = time.perf_counter() - t0
    return state


def _means_like(w: ModelWeights, seq: int) -> Means:
    """Empty tensors of the names, shapes and dtype a model's mean values have."""
    z = torch.empty(seq, w.n_heads, w.d_head, dtype=w.dtype)
    m = torch.empty(seq, w.d_model, dtype=w.dtype)
    return Means((z,) * w.n_layers, (m,) * w.n_layers, m)


def clean_logits_at(state: EvalState, index: Tensor | None) -> Tensor | None:
    """The full model's answer logits (kept for kl only; other metrics do not need them)."""
    if state.clean_logits is None:
        return None
    return state.clean_logits if index is None else state.clean_logits[index]


def _at_answer(t: Tensor, answer_pos: Tensor, per_prompt_dims: int) -> Tensor:
    if t.dim() == per_prompt_dims:
        return t[torch.arange(t.shape[0], device=t.device), answer_pos]
    return t[answer_pos]


# ---------------------------------------------------------------- node circuits


def node_mask(state: EvalState, nodes: Iterable[Node]) -> NDArray[np.bool_]:
    """Keep-mask [n_nodes] of a node circuit (mask order of seqcirc.stats.baseline)."""
    mask = np.zeros(state.weights.n_nodes, dtype=bool)
    for node in nodes:
        mask[node_index(state.weights, node)] = True
    return mask


def check_live(state: EvalState, keep: NDArray[np.bool_]) -> None:
    """Liveness: the plan must intervene on something whose output really changes."""
    touched = ~keep if state.ablation.direction == "ablate_complement" else keep
    if state.ablation.positions is not None and state.ablation.direction == "ablate_complement":
        touched = np.ones_like(keep)  # circuit nodes are ablated off the named positions
    if not touched.any():
        patch = state.ablation.direction == "patch_circuit"
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

    All R circuits go through batched forward passes of R x n rows (chunked).
    """
    w = state.weights
    keep = torch.as_tensor(np.asarray(masks, dtype=bool), device=w.device)
    if keep.dim() != 2 or keep.shape[1] != w.n_nodes:
        raise EvaluationError(
            f"masks must be [R, {w.n_nodes}], got {tuple(keep.shape)}", code="E306"
        )
    n, r_count = state.n_prompts, keep.shape[0]
    patch = state.ablation.direction == "patch_circuit"
    tokens = state.corrupted if patch else state.clean
    out = np.empty(r_count * n)
    with torch.inference_mode():
        for sl in row_chunks(r_count * n, state.batch_rows):
            rows = torch.arange(sl.start, sl.stop, device=w.device)
            prompt, circ = rows % n, rows // n
            kept = keep[circ][:, None, :]  # [B, 1, n_nodes]
            if state.keep_pos is not None:
                kept = kept & state.keep_pos[prompt][:, :, None]
            replace = kept if patch else ~kept
            run = forward_nodes(
                w, tokens[prompt], state.answer_pos[prompt],
                replace=replace, values=state.values.rows(prompt),
            )  # fmt: skip
            assert run.logits is not None
            out[sl] = per_prompt(
                state.metric, run.logits, state.correct[prompt], state.incorrect[prompt],
                clean_logits_at(state, prompt),
            )  # fmt: skip
    state.forward_rows += r_count * n
    return out.reshape(r_count, n)


def run_nodes(state: EvalState, nodes: Iterable[Node]) -> NDArray[np.float64]:
    """Per-prompt metric [n] of one node circuit (its complement ablated)."""
    return run_circuits(state, node_mask(state, nodes)[None])[0]


def empty_metric(state: EvalState, granularity: str | None = None) -> NDArray[np.float64]:
    """m(empty) per prompt: everything ablated; computed without a forward pass.

    Node circuits keep the clean embeddings (they are not a node); edge circuits ablate
    the embedding sender too. Patching into corrupted input: empty = the corrupted run.
    """
    gran = granularity or state.ablation.granularity
    if gran in state._m_empty:
        return state._m_empty[gran]
    w, pos = state.weights, state.answer_pos
    with torch.inference_mode():
        if state.ablation.direction == "patch_circuit":
            assert state.empty_logits is not None
            logits = state.empty_logits
        else:
            if gran == "node":
                embed = state.clean_embed_answer
            else:
                embed = _at_answer(state.embed_values, pos, 3)
            at = Replacement(
                tuple(_at_answer(z, pos, 4) for z in state.values.z),
                tuple(_at_answer(m, pos, 3) for m in state.values.mlp),
            )
            resid = all_replaced_resid(w, embed, at)
            logits = unembed(w, resid.expand(state.n_prompts, -1))
        m = per_prompt(
            state.metric, logits, state.correct, state.incorrect, clean_logits_at(state, None)
        )
    state._m_empty[gran] = m
    return m
