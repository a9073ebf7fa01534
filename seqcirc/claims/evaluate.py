"""Evaluate a compiled plan against a model: prepare once per (task, ablation, metric),
run each circuit, check each claim, and return an EvaluationResult.

Claim kinds measured here: faithfulness (the performance ratio), normalized_faithfulness,
completeness and minimality. Other kinds are measured by handlers passed in `handlers`
(kind -> function): seqcirc.claims.significance.HANDLERS gives random_baseline, equivalence,
independence, sufficiency and Shi et al.'s minimality_test; seqcirc.usecases.session adds role
claims. A claim with no handler is reported as "skipped", never as passed. Each claim's
random draws use its own seed, derived from the plan's seed, the circuit's name and what
the claim measures (its kind and arguments; not its line or threshold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.claims.measures import completeness, edge_minimality, minimality
from seqcirc.engine.edges import check_live_edges, edge_mask, run_edges
from seqcirc.engine.metric import faithfulness
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import EvalState, check_live, empty_metric, node_mask, run_circuits
from seqcirc.errors import SeqcircError
from seqcirc.language.vocab import COMPARISONS
from seqcirc.plan import CircuitPlan, Claim, Plan, to_jsonable
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult, Verdict, versions
from seqcirc.stats.seeds import derive_seed
from seqcirc.tasks.types import TokenizedTask

__all__ = [
    "ClaimContext",
    "ClaimValue",
    "evaluate_circuit",
    "evaluate_plan",
    "prepare",
    "run_circuits",
    "run_edges",
]

GREEDY_STEPS = 3  # the greedy search for the worst K adds up to this many nodes


@dataclass(frozen=True)
class ClaimValue:
    """What a claim handler measured."""

    value: float
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    per_prompt: tuple[float, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ClaimContext:
    """What a claim handler gets: the prepared state, the circuit, its per-prompt values."""

    state: EvalState
    circuit: CircuitPlan
    seed: int
    m_circuit: NDArray[np.float64]
    n_boot: int
    level: float


ClaimHandler = Callable[[Claim, ClaimContext], ClaimValue]


def _param(claim: Claim, key: str, default: Any) -> Any:
    return dict(claim.params).get(key, default)


def _faithfulness_claim(variant: str) -> ClaimHandler:
    def handle(claim: Claim, ctx: ClaimContext) -> ClaimValue:
        st = ctx.state
        empty = empty_metric(st) if variant == "normalized_faithfulness" else None
        f = faithfulness(
            variant, st.metric, ctx.m_circuit, st.m_model, empty,
            seed=ctx.seed, level=ctx.level, n_boot=ctx.n_boot,
        )  # fmt: skip
        return ClaimValue(
            f.value, f.lower, f.upper, f.level, tuple(ctx.m_circuit.tolist()),
            {"variant": variant, "metric": st.metric, "mean_circuit": f.mean_circuit,
             "mean_model": f.mean_model, "mean_empty": f.mean_empty, "seed": f.seed,
             "n_boot": f.n_boot},
        )  # fmt: skip

    return handle


def _completeness_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
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
    statistic = _param(claim, "statistic", "worst")
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


def _minimality_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """The weakest component's score: every component must matter at least this much."""
    if ctx.circuit.ablation.is_edge:
        per_edge = edge_minimality(ctx.state, ctx.circuit.edges)
        scores = {name: abs(v) for name, v in per_edge}
        return ClaimValue(min(scores.values()), detail={"per_edge": dict(per_edge)})
    entries = minimality(ctx.state, ctx.circuit.nodes, dict(ctx.circuit.groups))
    return ClaimValue(
        min(e.score for e in entries),
        detail={
            "per_node": {
                e.node: {"drop_alone": e.drop_alone, "group": e.group,
                         "drop_in_group": e.drop_in_group, "score": e.score}
                for e in entries
            }
        },
    )  # fmt: skip


BUILTIN_HANDLERS: dict[str, ClaimHandler] = {
    "faithfulness": _faithfulness_claim("performance_ratio"),
    "normalized_faithfulness": _faithfulness_claim("normalized_faithfulness"),
    "completeness": _completeness_claim,
    "minimality": _minimality_claim,
}


def _check_claim(claim: Claim, ctx: ClaimContext, handler: ClaimHandler | None) -> ClaimResult:
    base: dict[str, Any] = {
        "id": claim.id, "kind": claim.kind, "text": claim.text, "line": claim.line,
        "col": claim.col, "op": claim.op, "threshold": claim.threshold, "bound": claim.bound,
    }  # fmt: skip
    if handler is None:
        return ClaimResult(
            **base, verdict="skipped",
            message=f"no evaluator for claim kind {claim.kind!r} was given to this run",
        )  # fmt: skip
    # Each claim draws from its own stream: adding a claim never changes another's numbers.
    # The stream follows what the claim measures, not where it stands (its id holds the
    # line), so editing a comment above a claim or its threshold never changes its p-value.
    base["seed"] = derive_seed(ctx.seed, ctx.circuit.name, claim_key(claim))
    try:
        got = handler(claim, replace(ctx, seed=base["seed"]))
    except SeqcircError as err:
        return ClaimResult(**base, verdict="error", message=f"[{err.code}] {err.message}")
    compared = {"point": got.value, "lower": got.lower, "upper": got.upper}[claim.bound]
    if compared is None:
        return ClaimResult(
            **base, verdict="error", value=got.value, detail=got.detail,
            message=f"this measure has no {claim.bound} confidence bound",
        )  # fmt: skip
    verdict: Verdict = "pass" if COMPARISONS[claim.op](compared, claim.threshold) else "fail"
    return ClaimResult(
        **base, verdict=verdict, value=got.value, lower=got.lower, upper=got.upper,
        level=got.level, compared=compared, per_prompt=got.per_prompt, detail=got.detail,
    )  # fmt: skip


def evaluate_circuit(
    state: EvalState,
    circuit: CircuitPlan,
    *,
    seed: int = 0,
    n_boot: int = 10_000,
    level: float = 0.95,
    handlers: Mapping[str, ClaimHandler] | None = None,
) -> CircuitResult:
    """Run one circuit on a prepared state and check its claims."""
    t0 = time.perf_counter()
    rows0 = state.forward_rows
    if circuit.ablation.is_edge:
        keep = edge_mask(state, circuit.edges)
        check_live_edges(state, keep)
        m_circuit = run_edges(state, keep)
    else:
        mask = node_mask(state, circuit.nodes)
        check_live(state, mask)
        m_circuit = run_circuits(state, mask[None])[0]
    m_empty = empty_metric(state)
    t_run = time.perf_counter() - t0
    ctx = ClaimContext(state, circuit, seed, m_circuit, n_boot, level)
    table = {**BUILTIN_HANDLERS, **(handlers or {})}
    claims = tuple(_check_claim(c, ctx, table.get(c.kind)) for c in circuit.claims)
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
    dead = [str(v) for v, c in zip(state.nodes, state.output_change, strict=True) if c == 0]
    task = state.task
    warnings = [
        f"intervening on {v} changes nothing (its replacement equals its activation)"
        for v in dead
        if v not in map(str, circuit.nodes)
    ]
    if circuit.ablation.per_position_means and len(set(task.answer_pos.tolist())) > 1:
        warnings.append(
            "prompts put the answer at different positions: per-position means mix "
            "tokens of different roles"
        )
    words = circuit.ablation.describe(task.name, task.n_prompts)
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
              "meta": to_jsonable(dict(task.meta))},
        metric=state.metric, f_model=float(state.m_model.mean()),
        f_circuit=float(m_circuit.mean()), f_empty=float(m_empty.mean()),
        per_prompt={"model": state.m_model.tolist(), "circuit": m_circuit.tolist(),
                    "empty": m_empty.tolist()},
        faithfulness=faith, claims=claims,
        checks={"bridge_max_abs_diff": state.bridge_max_abs_diff, "dead_nodes": dead,
                **({"means_cache": state.means_cache} if state.means_cache else {})},
        timings={**state.timings, "circuit_s": t_run,
                 "claims_s": time.perf_counter() - t0 - t_run},
        forward_rows=state.forward_rows - rows0,
        warnings=tuple(warnings),
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
    states: dict[tuple[int, int, Any, str], EvalState] | None = None,
    means_cache: Any = None,
) -> EvaluationResult:
    """Every circuit of a plan. `model` is a seqcirc.models.load.LoadedModel (or a bare
    TransformerBridge); `task_for` gives each circuit's tokenized task (or maps names).
    `states`: a cache of prepared states to share across calls (a session keeps one, so
    corrupted means are computed once per model, task and ablation set-up).
    `means_cache`: a seqcirc.engine.means_cache.MeansCache, to keep mean-ablation values on disk
    across processes."""
    t0 = time.perf_counter()
    bridge = getattr(model, "bridge", model)
    identity = getattr(model, "identity", None)
    to_dict = getattr(identity, "to_dict", None)
    model_info = to_dict() if callable(to_dict) else {"name": type(model).__name__}
    states = {} if states is None else states
    tasks: dict[Any, TokenizedTask] = {}  # circuits with the same task spec share prompts
    out = []
    for circuit in plan.circuits:
        if isinstance(task_for, Mapping):
            task = task_for[circuit.name]
        else:
            if circuit.task not in tasks:
                tasks[circuit.task] = task_for(circuit)
            task = tasks[circuit.task]
        key = (id(bridge), id(task), circuit.ablation, circuit.task.metric)
        if key not in states:
            states[key] = prepare(
                bridge, task, circuit.ablation, circuit.task.metric, batch_rows=batch_rows,
                means_cache=means_cache,
            )  # fmt: skip
        out.append(
            evaluate_circuit(
                states[key],
                circuit,
                seed=plan.seed,
                n_boot=n_boot,
                level=level,
                handlers=handlers,
            )
        )
    return EvaluationResult(
        source=plan.source, seed=plan.seed, model=model_info, versions=versions(),
        circuits=tuple(out), timings={"total_s": time.perf_counter() - t0},
    )  # fmt: skip
