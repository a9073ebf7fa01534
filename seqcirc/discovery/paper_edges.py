"""The authors' edge pruning (Lan, Torr & Barez 2024; their `iter_edge_pruning`): every
edge among the found nodes is removed on its own from the node circuit (every other
candidate edge kept, the rest of the model ablated as the node circuit ablates it), and
kept when that removal leaves the circuit below `threshold` of the FULL model's score:

    F(C - e) / F(M) < threshold  ->  e kept

Each test starts from the same circuit, so the tests are independent: one batched call
of edge circuits (seqcirc.engine.edges.run_edge_circuits), then one pass for the kept
edges together. The iterative pruning of seqcirc.discovery.prune (`prune_edges`) instead
removes edges one after another, each test against the circuit left by the last, so its
circuit keeps more than the threshold by construction; this one need not: edges that
each matter little can matter together (docs/attribution.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seqcirc.discovery.prune import EdgeDiscovery, PruneOutcome, PruneStep, StepFn, candidate_edges
from seqcirc.errors import EvaluationError
from seqcirc.plan import Node

if TYPE_CHECKING:
    from seqcirc.engine.runner import EvalState


def paper_edges(
    state: EvalState,
    nodes: Sequence[Node],
    *,
    threshold: float,
    on_step: StepFn | None = None,
) -> EdgeDiscovery:
    """The authors' single-edge tests over the edges among `nodes` (see the module
    docstring); each step's score is F(C - e) / F(M), C every candidate edge."""
    from seqcirc.claims.measures import f_model
    from seqcirc.engine.edges import edge_mask, run_edge_circuits, run_edges

    fm = f_model(state)
    cands = candidate_edges(state, nodes)
    base = edge_mask(state, cands)
    idx = np.flatnonzero(base)
    masks = np.repeat(base[None], len(idx) + 1, 0)  # row 0: every candidate edge
    masks[np.arange(1, len(idx) + 1), idx] = False
    ratios = run_edge_circuits(state, masks).mean(axis=1) / fm
    start, single = float(ratios[0]), ratios[1:]
    kept = single < threshold
    steps = tuple(
        PruneStep(0, "backward", i, float(s), removed=not bool(k), memoised=False)
        for i, (s, k) in enumerate(zip(single, kept, strict=True))
    )
    for step in steps if on_step is not None else ():
        on_step(step)  # type: ignore[misc]
    if not kept.any():
        raise EvaluationError(
            f"every edge among the found nodes leaves more than {threshold:g} of the full "
            "model's score when removed alone: the authors' edge pruning keeps none",
            code="E342",
            hint="use the iterative edge pruning (--method prune --edges), which removes "
            "them one after another",
        )
    found = np.zeros_like(base)
    found[idx[kept]] = True
    score = float(run_edges(state, found).mean()) / fm
    outcome = PruneOutcome(kept, score, steps, 1, len(cands) + 1, len(cands) + 1)
    edges = tuple(e for e, k in zip(cands, kept, strict=True) if k)
    return EdgeDiscovery(edges, score, start, len(cands), outcome, method="paper")


__all__ = ["paper_edges"]
