"""Evaluate a compiled plan against a model: prepare once per (task, ablation, metric),
run each circuit, check each claim, and return an EvaluationResult.

Each claim is measured by its kind's handler (seqcirc.claims.registry); a run measures the
value claims (faithfulness, normalized_faithfulness, completeness, minimality) and the
kinds in `handlers` (the Session passes registry.HANDLERS: every kind). A claim with no
handler is reported as "skipped", never as passed. `judge` decides every verdict. Each
claim's random draws use its own seed, derived from the plan's seed, the circuit's name
and what the claim measures (its kind and arguments; not its line or threshold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.claims.context import ClaimContext, ClaimHandler, ClaimValue
from seqcirc.claims.faithfulness import faithfulness
from seqcirc.claims.registry import VALUE_HANDLERS
from seqcirc.claims.removals import removals
from seqcirc.engine.edges import check_live_edges, edge_mask, run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.ragged import unnamed_tokens, uses_slot_means
from seqcirc.engine.runner import EvalState, check_live, empty_metric, node_mask, run_circuits
from seqcirc.errors import SeqcircError
from seqcirc.plan import CircuitPlan, Claim, Plan, to_jsonable
from seqcirc.progress import advance, phase
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult, Verdict, versions
from seqcirc.stats.reporting import compare
from seqcirc.stats.seeds import derive_seed
from seqcirc.tasks.types import TokenizedTask

__all__ = [
    "ClaimContext",
    "ClaimValue",
    "evaluate_circuit",
    "evaluate_plan",
    "judge",
    "prepare",
    "run_circuits",
    "run_edges",
]


def _as_written(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id, "kind": claim.kind, "text": claim.text, "line": claim.line,
        "col": claim.col, "op": claim.op, "threshold": claim.threshold, "bound": claim.bound,
    }  # fmt: skip


def judge(claim: Claim, got: ClaimValue, *, seed: int | None = None) -> ClaimResult:
    """The verdict on what a claim's handler measured: the statistic its bound names
    (point, lower or upper) against `op threshold`. The one place a verdict is decided;
    Holm (seqcirc.claims.holm) may later turn a p-value claim's pass into a fail."""
    base = {**_as_written(claim), "seed": seed}
    compared = {"point": got.value, "lower": got.lower, "upper": got.upper}[claim.bound]
    if compared is None:
        return ClaimResult(
            **base, verdict="error", value=got.value, detail=got.detail,
            message=f"this measure has no {claim.bound} confidence bound",
        )  # fmt: skip
    verdict: Verdict = "pass" if compare(compared, claim.op, claim.threshold) else "fail"
    return ClaimResult(
        **base, verdict=verdict, value=got.value, lower=got.lower, upper=got.upper,
        level=got.level, compared=compared, per_prompt=got.per_prompt, detail=got.detail,
    )  # fmt: skip


def _check_claim(claim: Claim, ctx: ClaimContext, handler: ClaimHandler | None) -> ClaimResult:
    if handler is None:
        return ClaimResult(
            **_as_written(claim), verdict="skipped",
            message=f"no evaluator for claim kind {claim.kind!r} was given to this run",
        )  # fmt: skip
    # Each claim draws from its own stream: adding a claim never changes another's numbers.
    # The stream follows what the claim measures, not where it stands (its id holds the
    # line), so editing a comment above a claim or its threshold never changes its p-value.
    seed = derive_seed(ctx.seed, ctx.circuit.name, claim_key(claim))
    try:
        got = handler(claim, replace(ctx, seed=seed))
    except SeqcircError as err:
        return ClaimResult(
            **_as_written(claim), seed=seed, verdict="error", message=f"[{err.code}] {err.message}"
        )
    return judge(claim, got, seed=seed)


def _check_claims(
    ctx: ClaimContext, table: Mapping[str, ClaimHandler]
) -> tuple[tuple[ClaimResult, ...], dict[str, float]]:
    """Every claim of the circuit, and each one's own seconds (`claim_s:<id>`: the pytest
    plugin reports them per item, so a slow claim shows as itself)."""
    results, seconds = [], {}
    for claim in ctx.circuit.claims:
        t0 = time.perf_counter()
        results.append(_check_claim(claim, ctx, table.get(claim.kind)))
        seconds[f"claim_s:{claim.id}"] = time.perf_counter() - t0
        advance(1, "claims")  # the enclosing phase (evaluate_plan's) counts claims
    return tuple(results), seconds


def _run_circuit(state: EvalState, circuit: CircuitPlan) -> NDArray[np.float64]:
    """The circuit's per-prompt metric (after the liveness checks)."""
    if circuit.ablation.is_edge:
        keep = edge_mask(state, circuit.edges)
        check_live_edges(state, keep)
        return run_edges(state, keep)
    mask = node_mask(state, circuit.nodes)
    check_live(state, mask)
    return run_circuits(state, mask[None])[0]


def _faithfulness_summary(
    state: EvalState,
    circuit: CircuitPlan,
    m_circuit: NDArray[np.float64],
    m_empty: NDArray[np.float64],
    *,
    seed: int,
    n_boot: int,
    level: float,
) -> dict[str, dict[str, Any]]:
    """Both faithfulness variants of every circuit, claimed or not (an error where one is
    undefined), each with a seed of its own."""
    faith: dict[str, dict[str, Any]] = {}
    for variant in ("performance_ratio", "normalized_faithfulness"):
        try:
            f = faithfulness(
                variant, state.metric, m_circuit, state.m_model, m_empty,
                seed=derive_seed(seed, circuit.name, variant), level=level, n_boot=n_boot,
            )  # fmt: skip
            faith[variant] = to_jsonable(f)
        except SeqcircError as err:
            faith[variant] = {"error": f"[{err.code}] {err.message}"}
    return faith


def _warnings(state: EvalState, circuit: CircuitPlan, dead: list[str]) -> tuple[str, ...]:
    warnings = [
        f"intervening on {v} changes nothing (its replacement equals its activation)"
        for v in dead
        if v not in map(str, circuit.nodes)
    ]
    if (  # a ragged task's means are per named position (seqcirc.engine.ragged)
        circuit.ablation.per_position_means
        and not state.task.ragged
        and len(set(state.task.answer_pos.tolist())) > 1
    ):
        warnings.append(
            "prompts put the answer at different positions: per-position means mix "
            "tokens of different roles"
        )
    if uses_slot_means(state.task, circuit.ablation) and (k := unnamed_tokens(state.task)):
        warnings.append(
            f"prompts of different lengths: means are taken per named position; the {k} "
            "tokens that are no named position share one mean over them all"
        )
    return tuple(warnings)


def _removals(
    state: EvalState, circuit: CircuitPlan, m_circuit: NDArray[np.float64], **kw: Any
) -> dict[str, Any] | None:
    """Every node circuit's removal table (None for edge circuits), with a seed of its own."""
    if circuit.ablation.is_edge:
        return None
    seed = derive_seed(kw.pop("seed"), circuit.name, "removals")
    return removals(state, circuit.nodes, dict(circuit.groups), m_circuit, seed=seed, **kw)


def evaluate_circuit(
    state: EvalState,
    circuit: CircuitPlan,
    *,
    seed: int = 0,
    n_boot: int = 10_000,
    level: float = 0.95,
    handlers: Mapping[str, ClaimHandler] | None = None,
    model: Any = None,
) -> CircuitResult:
    """Run one circuit on a prepared state and check its claims (`model`: what role
    claims are measured on, see ClaimContext)."""
    t0 = time.perf_counter()
    rows0 = state.forward_rows
    m_circuit = _run_circuit(state, circuit)
    m_empty = empty_metric(state)
    t_run = time.perf_counter() - t0
    ctx = ClaimContext(state, circuit, seed, m_circuit, n_boot, level, model)
    table = {**VALUE_HANDLERS, **(handlers or {})}
    claims, claim_seconds = _check_claims(ctx, table)
    faith = _faithfulness_summary(
        state, circuit, m_circuit, m_empty, seed=seed, n_boot=n_boot, level=level
    )
    dead = [str(v) for v, c in zip(state.nodes, state.output_change, strict=True) if c == 0]
    rows = state.forward_rows - rows0  # the removal table counts its own rows
    removed = _removals(state, circuit, m_circuit, seed=seed, n_boot=n_boot, level=level)
    task = state.task
    words = circuit.ablation.describe(task.name, task.n_prompts, ragged=task.ragged)
    return CircuitResult(
        name=circuit.name, circuit_hash=circuit.circuit_hash(),
        granularity=circuit.ablation.granularity,
        nodes=tuple(str(v) for v in circuit.nodes), edges=tuple(str(e) for e in circuit.edges),
        groups={k: [str(v) for v in vs] for k, vs in circuit.groups},
        ablation={**to_jsonable(circuit.ablation),
                  "means_from": words.means_from, "values_from": words.values_from,
                  "head_unit": "blocks.L.attn.hook_z (per head; b_O kept)",
                  "mlp_unit": "blocks.L.hook_mlp_out"},
        task={"name": task.name, "n_prompts": task.n_prompts, "seq_len": task.seq_len,
              "meta": to_jsonable(dict(task.meta)),
              **({"bos": task.meta["bos"]} if "bos" in task.meta else {}),
              **({"lengths": task.lengths.tolist()} if task.lengths is not None else {})},
        metric=state.metric, f_model=float(state.m_model.mean()),
        f_circuit=float(m_circuit.mean()), f_empty=float(m_empty.mean()),
        per_prompt={"model": state.m_model.tolist(), "circuit": m_circuit.tolist(),
                    "empty": m_empty.tolist()},
        faithfulness=faith, claims=claims,
        checks={"bridge_max_abs_diff": state.bridge_max_abs_diff, "dead_nodes": dead,
                "engine": state.engine,
                **({"means_cache": state.means_cache} if state.means_cache else {})},
        timings={**state.timings, "circuit_s": t_run,
                 "claims_s": time.perf_counter() - t0 - t_run, **claim_seconds},
        forward_rows=rows, warnings=_warnings(state, circuit, dead), removals=removed,
    )  # fmt: skip


def claim_key(claim: Claim) -> str:
    """What a claim measures, as a stable label: its kind and its arguments."""
    return f"{claim.kind}{sorted(claim.params)!r}"


def evaluate_plan(
    model: Any,
    plan: Plan,
    task_for: Callable[[CircuitPlan], TokenizedTask] | Mapping[str, TokenizedTask],
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    batch_rows: int | None = None,
    handlers: Mapping[str, ClaimHandler] | None = None,
    states: dict[tuple[Any, ...], EvalState] | None = None,
    means_cache: Any = None,
    engine: str = "auto",
) -> EvaluationResult:
    """Every circuit of a plan. `model` is a seqcirc.models.load.LoadedModel (or a bare
    TransformerBridge); `task_for` gives each circuit's tokenized task (or maps names).
    `handlers`: claim kinds measured beyond the value claims, kind -> handler
    (seqcirc.claims.registry.HANDLERS: every kind; role claims need a LoadedModel).
    `states`: a cache of prepared states to share across calls (a session keeps one, so
    corrupted means are computed once per model, task and ablation set-up).
    `means_cache`: a seqcirc.engine.means_cache.MeansCache, to keep mean-ablation values on disk
    across processes. `engine`: auto, generic or fast (seqcirc.forward.select); each
    circuit's result records the one that ran (checks["engine"])."""
    t0 = time.perf_counter()
    bridge = getattr(model, "bridge", model)
    identity = getattr(model, "identity", None)
    to_dict = getattr(identity, "to_dict", None)
    model_info = to_dict() if callable(to_dict) else {"name": type(model).__name__}
    states = {} if states is None else states
    tasks: dict[Any, TokenizedTask] = {}  # circuits with the same task spec share prompts
    out = []
    for circuit in plan.circuits:
        with phase(f"circuit {circuit.name}", total=len(circuit.claims), unit="claims"):
            if isinstance(task_for, Mapping):
                task = task_for[circuit.name]
            else:
                if circuit.task not in tasks:
                    tasks[circuit.task] = task_for(circuit)
                task = tasks[circuit.task]
            key = (id(bridge), id(task), circuit.ablation, circuit.task.metric, engine)
            if key not in states:
                states[key] = prepare(
                    bridge, task, circuit.ablation, circuit.task.metric, batch_rows=batch_rows,
                    means_cache=means_cache, engine=engine,
                )  # fmt: skip
            result = evaluate_circuit(
                states[key], circuit, seed=plan.seed, n_boot=n_boot, level=level,
                handlers=handlers, model=model,
            )  # fmt: skip
        out.append(result)
    return EvaluationResult(
        source=plan.source, seed=plan.seed, model=model_info, versions=versions(),
        circuits=tuple(out), timings={"total_s": time.perf_counter() - t0},
    )  # fmt: skip
