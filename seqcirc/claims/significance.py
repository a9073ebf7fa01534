"""Claim handlers for the p-value claims (docs/statistics.md): the evaluator's
runs feed the tests of seqcirc.stats. A claim's value is its test's p-value.

- random_baseline: R random circuits with as many heads and MLPs (optionally per layer,
  optionally from the complement only), their performance ratios in batched passes; where
  there are no more than R such circuits, all of them, which makes p exact;
- knockout: the circuit knocked out (its nodes ablated, the rest kept) against R random
  node sets of its size knocked out (the paper's Llama-2 control);
- equivalence: per-prompt metric of C against M (Shi et al.);
- independence: per-prompt metric of the complement (C ablated, the rest kept) against M;
- sufficiency: loss |F(X) / F(M) - 1| of C against N random circuits of C's size;
- minimality_test: each node's knock-out effect in C against knocking one added node out
  of N inflated circuits (C plus a random path: one node outside C per layer).
Every circuit of a test goes through one batched run_circuits pass (a mask per circuit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.claims.context import ClaimContext, ClaimValue
from seqcirc.claims.faithfulness import faithfulness_of_masks, performance_ratio
from seqcirc.claims.measures import f_model
from seqcirc.engine.runner import node_mask, run_circuits
from seqcirc.errors import EvaluationError
from seqcirc.plan import Claim
from seqcirc.progress import phase
from seqcirc.stats.baseline import (
    RandomCircuits,
    count_other_circuits,
    enumerate_other_circuits,
    knockout_test,
    random_baseline_test,
    sample_random_circuits,
)
from seqcirc.stats.hsic import DEFAULT_PERMUTATIONS, independence_test
from seqcirc.stats.shi import (
    DEFAULT_EPSILON,
    DEFAULT_QUANTILE,
    equivalence_test,
    minimality_test,
    sufficiency_test,
)

DEFAULT_RANDOM = 200  # random circuits for the baseline
DEFAULT_SUFFICIENCY = 100  # random circuits for Shi et al.'s sufficiency test
DEFAULT_INFLATED = 100  # inflated circuits for Shi et al.'s minimality test


def _params(claim: Claim) -> dict[str, Any]:
    return dict(claim.params)


def _node_circuit(ctx: ClaimContext, what: str) -> None:
    if ctx.circuit.ablation.is_edge:
        raise EvaluationError(
            f"the {what} is measured for node circuits only in this version",
            code="E331",
            hint="state it on the node circuit the edges come from",
        )


def _value(test: Any, **detail: Any) -> ClaimValue:
    return ClaimValue(test.p_value, detail={**test.to_json(), **detail})


def _random_masks(
    ctx: ClaimContext,
    n: int,
    *,
    layer_matched: bool,
    complement_only: bool,
    exact_if_fewer: bool = False,
) -> RandomCircuits:
    """n random circuits of the circuit's size; with exact_if_fewer, every other circuit
    of that size instead when there are at most n (a small model: the exact p-value)."""
    w = ctx.state.weights
    size: dict[str, Any] = {
        "n_layers": w.n_layers, "n_heads": w.n_heads, "layer_matched": layer_matched,
        "complement_only": complement_only,
    }  # fmt: skip
    if exact_if_fewer and count_other_circuits(ctx.circuit.nodes, **size) <= n:
        return enumerate_other_circuits(ctx.circuit.nodes, seed=ctx.seed, **size)
    return sample_random_circuits(
        ctx.circuit.nodes, n_layers=w.n_layers, n_heads=w.n_heads, n_circuits=n,
        seed=ctx.seed, layer_matched=layer_matched, complement_only=complement_only,
    )  # fmt: skip


def _size_class(claim: Claim, ctx: ClaimContext, what: str, hint: str) -> RandomCircuits:
    """The random circuits of the claim's size class (`n`, `layer_matched`,
    `complement_only`; every one of them when there are at most n), E332 when empty."""
    p = _params(claim)
    draws = _random_masks(
        ctx, int(p.get("n", DEFAULT_RANDOM)),
        layer_matched=bool(p.get("layer_matched", False)),
        complement_only=bool(p.get("complement_only", False)), exact_if_fewer=True,
    )  # fmt: skip
    if draws.n_circuits == 0:
        raise EvaluationError(
            f"no other {what} has this circuit's size: there is nothing to compare it with",
            code="E332",
            hint=hint,
        )
    return draws


def random_baseline(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    _node_circuit(ctx, "random-circuit baseline")
    hint = "drop the layer-matched option, or compare a circuit that leaves more out"
    draws = _size_class(claim, ctx, "circuit", hint)
    f_model(ctx.state)  # F(M) = 0 is refused as for every relative measure (E312)
    observed = float(performance_ratio(ctx.m_circuit, ctx.state.m_model))
    with phase("random baseline", total=draws.n_circuits, unit="circuits"):
        values = faithfulness_of_masks(ctx.state, draws.masks)
    test = random_baseline_test(observed, values, seed=ctx.seed)
    return _value(
        test, observed=observed, random_values=values.tolist(), statistic_name="performance_ratio",
        exact=draws.exact,
    )  # fmt: skip


def knockout(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    _node_circuit(ctx, "knock-out test")
    draws = _size_class(
        claim, ctx, "node set", "drop the layer-matched option, or knock out a smaller circuit"
    )
    f_model(ctx.state)  # F(M) = 0 is refused as for every relative measure (E312)
    # keep-masks: everything but the circuit, and everything but each random set
    knocked = ~node_mask(ctx.state, ctx.circuit.nodes)
    masks = np.concatenate([knocked[None], ~draws.masks])
    with phase("knock-out test", total=len(masks), unit="circuits"):
        scores = faithfulness_of_masks(ctx.state, masks)
    observed, values = float(scores[0]), scores[1:]
    test = knockout_test(observed, values, seed=ctx.seed)
    return _value(
        test, observed=observed, random_values=values.tolist(),
        statistic_name="performance_ratio_knocked_out", exact=draws.exact,
    )  # fmt: skip


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
    f_model(ctx.state)  # F(M) = 0 is refused as for every relative measure (E312)
    loss_c = abs(float(performance_ratio(ctx.m_circuit, ctx.state.m_model)) - 1.0)
    with phase("sufficiency test", total=len(draws.masks), unit="circuits"):
        losses = np.abs(faithfulness_of_masks(ctx.state, draws.masks) - 1.0)
    test = sufficiency_test(loss_c, losses, q=float(p.get("q", DEFAULT_QUANTILE)), seed=ctx.seed)
    return _value(test, loss="|F(X)/F(M) - 1|", circuit_loss=loss_c)


def random_paths(
    circuit: NDArray[np.bool_], n_layers: int, n_heads: int, n: int, seed: int
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """N inflated circuits and the added node knocked out of each.

    A node circuit's "random path" (Shi et al. add a random input-to-output path of edges):
    in every layer, one node drawn uniformly from that layer's heads and MLP outside C
    (layers wholly inside C are passed through). Returns the inflated keep-masks [N, n_nodes]
    (C plus the path) and, per inflated circuit, the column of one path node drawn uniformly
    to knock out. Mask order of seqcirc.stats.baseline.
    """
    rng = np.random.default_rng(seed)
    outside = [
        np.flatnonzero(~circuit[[*range(layer * n_heads, (layer + 1) * n_heads),
                                 n_layers * n_heads + layer]])
        for layer in range(n_layers)
    ]  # fmt: skip
    if not any(o.size for o in outside):
        raise EvaluationError(
            "the minimality test adds random nodes outside the circuit, and the circuit "
            "is the whole model",
            code="E332",
            hint="state the test on a circuit that leaves some node out",
        )
    inflated = np.repeat(circuit[None], n, axis=0)
    knocked = np.empty(n, dtype=np.int64)
    for i in range(n):
        path = []
        for layer, cols in enumerate(outside):
            if cols.size:
                j = int(cols[rng.integers(cols.size)])  # index within the layer's H + 1 nodes
                path.append(layer * n_heads + j if j < n_heads else n_layers * n_heads + layer)
        inflated[i, path] = True
        knocked[i] = path[rng.integers(len(path))]
    return inflated, knocked


def minimality(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """Shi et al.'s minimality test on nodes: effect(v) = |F(C) - F(C \\ v)| / |F(M)| for
    each v in C against N reference effects |F(I) - F(I \\ u)| / |F(M)| (I inflated, u
    one added node); Holm across C's nodes (seqcirc.stats.shi.minimality_test)."""
    _node_circuit(ctx, "minimality test")
    p = _params(claim)
    n = int(p.get("n", DEFAULT_INFLATED))
    if n < 1:
        raise EvaluationError(f"minimality test: n = {n} inflated circuits", code="E332",
                              hint="n must be at least 1 (Shi et al. use 100)")  # fmt: skip
    w = ctx.state.weights
    nodes = sorted(ctx.circuit.nodes)
    base = node_mask(ctx.state, nodes)
    cols = [int(np.flatnonzero(node_mask(ctx.state, [v]))[0]) for v in nodes]
    inflated, knocked = random_paths(base, w.n_layers, w.n_heads, n, ctx.seed)
    without_v = np.repeat(base[None], len(nodes), axis=0)
    without_v[np.arange(len(nodes)), cols] = False
    without_u = inflated.copy()
    without_u[np.arange(n), knocked] = False
    # one batched pass: C, C \ v for every v, the inflated circuits, each minus its u
    masks = np.concatenate([base[None], without_v, inflated, without_u])
    with phase("minimality test", total=len(masks), unit="circuits"):
        f = run_circuits(ctx.state, masks)
    f = f.mean(axis=1)
    scale = abs(f_model(ctx.state))
    k = len(nodes)
    effects = np.abs(f[0] - f[1 : 1 + k]) / scale
    refs = np.abs(f[1 + k : 1 + k + n] - f[1 + k + n :]) / scale
    test = minimality_test(
        effects, refs, nodes=[str(v) for v in nodes], q=float(p.get("q", DEFAULT_QUANTILE)),
        seed=ctx.seed,
    )  # fmt: skip
    order = [str(v) for v in ctx.state.nodes]
    return _value(
        test,
        effect="|F(C) - F(C minus v)| / |F(M)|",
        node_effects=dict(zip(test.nodes, effects.tolist(), strict=True)),
        node_counts=dict(zip(test.nodes, test.counts, strict=True)),
        node_p_values=dict(zip(test.nodes, test.node_p_values, strict=True)),
        node_p_adjusted=dict(zip(test.nodes, test.node_p_adjusted, strict=True)),
        reference_effects=refs.tolist(),
        knocked_out=[order[i] for i in knocked],
        path="one node outside C per layer",
    )
