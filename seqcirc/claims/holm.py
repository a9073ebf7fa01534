"""Holm-Bonferroni across the p-value claims of one file (seqcirc.stats.adjust_claims):
the family is every claim whose kind the registry marks as a p-value claim."""

from __future__ import annotations

from dataclasses import replace

from seqcirc.claims.registry import P_VALUE_KINDS
from seqcirc.results import ClaimResult, EvaluationResult
from seqcirc.stats.reporting import PValueClaim, adjust_claims, p_floor


def holm_across_file(result: EvaluationResult) -> EvaluationResult:
    """Holm-Bonferroni across the file's p-value claims; raw and adjusted p both kept.

    A claim `p < t` is decided on its adjusted p (seqcirc.stats.adjust_claims), so the
    verdict of a p-value claim may turn from pass to fail here, never the other way.
    """
    family = [
        (ci, i, cl)
        for ci, circuit in enumerate(result.circuits)
        for i, cl in enumerate(circuit.claims)
        if cl.kind in P_VALUE_KINDS and cl.verdict in ("pass", "fail") and cl.value is not None
    ]
    if not family:
        return result
    adjusted = adjust_claims(
        [_p_value_claim(result.circuits[ci].name, cl) for ci, _i, cl in family]
    )
    circuits = [list(c.claims) for c in result.circuits]
    for (ci, i, cl), adj in zip(family, adjusted, strict=True):
        circuits[ci][i] = replace(
            cl,
            verdict="pass" if adj.holds else "fail",
            compared=adj.p_decisive,
            detail={**cl.detail, "holm": adj.to_json()},
        )
    return replace(
        result,
        circuits=tuple(
            replace(c, claims=tuple(cls)) for c, cls in zip(result.circuits, circuits, strict=True)
        ),
    )


def _p_value_claim(circuit: str, claim: ClaimResult) -> PValueClaim:
    assert claim.value is not None  # the family holds measured claims only
    return PValueClaim(
        f"{circuit}::{claim.id}", claim.kind, float(claim.value), claim.op, claim.threshold,
        p_floor(claim.detail), claim.detail.get("seed"),
    )  # fmt: skip
