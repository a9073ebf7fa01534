"""The planted GPT-2 (tests/planted.py) as a prepared state, with its closed-form
expectations and small plans: the fixtures the engine and claims tests on it share."""

from __future__ import annotations

import numpy as np
import pytest

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.engine.prepare import prepare
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from tests.planted import (
    bridge_of,
    expected_logit_diff,
    planted_hf,
    planted_task,
)

CLEAN_S4 = (1, 2, 3, 4, 5, 6, 7, 8)
CORRUPTED_S4 = (0, 0, 2, 5, 5, 5, 7, 9)
SUCC, SUPP, JUNK, DEAD, MLP = Node(0, 0), Node(0, 1), Node(0, 2), Node(0, 3), Node(0)
INDEX = {SUCC: 0, SUPP: 1, JUNK: 2}


@pytest.fixture(scope="module")
def bridge():  # type: ignore[no-untyped-def]
    return bridge_of(planted_hf())


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return planted_task(CLEAN_S4, CORRUPTED_S4)


@pytest.fixture(scope="module")
def state(bridge, task):  # type: ignore[no-untyped-def]
    return prepare(bridge, task, AblationSpec())


def expected(circuit, value="mean"):  # type: ignore[no-untyped-def]
    """Per-prompt logit_diff with every live head outside `circuit` ablated."""
    out = []
    for i, m4 in enumerate(CLEAN_S4):
        ablated = value if value != "resample" else ("resample", CORRUPTED_S4[i])
        heads = {INDEX[v]: ablated for v in INDEX if v not in circuit}
        out.append(expected_logit_diff(m4, heads, CORRUPTED_S4))
    return np.array(out)


def F(circuit, value="mean"):  # type: ignore[no-untyped-def]
    return float(expected(circuit, value).mean())


F_M = F({SUCC, SUPP, JUNK})


CLAIMS = (
    Claim("c1", "faithfulness", ">=", 0.9, bound="lower", text="faithfulness >= 0.9"),
    Claim("c2", "normalized_faithfulness", ">=", 0.8),
    Claim("c3", "minimality", ">=", 0.05),
    Claim("c4", "completeness", "<=", 0.5, params=(("greedy", True), ("random", 4))),
    Claim("c5", "equivalence", ">=", 0.05),
)


def _plan(circuit, ablation=None, claims=CLAIMS):  # type: ignore[no-untyped-def]
    cp = CircuitPlan(
        name="planted",
        model=ModelRef("planted", "local"),
        task=TaskSpec(name="planted"),
        ablation=ablation or AblationSpec(),
        nodes=tuple(sorted(circuit)),
        groups=(("writers", (SUCC, SUPP)),),
        claims=claims,
    )
    return Plan(source="planted.circ", circuits=(cp,), seed=7)


def _plan_eval(bridge, task, circuit, ablation=None):  # type: ignore[no-untyped-def]
    return evaluate_plan(bridge, _plan(circuit, ablation, ()), {"planted": task}, n_boot=200)
