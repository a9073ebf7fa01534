"""What a claim handler gets and gives back. Every claim kind has one handler,
`handler(claim, ctx) -> ClaimValue` (seqcirc.claims.registry says which); the verdict
is decided from the ClaimValue by seqcirc.claims.evaluate.judge, never by a handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from seqcirc.plan import CircuitPlan, Claim

if TYPE_CHECKING:  # the engine imports torch; role claims are measured without it
    from seqcirc.engine.runner import EvalState


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
    """What a claim handler gets: the prepared state, the circuit, its per-prompt values.

    model: what evaluate_plan was given (a seqcirc.models.load.LoadedModel, or a bare
    bridge); role claims read its bridge and tokenizer.
    """

    state: EvalState
    circuit: CircuitPlan
    seed: int
    m_circuit: NDArray[np.float64]
    n_boot: int
    level: float
    model: Any = None


ClaimHandler = Callable[[Claim, ClaimContext], ClaimValue]


def param(claim: Claim, key: str, default: Any) -> Any:
    return dict(claim.params).get(key, default)
