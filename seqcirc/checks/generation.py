"""`metric accuracy(generate, max_new_tokens=N, match="REGEX")`: the checks of a
generating metric's parameters (docs/language.md, "Generation"), with the clause's spans.
"""

from __future__ import annotations

import re
from typing import Any

from seqcirc.language import ast
from seqcirc.language import vocab as V

GENERATION_ONLY = ("max_new_tokens", "match")


def check_generation(claims: Any, clause: ast.TaskClause, values: dict[str, Any]) -> None:
    """E251 for a generating metric stated wrong: `generate` on a metric that does not
    generate, max_new_tokens or match without it, no max_new_tokens, a bound passed, a
    `match` that is no regular expression."""
    spans = {a.name: a.span for a in clause.args}
    metric = clause.name.name
    if not values.get("generate"):
        for key in (k for k in GENERATION_ONLY if k in values):
            claims.error(
                "E251", f"`{key}` is a parameter of a generating metric", spans[key],
                f"write `metric accuracy(generate, {key}=...)`",
            )  # fmt: skip
        return
    if metric not in V.GENERATE_METRICS:
        claims.error(
            "E251", f"`generate` applies to {', '.join(V.GENERATE_METRICS)}, not `{metric}`",
            spans["generate"], "write `metric accuracy(generate, max_new_tokens=3)`",
        )  # fmt: skip
    if "max_new_tokens" not in spans:  # (given but not a whole number: reported already)
        claims.error(
            "E251", "a generating metric needs `max_new_tokens=N`", clause.span,
            "e.g. `metric accuracy(generate, max_new_tokens=3)`: at most that many tokens decoded",
        )  # fmt: skip
    else:
        why = "at least one token is generated"
        claims.at_least(values, "max_new_tokens", 1, spans["max_new_tokens"], why)
        claims.limit(values, "max_new_tokens", spans["max_new_tokens"], "generated tokens")
    if "match" in values:
        _check_match(claims, values["match"], spans["match"])


def _check_match(claims: Any, pattern: str, span: Any) -> None:
    try:
        re.compile(pattern.replace(V.ANSWER_PLACEHOLDER, "x"))
    except re.error as err:
        claims.error(
            "E251", f"`match` is not a regular expression: {err}", span,
            'e.g. match="\\s*{answer}\\b" ({answer} stands for the answer text, escaped)',
        )  # fmt: skip


def check_generation_filter(error: Any, clauses: dict[str, ast.TaskClause]) -> None:
    """`filter correct` reads the answer's next-token probabilities, which a generated
    answer of several tokens does not have (E251)."""
    metric, filt = clauses.get("metric"), clauses.get("filter")
    if metric is None or filt is None:
        return
    if any(a.name == "generate" and a.value is True for a in metric.args):
        error(
            "E251", "`filter correct` cannot be combined with a generating metric", filt.span,
            "the filter compares the answers' next-token probabilities; drop it, or score "
            "a one-token answer without `generate`",
        )  # fmt: skip


def generates(task: ast.TaskDef | None) -> bool:
    """Whether the task's metric generates (`metric accuracy(generate, ...)`)."""
    metric = next((c for c in task.clauses if c.kind == "metric"), None) if task else None
    return metric is not None and any(a.name == "generate" and a.value is True for a in metric.args)


def check_generation_ablation(error: Any, stmt: ast.AblateStmt, task: ast.TaskDef | None) -> None:
    """A generating metric scores node circuits ablated in place: edges and patching
    are E251 at `seqcirc check` (E328 where a plan is built by hand)."""
    if not generates(task):
        return
    for opt in stmt.options:
        edges = opt.kind == "granularity" and V.GRANULARITIES.get(opt.value) == "edge"
        patch = opt.kind == "direction" and V.DIRECTIONS.get(opt.value) == "patch_circuit"
        if edges or patch:
            error(
                "E251", f"a generating metric cannot score {'edges' if edges else 'patching'}",
                opt.span, "generation runs node circuits ablated in place (`ablate nodes ...`, "
                "direction complement); score this one with a metric at the answer position",
            )  # fmt: skip


__all__ = [
    "check_generation", "check_generation_ablation", "check_generation_filter", "generates",
]  # fmt: skip
