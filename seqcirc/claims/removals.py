"""Each node and each role group taken out of a node circuit C, with the sign kept: the
signed drop (F(C) - F(C \\ v)) / F(M) (negative when removing v helps) and the paired
bootstrap interval of the rise (F(C \\ v) - F(C)) / F(M) (docs/statistics.md, "Components
that work against the circuit").

A removal whose rise has a lower bound above 0 is *harmful*: the circuit does better
without it, beyond what resampling the prompts explains. Every node circuit's result
carries this table, claimed or not (CircuitResult.removals); it costs one forward pass per
node and per group, batched into one run_circuits call, and no model time for the
bootstrap (its replicates come from the per-prompt values already computed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.engine.runner import EvalState, node_mask, run_circuits
from seqcirc.errors import SeqcircError
from seqcirc.plan import Node
from seqcirc.progress import phase


def removals(
    state: EvalState,
    circuit: Sequence[Node],
    groups: Mapping[str, Sequence[Node]],
    m_circuit: NDArray[np.float64],
    *,
    seed: int,
    n_boot: int,
    level: float,
) -> dict[str, Any]:
    """The removal table of a node circuit as results JSON: `nodes` and `groups` (one entry
    each), `harmful` (those flagged), the bootstrap's set-up and the rows it ran.

    Every entry reads: removed (a node, or a group's name), members, f_circuit and
    f_without (F(C)/F(M) and F(C \\ v)/F(M)), signed_drop, abs_drop, rise_lower and
    rise_upper (the interval of F(C \\ v)/F(M) - F(C)/F(M)), unbounded, harmful.
    A F(M) of 0 gives {"error": ...} (the ratios are undefined)."""
    rows0 = state.forward_rows
    if state.metric == "logprob":  # F(M) < 0: the ratios below would turn around
        return {"error": "[E312] removal ratios are undefined for logprob (its 0 is certainty)",
                "level": level, "n_boot": n_boot, "seed": seed, "forward_rows": 0}  # fmt: skip
    c = node_mask(state, circuit)
    removed: list[tuple[str, str, tuple[Node, ...]]] = [("node", str(v), (v,)) for v in circuit]
    for name, members in groups.items():
        kept = tuple(v for v in members if v in circuit)
        if kept:
            removed.append(("group", name, kept))
    masks = np.stack([c & ~node_mask(state, nodes) for _, _, nodes in removed])
    with phase("removals", total=len(removed), unit="circuits"):
        m_without = run_circuits(state, masks) if removed else np.empty((0, len(m_circuit)))
    setup = {"level": level, "n_boot": n_boot, "seed": seed,
             "forward_rows": state.forward_rows - rows0}  # fmt: skip
    entries = []
    try:
        with phase("removals (bootstrap)", total=len(removed), unit="intervals") as bar:
            for (kind, name, nodes), m_w in zip(removed, m_without, strict=True):
                entries.append(
                    {"kind": kind, "removed": name, "members": [str(v) for v in nodes],
                     **rise(m_circuit, m_w, state.m_model, seed=seed, n_boot=n_boot,
                            level=level)}
                )  # fmt: skip
                bar.advance()
    except SeqcircError as err:
        return {"error": f"[{err.code}] {err.message}", **setup}
    return {
        "nodes": [e for e in entries if e["kind"] == "node"],
        "groups": [e for e in entries if e["kind"] == "group"],
        "harmful": [e for e in entries if e["harmful"]],
        **setup,
    }


def rise(
    m_circuit: NDArray[np.float64],
    m_without: NDArray[np.float64],
    m_model: NDArray[np.float64],
    *,
    seed: int,
    n_boot: int,
    level: float,
) -> dict[str, Any]:
    """One removal: the ratios, the signed drop and the paired bootstrap interval of the
    rise (prompt i's values for C, C \\ v and M resampled together; every removal of a
    circuit uses the same seed, so the same resamples)."""
    from seqcirc.stats.bootstrap import bootstrap_ratio

    ci = bootstrap_ratio(
        {"without": m_without, "circuit": m_circuit, "model": m_model},
        {"without": 1.0, "circuit": -1.0},
        {"model": 1.0},
        variant="rise when removed",
        seed=seed,
        level=level,
        n_boot=n_boot,
    )
    fm = float(np.mean(m_model))
    f_c, f_w = float(np.mean(m_circuit)) / fm, float(np.mean(m_without)) / fm
    drop = (float(np.mean(m_circuit)) - float(np.mean(m_without))) / fm
    return {
        "f_circuit": f_c, "f_without": f_w, "signed_drop": drop, "abs_drop": abs(drop),
        "rise_lower": ci.lower, "rise_upper": ci.upper, "unbounded": ci.unbounded,
        "harmful": bool(not ci.unbounded and ci.lower > 0.0),
    }  # fmt: skip
