"""Holm–Bonferroni adjustment across the claims of one file (docs/statistics.md)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from seqcirc.errors import InputError


def holm_adjust(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values, in the input order.

    With p sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting every hypothesis with adj <= alpha controls the family-wise error at alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(
            f"p-values must be a 1-D list, got shape {p.shape}",
            code="E701",
            hint="pass one p-value per claim",
        )
    if p.size and (not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()):
        raise InputError(
            "p-values must lie in [0, 1]",
            code="E704",
            hint="a p-value outside [0, 1] is a bug upstream; do not adjust it",
        )
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
