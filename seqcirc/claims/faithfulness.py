"""The two faithfulness variants (docs/statistics.md), their bootstrap intervals, and the
faithfulness claim.

Faithfulness is a ratio of means over prompts (never a mean of per-prompt ratios) and is
never clamped; its paired bootstrap interval comes from seqcirc.stats.bootstrap and costs
no forward pass. The ratios take the per-prompt metric of one circuit [n] or of R circuits
over the same prompts [R, n]: a circuit's claim and the random baseline's R circuits are
one computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from seqcirc.claims.context import ClaimContext, ClaimHandler, ClaimValue
from seqcirc.engine.runner import EvalState, empty_metric, run_circuits
from seqcirc.errors import EvaluationError
from seqcirc.plan import Claim


@dataclass(frozen=True)
class Faithfulness:
    """One faithfulness variant: point value, paired bootstrap interval, and its inputs."""

    variant: str  # "performance_ratio" | "normalized_faithfulness"
    metric: str
    value: float
    lower: float
    upper: float
    level: float
    n_boot: int
    seed: int
    n_prompts: int
    mean_circuit: float  # E m(C)
    mean_model: float  # E m(M)
    mean_empty: float | None  # E m(empty), for the normalized variant


def performance_ratio(
    m_circuit: NDArray[np.float64], m_model: NDArray[np.float64]
) -> NDArray[np.float64]:
    """F(C)/F(M), F = E m over prompts (the last axis): a ratio of means."""
    den = float(np.mean(m_model))
    if den == 0.0:
        raise EvaluationError(
            "the full model's mean metric is exactly 0: the performance ratio is undefined",
            code="E312",
            hint="use normalized faithfulness (and for kl, which is 0 for the full model)",
        )
    return np.asarray(np.mean(m_circuit, axis=-1) / den)


def normalized_faithfulness(
    m_circuit: NDArray[np.float64], m_model: NDArray[np.float64], m_empty: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(E m(C) - E m(empty)) / (E m(M) - E m(empty)), means over the last axis; may leave
    [0, 1]."""
    f_empty = float(np.mean(m_empty))
    den = float(np.mean(m_model)) - f_empty
    if den == 0.0:
        raise EvaluationError(
            "the full model and the empty circuit score the same on average: "
            "normalized faithfulness is undefined",
            code="E312",
            hint="check the corruption and the metric: ablating everything changes nothing",
        )
    return np.asarray((np.mean(m_circuit, axis=-1) - f_empty) / den)


def _ratio(
    variant: str,
    m_circuit: NDArray[np.float64],
    m_model: NDArray[np.float64],
    m_empty: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    if variant == "performance_ratio":
        return performance_ratio(m_circuit, m_model)
    if variant == "normalized_faithfulness":
        if m_empty is None:
            raise EvaluationError("normalized faithfulness needs m(empty)", code="E311")
        return normalized_faithfulness(m_circuit, m_model, m_empty)
    raise EvaluationError(f"unknown faithfulness variant {variant!r}", code="E311")


def faithfulness(
    variant: str,
    metric: str,
    m_circuit: NDArray[np.float64],
    m_model: NDArray[np.float64],
    m_empty: NDArray[np.float64] | None,
    *,
    seed: int,
    level: float = 0.95,
    n_boot: int = 10_000,
) -> Faithfulness:
    """A faithfulness variant with its paired bootstrap interval over prompts."""
    from seqcirc.stats.bootstrap import normalized_faithfulness_ci, performance_ratio_ci

    if variant == "performance_ratio" and metric in ("kl", "logprob"):
        raise EvaluationError(
            "the performance ratio is undefined for kl (the full model's kl is 0)"
            if metric == "kl"
            else "the performance ratio of logprob would grow as the circuit gets worse (its "
            "0 is certainty, not chance)",
            code="E312",
            hint=f"claim normalized faithfulness for {metric}",
        )
    value = float(_ratio(variant, m_circuit, m_model, m_empty))
    if variant == "performance_ratio":
        ci = performance_ratio_ci(m_circuit, m_model, seed=seed, level=level, n_boot=n_boot)
    else:
        assert m_empty is not None  # _ratio refused the normalized variant without it
        ci = normalized_faithfulness_ci(
            m_circuit, m_model, m_empty, seed=seed, level=level, n_boot=n_boot
        )
    return Faithfulness(
        variant=variant,
        metric=metric,
        value=value,
        lower=ci.lower,
        upper=ci.upper,
        level=level,
        n_boot=n_boot,
        seed=seed,
        n_prompts=len(m_circuit),
        mean_circuit=float(np.mean(m_circuit)),
        mean_model=float(np.mean(m_model)),
        mean_empty=None if m_empty is None else float(np.mean(m_empty)),
    )


def faithfulness_of_masks(
    state: EvalState, masks: NDArray[np.bool_], variant: str = "performance_ratio"
) -> NDArray[np.float64]:
    """Faithfulness [R] of R node circuits given as keep-masks [R, n_nodes] (mask order of
    seqcirc.stats.baseline), in one batched pass: the random-circuit baseline's values."""
    m_empty = empty_metric(state, "node") if variant == "normalized_faithfulness" else None
    return _ratio(variant, run_circuits(state, masks), state.m_model, m_empty)


def faithfulness_claim(variant: str) -> ClaimHandler:
    """The handler of `expect faithfulness(...)`: the variant's value and its interval."""

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
