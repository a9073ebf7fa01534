"""Claim handlers for the p-value claims (metrics.md, "Significance"): the evaluator's
runs feed the tests of seqcirc.stats. A claim's value is its test's p-value.

- random_baseline: R random circuits with as many heads and MLPs (optionally per layer,
  optionally from the complement only), their performance ratios in batched passes;
- equivalence: per-prompt metric of C against M (Shi et al.);
- independence: per-prompt metric of the complement (C ablated, the rest kept) against M;
- sufficiency: loss |F(X) / F(M) - 1| of C against N random circuits of C's size.
Shi et al.'s minimality test (inflated circuits with random paths) is not measured here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqcirc.errors import EvaluationError
from seqcirc.evaluation import ClaimContext, ClaimValue
from seqcirc.measures import f_model, faithfulness_of_masks
from seqcirc.plan import Claim
from seqcirc.runner import node_mask, run_circuits
from seqcirc.stats.baseline import RandomCircuits, random_baseline_test, sample_random_circuits
from seqcirc.stats.hsic import DEFAULT_PERMUTATIONS, independence_test
from seqcirc.stats.shi import DEFAULT_EPSILON, DEFAULT_QUANTILE, equivalence_test, sufficiency_test

DEFAULT_RANDOM = 200  # random circuits for the baseline
DEFAULT_SUFFICIENCY = 100  # random circuits for Shi et al.'s sufficiency test


def _params(claim: Claim) -> dict[str, Any]:
    return dict(claim.params)


def _node_circuit(ctx: ClaimContext, what: str) -> None:
    if ctx.circuit.ablation.granularity != "node":
        raise EvaluationError(
            f"the {what} is measured for node circuits only in this version",
            code="E331",
            hint="state it on the node circuit the edges come from",
        )


def _value(test: Any, **detail: Any) -> ClaimValue:
    return ClaimValue(test.p_value, detail={**test.to_json(), **detail})


def _random_masks(
    ctx: ClaimContext, n: int, *, layer_matched: bool, complement_only: bool
) -> RandomCircuits:
    w = ctx.state.weights
    return sample_random_circuits(
        ctx.circuit.nodes, n_layers=w.n_layers, n_heads=w.n_heads, n_circuits=n,
        seed=ctx.seed, layer_matched=layer_matched, complement_only=complement_only,
    )  # fmt: skip


def random_baseline(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    _node_circuit(ctx, "random-circuit baseline")
    p = _params(claim)
    draws = _random_masks(
        ctx, int(p.get("n", DEFAULT_RANDOM)),
        layer_matched=bool(p.get("layer_matched", False)),
        complement_only=bool(p.get("complement_only", False)),
    )  # fmt: skip
    observed = float(np.mean(ctx.m_circuit)) / f_model(ctx.state)
    values = faithfulness_of_masks(ctx.state, draws.masks)
    test = random_baseline_test(observed, values, seed=ctx.seed)
    return _value(
        test, observed=observed, random_values=values.tolist(), statistic_name="performance_ratio"
    )


def equivalence(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    eps = float(_params(claim).get("epsilon", DEFAULT_EPSILON))
    return _value(equivalence_test(ctx.m_circuit, ctx.state.m_model, epsilon=eps))


def independence(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    _node_circuit(ctx, "independence test")
    perms = int(_params(claim).get("permutations", DEFAULT_PERMUTATIONS))
    complement = ~node_mask(ctx.state, ctx.circuit.nodes)
    m_complement = run_circuits(ctx.state, complement[None])[0]
    test = independence_test(m_complement, ctx.state.m_model, seed=ctx.seed, n_permutations=perms)
    return _value(test, complement_per_prompt=m_complement.tolist())


def sufficiency(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    _node_circuit(ctx, "sufficiency test")
    p = _params(claim)
    draws = _random_masks(
        ctx, int(p.get("n", DEFAULT_SUFFICIENCY)), layer_matched=False, complement_only=False
    )
    loss_c = abs(float(np.mean(ctx.m_circuit)) / f_model(ctx.state) - 1.0)
    losses = np.abs(faithfulness_of_masks(ctx.state, draws.masks) - 1.0)
    test = sufficiency_test(loss_c, losses, q=float(p.get("q", DEFAULT_QUANTILE)), seed=ctx.seed)
    return _value(test, loss="|F(X)/F(M) - 1|", circuit_loss=loss_c)


HANDLERS = {
    "random_baseline": random_baseline,
    "equivalence": equivalence,
    "independence": independence,
    "sufficiency": sufficiency,
}
