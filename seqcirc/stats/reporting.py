"""p-values for reports: Holm across the p-value claims of one file, which p decides each
claim, and how to print a p-value honestly (its floor, enough digits near a threshold).

seqcirc.claims.holm and the report layer call these; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seqcirc.errors import InputError
from seqcirc.language.vocab import COMPARISONS
from seqcirc.stats.multiple import holm_adjust


def compare(value: float, op: str, threshold: float) -> bool:
    """`value op threshold` for a claim's op (<, <=, >, >=)."""
    try:
        return COMPARISONS[op](value, threshold)
    except KeyError:
        raise InputError(
            f"unknown comparison {op!r}", code="E704", hint="use <, <=, > or >="
        ) from None


def p_floor(record: Mapping[str, Any]) -> float | None:
    """The smallest p-value a test can give, from its JSON record (TestResult.to_json(),
    as a p-value claim's detail keeps it): 1/(R+1) for the random baseline (R random
    circuits) and 1/(B+1) for independence (B permutations); None for the exact binomial
    tests, whose p-values can be arbitrarily small."""
    if record.get("test") in ("random_baseline", "knockout") and record.get("n"):
        return 1.0 / (int(record["n"]) + 1)
    permutations = record.get("params", {}).get("n_permutations")
    if record.get("test") == "independence" and permutations:
        return 1.0 / (int(permutations) + 1)
    return None


@dataclass(frozen=True)
class PValueClaim:
    """A claim decided by a p-value, e.g. `expect beats random(n=200) at p < 0.01`."""

    claim_id: str
    test: str
    p_value: float
    op: str
    threshold: float
    floor: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class AdjustedClaim:
    """A p-value claim after Holm's correction across the file's p-value claims.

    decided_on: the p-value held against the threshold. A claim that H0 is rejected
    (`p < t`) is decided on the Holm-adjusted p; a claim that it is *not* rejected
    (`p >= t`, e.g. `expect equivalence at p >= 0.05`) on the raw p — in both cases the
    one that makes the claim harder to pass, so the correction never helps a claim hold.
    attainable: False when the test's floor already fails the claim (e.g. p < 0.01 with
    R = 99 random circuits, whose smallest p is 0.01): no data could make it pass.
    """

    claim_id: str
    test: str
    op: str
    threshold: float
    p_raw: float
    p_adjusted: float
    family_size: int
    decided_on: str
    holds: bool
    attainable: bool
    floor: float | None
    seed: int | None

    @property
    def p_decisive(self) -> float:
        return self.p_adjusted if self.decided_on == "adjusted" else self.p_raw

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "test": self.test,
            "op": self.op,
            "threshold": self.threshold,
            "p_raw": self.p_raw,
            "p_adjusted": self.p_adjusted,
            "correction": "holm",
            "family_size": self.family_size,
            "decided_on": self.decided_on,
            "holds": self.holds,
            "attainable": self.attainable,
            "floor": self.floor,
            "seed": self.seed,
        }


def adjust_claims(claims: Sequence[PValueClaim]) -> tuple[AdjustedClaim, ...]:
    """Holm–Bonferroni across `claims` (the p-value claims of one file), in input order."""
    ids = [c.claim_id for c in claims]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(
            f"claim ids repeat in one Holm family: {', '.join(dup)}",
            code="E703",
            hint="give every claim of a file its own id",
        )
    adjusted = holm_adjust([c.p_value for c in claims])
    out = []
    for claim, p_adj in zip(claims, adjusted, strict=True):
        compare(0.0, claim.op, claim.threshold)  # refuse an unknown op early
        rejecting = claim.op in ("<", "<=")
        decided_on = "adjusted" if rejecting else "raw"
        p = float(p_adj) if rejecting else claim.p_value
        attainable = (
            claim.floor is None or not rejecting or compare(claim.floor, claim.op, claim.threshold)
        )
        out.append(
            AdjustedClaim(
                claim_id=claim.claim_id,
                test=claim.test,
                op=claim.op,
                threshold=claim.threshold,
                p_raw=claim.p_value,
                p_adjusted=float(p_adj),
                family_size=len(claims),
                decided_on=decided_on,
                holds=compare(p, claim.op, claim.threshold),
                attainable=attainable,
                floor=claim.floor,
                seed=claim.seed,
            )
        )
    return tuple(out)


def format_p(p: float, *, threshold: float | None = None, floor: float | None = None) -> str:
    """A p-value with two significant digits, more where rounding would put it on the
    other side of (or onto) `threshold`; "0.005 (floor 1/200)" when it is the floor."""
    text = f"{p:.2g}"
    if threshold is not None:
        for digits in range(2, 10):
            text = f"{p:.{digits}g}"
            shown = float(text)
            if shown != threshold and (shown < threshold) == (p < threshold):
                break
    if floor is not None and p <= floor * (1 + 1e-9):
        text += f" (floor 1/{round(1 / floor)})"
    return text
