"""Random-circuit baselines (docs/statistics.md): pure index logic, no model.

Component order (the columns of every mask): heads layer-major, then MLPs —
index(L.H) = L * n_heads + H, index(mlpL) = n_layers * n_heads + L, so a model of
n_layers x n_heads has n_layers * (n_heads + 1) components. The evaluator turns a mask
batch [R, n_components] into R circuits evaluated together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from seqcirc.errors import InputError
from seqcirc.plan import Node
from seqcirc.stats._checks import as_scores, check_count, check_seed
from seqcirc.stats.results import TestResult


def n_components(n_layers: int, n_heads: int) -> int:
    return n_layers * (n_heads + 1)


def component_index(node: Node, n_layers: int, n_heads: int) -> int:
    """Column of `node` in a component mask (heads layer-major, then MLPs)."""
    if not 0 <= node.layer < n_layers or (node.head is not None and not 0 <= node.head < n_heads):
        raise InputError(
            f"node {node} is outside a model of {n_layers} layers x {n_heads} heads",
            code="E707",
            hint=f"layers are 0..{n_layers - 1}, heads 0..{n_heads - 1}",
        )
    if node.head is None:
        return n_layers * n_heads + node.layer
    return node.layer * n_heads + node.head


def component_nodes(n_layers: int, n_heads: int) -> tuple[Node, ...]:
    """Every component in mask order: Node(0, 0) ... Node(L-1, H-1), Node(0) ... Node(L-1)."""
    heads = [Node(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    return (*heads, *(Node(layer) for layer in range(n_layers)))


def circuit_mask(nodes: Iterable[Node], n_layers: int, n_heads: int) -> NDArray[np.bool_]:
    """Boolean mask [n_components] of a circuit; a node listed twice is an error."""
    mask = np.zeros(n_components(n_layers, n_heads), dtype=bool)
    for node in nodes:
        i = component_index(node, n_layers, n_heads)
        if mask[i]:
            raise InputError(
                f"node {node} is listed twice in the circuit",
                code="E707",
                hint="list each head and MLP once",
            )
        mask[i] = True
    return mask


def mask_nodes(mask: ArrayLike, n_layers: int, n_heads: int) -> tuple[Node, ...]:
    """Inverse of circuit_mask: the nodes set in one mask row, in mask order."""
    row = np.asarray(mask, dtype=bool)
    order = component_nodes(n_layers, n_heads)
    return tuple(order[i] for i in np.flatnonzero(row))


@dataclass(frozen=True)
class RandomCircuits:
    """R random circuits as a boolean mask batch [R, n_components] (mask order above)."""

    masks: NDArray[np.bool_] = field(compare=False, repr=False)
    n_layers: int
    n_heads: int
    seed: int
    layer_matched: bool
    complement_only: bool
    n_circuit_heads: int
    n_circuit_mlps: int
    exact: bool = False  # every other circuit of the size, not a random draw

    @property
    def n_circuits(self) -> int:
        return int(self.masks.shape[0])

    def nodes(self, r: int) -> tuple[Node, ...]:
        return mask_nodes(self.masks[r], self.n_layers, self.n_heads)


def _draw_subsets(
    masks: NDArray[np.bool_], pool: NDArray[np.intp], k: int, rng: np.random.Generator
) -> None:
    """Set k distinct columns from `pool` in every row: the k smallest of iid uniform keys
    form a uniform k-subset, drawn for all rows at once."""
    if k == 0:
        return
    rows = masks.shape[0]
    if k == pool.size:
        masks[:, pool] = True
        return
    keys = rng.random((rows, pool.size))
    chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
    masks[np.arange(rows)[:, None], pool[chosen]] = True


Group = tuple[NDArray[np.intp], int, str]  # (pool of columns, how many to draw, what)


def _size_class(
    circuit: Iterable[Node],
    n_layers: int,
    n_heads: int,
    layer_matched: bool,
    complement_only: bool,
) -> tuple[list[Group], NDArray[np.bool_]]:
    """The circuits "of the same size" as draws from pools: heads and MLPs (or per layer),
    from the whole model or the complement only; and the circuit's own mask."""
    n_layers = check_count(n_layers, "n_layers")
    n_heads = check_count(n_heads, "n_heads")
    in_circuit = circuit_mask(circuit, n_layers, n_heads)
    n_head_cols = n_layers * n_heads
    head_in = in_circuit[:n_head_cols].reshape(n_layers, n_heads)
    mlp_in = in_circuit[n_head_cols:]

    # (pool of columns, how many to draw) in a fixed order, so the draw is reproducible.
    groups: list[Group] = []
    all_heads = np.arange(n_head_cols).reshape(n_layers, n_heads)
    all_mlps = np.arange(n_head_cols, n_head_cols + n_layers)
    if layer_matched:
        for layer in range(n_layers):
            pool = all_heads[layer]
            if complement_only:
                pool = pool[~head_in[layer]]
            groups.append((pool, int(head_in[layer].sum()), f"heads of layer {layer}"))
        for layer in range(n_layers):
            pool = all_mlps[layer : layer + 1]
            if complement_only:
                pool = pool[~mlp_in[layer : layer + 1]]
            groups.append((pool, int(mlp_in[layer]), f"the MLP of layer {layer}"))
    else:
        head_pool, mlp_pool = all_heads.ravel(), all_mlps
        if complement_only:
            head_pool, mlp_pool = head_pool[~head_in.ravel()], mlp_pool[~mlp_in]
        groups.append((head_pool, int(head_in.sum()), "heads"))
        groups.append((mlp_pool, int(mlp_in.sum()), "MLPs"))

    for pool, k, what in groups:
        if k > pool.size:
            raise InputError(
                f"cannot draw {k} of {what} from {pool.size} available"
                + (" outside the circuit" if complement_only else ""),
                code="E706",
                hint="drop the complement-only or layer-matched option for this circuit",
            )
    return groups, in_circuit


def count_other_circuits(
    circuit: Iterable[Node],
    *,
    n_layers: int,
    n_heads: int,
    layer_matched: bool = False,
    complement_only: bool = False,
) -> int:
    """How many circuits of the same size there are besides `circuit` itself."""
    groups, _ = _size_class(circuit, n_layers, n_heads, layer_matched, complement_only)
    total = math.prod(math.comb(int(pool.size), k) for pool, k, _ in groups)
    return total if complement_only else total - 1


def enumerate_other_circuits(
    circuit: Iterable[Node],
    *,
    n_layers: int,
    n_heads: int,
    layer_matched: bool = False,
    complement_only: bool = False,
    seed: int = 0,
) -> RandomCircuits:
    """Every circuit of the same size except `circuit` itself, in a fixed order.

    Scored in place of random draws when there are no more of them than draws asked for:
    then (1 + #{other >= observed}) / (N + 1) is the exact p-value of the circuit's rank
    among all circuits of its size (the circuit itself is the 1), with no sampling error.
    """
    groups, in_circuit = _size_class(circuit, n_layers, n_heads, layer_matched, complement_only)
    per_group = [list(itertools.combinations(pool.tolist(), k)) for pool, k, _ in groups]
    rows = []
    for choice in itertools.product(*per_group):
        mask = np.zeros(in_circuit.size, dtype=bool)
        for cols in choice:
            mask[list(cols)] = True
        if complement_only or not np.array_equal(mask, in_circuit):
            rows.append(mask)
    masks = np.array(rows, dtype=bool).reshape(len(rows), in_circuit.size)
    n_head_cols = n_layers * n_heads
    return RandomCircuits(
        masks=masks,
        n_layers=n_layers,
        n_heads=n_heads,
        seed=check_seed(seed),
        layer_matched=layer_matched,
        complement_only=complement_only,
        n_circuit_heads=int(in_circuit[:n_head_cols].sum()),
        n_circuit_mlps=int(in_circuit[n_head_cols:].sum()),
        exact=True,
    )


def sample_random_circuits(
    circuit: Iterable[Node],
    *,
    n_layers: int,
    n_heads: int,
    n_circuits: int,
    seed: int,
    layer_matched: bool = False,
    complement_only: bool = False,
) -> RandomCircuits:
    """Draw `n_circuits` circuits with as many heads and MLPs as `circuit`.

    layer_matched: match the count of heads and of MLPs in every layer.
    complement_only: draw only components outside `circuit`.
    Circuits are drawn independently (the same circuit may come up twice, and may equal
    `circuit` unless complement_only): that is what makes the baseline p-value valid.
    """
    seed = check_seed(seed)
    n_circuits = check_count(n_circuits, "n_circuits")
    groups, in_circuit = _size_class(circuit, n_layers, n_heads, layer_matched, complement_only)
    head_in = in_circuit[: n_layers * n_heads]
    mlp_in = in_circuit[n_layers * n_heads :]
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_circuits, n_components(n_layers, n_heads)), dtype=bool)
    for pool, k, _ in groups:
        _draw_subsets(masks, pool, k, rng)
    return RandomCircuits(
        masks=masks,
        n_layers=n_layers,
        n_heads=n_heads,
        seed=seed,
        layer_matched=layer_matched,
        complement_only=complement_only,
        n_circuit_heads=int(head_in.sum()),
        n_circuit_mlps=int(mlp_in.sum()),
    )


def sample_subset_masks(
    n_items: int,
    k: int,
    *,
    n_draws: int,
    seed: int,
    exclude: ArrayLike | None = None,
) -> NDArray[np.bool_]:
    """`n_draws` independent uniform k-subsets of n_items (e.g. the edges of an edge
    circuit's model) as masks [n_draws, n_items]; `exclude` (a boolean mask) limits the
    draw to the other items (complement-only)."""
    seed = check_seed(seed)
    n_items = check_count(n_items, "n_items")
    n_draws = check_count(n_draws, "n_draws")
    k = check_count(k, "k", minimum=0)
    pool = np.arange(n_items)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=bool)
        if excluded.shape != (n_items,):
            raise InputError(
                f"exclude must be a boolean mask of {n_items} items, got shape {excluded.shape}",
                code="E703",
                hint="pass one flag per item",
            )
        pool = pool[~excluded]
    if k > pool.size:
        raise InputError(
            f"cannot draw {k} of {pool.size} available items",
            code="E706",
            hint="draw fewer items, or allow items of the circuit (not complement-only)",
        )
    masks = np.zeros((n_draws, n_items), dtype=bool)
    _draw_subsets(masks, pool, k, np.random.default_rng(seed))
    return masks


def random_baseline_p(observed: float, random_values: Sequence[float] | ArrayLike) -> float:
    """p = (1 + #{random >= observed}) / (R + 1): never 0, exact under exchangeability."""
    values = as_scores(random_values, "random_values")
    obs = as_scores([observed], "observed")[0]
    return float((1 + np.count_nonzero(values >= obs)) / (values.size + 1))


def knockout_test(observed: float, random_values: ArrayLike, *, seed: int) -> TestResult:
    """Knocking out the circuit against knocking out random node sets of its size.

    `observed` is F(M without C)/F(M), `random_values` F(M without R)/F(M) for random R
    of C's size drawn with `seed`. H0: knocking out C lowers the score no more than
    knocking out a random set does: the random baseline with the comparison flipped,
    p = (1 + #{random <= observed}) / (R + 1).
    """
    test = random_baseline_test(observed, random_values, seed=seed, higher_is_better=False)
    return replace(
        test, test="knockout", params=(),
        rejection_means="knocking the circuit out costs more than knocking out random sets",
    )  # fmt: skip


def random_baseline_test(
    observed: float, random_values: ArrayLike, *, seed: int, higher_is_better: bool = True
) -> TestResult:
    """The random-circuit baseline as a test: H0 the circuit is no better than a random one.

    `random_values` are the statistic (e.g. faithfulness) of the random circuits drawn with
    `seed`; the distribution is kept for plots. With higher_is_better=False (a loss), the
    comparison is flipped: p = (1 + #{random <= observed}) / (R + 1).
    """
    seed = check_seed(seed)
    values = as_scores(random_values, "random_values")
    sign = 1.0 if higher_is_better else -1.0
    p = random_baseline_p(sign * float(observed), sign * values)
    return TestResult(
        test="random_baseline",
        statistic=float(observed),
        p_value=p,
        n=int(values.size),
        params=(("higher_is_better", higher_is_better),),
        seed=seed,
        rejection_means="the circuit beats random circuits of its size",
        null_distribution=values,
    )
