"""The binomial tests of Shi et al. 2024, "Hypothesis testing the circuit hypothesis in
LLMs", as docs/statistics.md defines them: equivalence, minimality and sufficiency (independence,
a permutation test, lives in hsic.py).

Each takes already-measured per-prompt scores or per-circuit effects and returns a
TestResult whose p-value is a float computed exactly from the binomial distribution.
Differences from the reference implementation (blei-lab/circuitry) are listed in
docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom

from seqcirc.errors import InputError
from seqcirc.stats._checks import as_scores, check_open_unit, check_seed, same_length
from seqcirc.stats.multiple import holm_adjust
from seqcirc.stats.results import TestResult

DEFAULT_EPSILON = 0.1
DEFAULT_QUANTILE = 0.9


def _seed_or_none(seed: int | None) -> int | None:
    return None if seed is None else check_seed(seed)


def equivalence_p_value(k: int, n: int, epsilon: float) -> float:
    """P_{K~Bin(n, 1/2+eps)}(|K/n - 1/2| >= |k/n - 1/2|), exactly.

    In counts, |2K - n| >= |2k - n|, i.e. K >= max(k, n-k) or K <= min(k, n-k); when
    k = n - k the event is certain.
    """
    lo, hi = min(k, n - k), max(k, n - k)
    if lo == hi:
        return 1.0
    p = 0.5 + epsilon
    return float(binom.cdf(lo, n, p) + binom.sf(hi - 1, n, p))


def equivalence_test(
    circuit: ArrayLike,
    model: ArrayLike,
    *,
    epsilon: float = DEFAULT_EPSILON,
    seed: int | None = None,
) -> TestResult:
    """Equivalence: Delta_i = s(C, x_i) - s(M, x_i); p-hat = share of prompts with Delta_i > 0.

    H0: |P(Delta > 0) - 1/2| <= epsilon (the circuit and the model are equally likely to
    win on a prompt); p = P_{K~Bin(n, 1/2+eps)}(|K/n - 1/2| >= |p-hat - 1/2|).
    Rejecting H0 says the circuit is *not* equivalent to the model. Ties (Delta_i = 0)
    count as "not > 0", as defined; their number is recorded.
    """
    epsilon = check_open_unit(epsilon, "epsilon", high=0.5)
    c = as_scores(circuit, "circuit")
    m = as_scores(model, "model")
    n = same_length(circuit=c, model=m)
    delta = c - m
    n_ties = int(np.count_nonzero(delta == 0.0))
    if n_ties == n:
        raise InputError(
            "equivalence: the circuit and the model score identically on every prompt, so "
            "P(Delta > 0) is not estimable (every Delta is 0)",
            code="E708",
            hint="the circuit reproduces the model exactly; the equivalence test is moot here",
        )
    k = int(np.count_nonzero(delta > 0.0))
    return TestResult(
        test="equivalence",
        statistic=k / n,
        p_value=equivalence_p_value(k, n, epsilon),
        n=n,
        params=(("epsilon", epsilon), ("n_positive", k), ("n_ties", n_ties)),
        seed=_seed_or_none(seed),
        rejection_means="the circuit is not equivalent to the model",
    )


def sufficiency_test(
    circuit_loss: float,
    random_losses: ArrayLike,
    *,
    q: float = DEFAULT_QUANTILE,
    seed: int | None = None,
) -> TestResult:
    """Sufficiency: k = #{random circuits with loss >= loss(C)} out of N (same size as C).

    H0: P(loss(random) >= loss(C)) <= q; one-sided p = P_{K~Bin(N, q)}(K >= k).
    Rejecting H0 says C is more faithful than the q-quantile of random circuits.
    `seed` is the seed the random circuits were drawn with.
    """
    q = check_open_unit(q, "q")
    losses = as_scores(random_losses, "random_losses")
    loss_c = as_scores([circuit_loss], "circuit_loss")[0]
    n = int(losses.size)
    k = int(np.count_nonzero(losses >= loss_c))
    return TestResult(
        test="sufficiency",
        statistic=float(k),
        p_value=float(binom.sf(k - 1, n, q)),
        n=n,
        params=(("q", q), ("circuit_loss", float(loss_c))),
        seed=_seed_or_none(seed),
        rejection_means="the circuit is more faithful than the q-quantile of random circuits",
        null_distribution=losses,
    )


@dataclass(frozen=True)
class MinimalityResult(TestResult):
    """Minimality with one binomial test per node; p_value is the smallest Holm-adjusted
    node p-value (reject "every node is needed" when any node fails)."""

    nodes: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    node_p_values: tuple[float, ...] = ()
    node_p_adjusted: tuple[float, ...] = ()


def minimality_test(
    node_effects: ArrayLike,
    reference_effects: ArrayLike,
    *,
    nodes: Sequence[str] | None = None,
    q: float = DEFAULT_QUANTILE,
    seed: int | None = None,
) -> MinimalityResult:
    """Minimality: for each node v of C, k_v = #{reference effects strictly below v's effect}.

    Reference effects: knocking one added edge/node out of N inflated circuits (C plus a
    random path). H0 for v: P(effect(v) > reference) >= q; one-sided
    p_v = P_{K~Bin(N, q)}(K <= k_v). Rejecting says v is no more important than random
    additions, i.e. C is not minimal. Node p-values are Holm-adjusted across the nodes.
    `seed` is the seed the inflated circuits were drawn with.
    """
    q = check_open_unit(q, "q")
    effects = as_scores(node_effects, "node_effects")
    refs = as_scores(reference_effects, "reference_effects")
    labels = tuple(str(i) for i in range(effects.size)) if nodes is None else tuple(nodes)
    if len(labels) != effects.size:
        raise InputError(
            f"minimality: {len(labels)} node names for {effects.size} node effects",
            code="E703",
            hint="pass one name per node effect, in the same order",
        )
    n = int(refs.size)
    counts = (refs[None, :] < effects[:, None]).sum(axis=1)
    p_raw = binom.cdf(counts, n, q)
    p_adj = holm_adjust(p_raw)
    weakest = int(np.argmin(counts))
    return MinimalityResult(
        test="minimality",
        statistic=float(counts[weakest]),
        p_value=float(p_adj.min()),
        n=n,
        params=(("q", q), ("weakest_node", labels[weakest]), ("n_nodes", len(labels))),
        seed=_seed_or_none(seed),
        rejection_means="some node of the circuit matters no more than random additions",
        null_distribution=refs,
        nodes=labels,
        counts=tuple(int(c) for c in counts),
        node_p_values=tuple(float(p) for p in p_raw),
        node_p_adjusted=tuple(float(p) for p in p_adj),
    )
