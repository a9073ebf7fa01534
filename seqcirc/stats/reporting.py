"""p-values for reports: Holm across the p-value claims of one file, which p decides each
claim, and how to print a p-value honestly (its floor, enough digits near a threshold).

The reports (seqcirc/report/) and the evaluation session call these; nothing here prints.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqcirc.errors import InputError
from seqcirc.stats.multiple import holm_adjust
from seqcirc.stats.results import TestResult

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(value: float, op: str, threshold: float) -> bool:
    """`value op threshold` for a claim's op (<, <=, >, >=)."""
    try:
        return _OPS[op](value, threshold)
    except KeyError:
        raise InputError(
            f"unknown comparison {op!r}", code="E704", hint="use <, <=, > or >="
        ) from None


def p_floor(result: TestResult) -> float | None:
    """The smallest p-value the test can give: 1/(R+1) for the random baseline (R random
    circuits) and 1/(B+1) for independence (B permutations); None for the exact binomial
    tests, whose p-values can be arbitrarily small."""
    if result.test == "random_baseline":
        return 1.0 / (result.n + 1)
    if result.test == "independence":
        return 1.0 / (int(result.param("n_permutations")) + 1)
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

    @classmethod
    def from_result(
        cls, claim_id: str, result: TestResult, op: str, threshold: float
    ) -> PValueClaim:
        return cls(
            claim_id, result.test, result.p_value, op, threshold, p_floor(result), result.seed
        )


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


def describe(claim: AdjustedClaim) -> str:
    """One line for a terminal report, e.g.
    `equivalence: p = 0.012, Holm-adjusted 0.036 (3 claims); adjusted p < 0.05 holds`."""
    raw = format_p(claim.p_raw, threshold=claim.threshold, floor=claim.floor)
    adj = format_p(claim.p_adjusted, threshold=claim.threshold)
    verdict = "holds" if claim.holds else "fails"
    line = (
        f"{claim.test}: p = {raw}, Holm-adjusted {adj} ({claim.family_size} "
        f"claim{'s' if claim.family_size != 1 else ''}); {claim.decided_on} p "
        f"{claim.op} {claim.threshold:g} {verdict}"
    )
    if not claim.attainable and claim.floor is not None:
        line += (
            f" (cannot pass: the smallest p this test can give is {claim.floor:.2g}; "
            "draw more random circuits or permutations)"
        )
    return line


def markdown_table(claims: Sequence[AdjustedClaim]) -> str:
    """Raw and adjusted p-values side by side, for Markdown/HTML reports."""
    rows = [
        "| claim | test | p (raw) | p (Holm) | decided on | claim | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        rows.append(
            f"| {c.claim_id} | {c.test} | {format_p(c.p_raw, threshold=c.threshold, floor=c.floor)}"
            f" | {format_p(c.p_adjusted, threshold=c.threshold)} | {c.decided_on} "
            f"| p {c.op} {c.threshold:g} | {'holds' if c.holds else 'fails'} |"
        )
    return "\n".join(rows)
