"""What a claim measured, in words shared by every report: numbers formatted once, the
rank of a circuit among the random circuits of a `beats random` claim, and what a role
claim's score is (a head's own score on the clean model, which no ablation enters)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seqcirc.results import ClaimResult

MISSING = "—"


def number(x: float | None) -> str:
    """Three decimals, or three significant digits for very large or small magnitudes."""
    if x is None:
        return MISSING
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1000 or abs(x) < 0.001):
        return f"{x:.3g}"
    return f"{x:.3f}"


# how reports write a test's statistic
STATISTIC_SYMBOLS = {"performance_ratio": "F(C)/F(M)"}


@dataclass(frozen=True)
class BaselineRank:
    """Where the circuit falls among the random circuits of a `beats random` claim."""

    statistic: float
    symbol: str  # e.g. "F(C)/F(M)"
    rank: int  # 1 = best; ties count against the circuit, as in its p-value
    of: int  # the random circuits and the circuit itself

    def text(self) -> str:
        return f"{self.symbol} = {number(self.statistic)}, rank {self.rank} of {self.of}"


def baseline_rank(claim: ClaimResult) -> BaselineRank | None:
    """The circuit's statistic and its rank among the random scores, from the claim's
    detail; None for other claims or a result that did not record them. The rank is the
    one its p-value counts: p = rank / (random circuits + 1)."""
    d: Mapping[str, Any] = claim.detail or {}
    values = d.get("random_values", d.get("null_distribution"))
    stat = d.get("statistic", d.get("observed"))
    if claim.kind != "random_baseline" or not isinstance(values, list) or stat is None:
        return None
    params = d.get("params")
    higher = dict(params).get("higher_is_better", True) if params else True
    stat = float(stat)
    beaten_by = sum(1 for v in values if (float(v) >= stat if higher else float(v) <= stat))
    name = str(d.get("statistic_name", "statistic"))
    return BaselineRank(stat, STATISTIC_SYMBOLS.get(name, name), 1 + beaten_by, len(values) + 1)


def role_measure(d: Mapping[str, Any]) -> str:
    """What a role claim measured, from its detail: a head's own score on the clean
    model, which no ablation enters."""
    head, role = d.get("head"), d.get("role")
    if not head or not role:
        return "role score"
    if role in ("successor", "copy"):
        target = "the next member" if role == "successor" else "the member itself"
        where = (
            "ranks first among the set's members"
            if d.get("among") == "set"
            else f"is in the top {d.get('top', MISSING)} of the vocabulary"
        )
        return (
            f"{role} score of head {head}: the share of {d.get('n_scored', MISSING)} member "
            f"positions of {d.get('set', MISSING)} where {target} {where} through the head's "
            "OV map"
        )
    if role == "attends":
        src, dst = d.get("from", MISSING), d.get("to", MISSING)
        return (
            f"attention of head {head} from {src} to {dst}, mean over "
            f"{d.get('n_prompts', MISSING)} {d.get('which', 'clean')} prompts of task "
            f"{d.get('task', MISSING)}"
        )
    if "n_seqs" in d:
        return (
            f"{role} score of head {head} on {d['n_seqs']} sequences of "
            f"{d.get('half_len', MISSING)} random tokens repeated once"
        )
    return f"{role} score of head {head}"
