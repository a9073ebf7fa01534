"""Arguments, task clauses, expectations and role claims: their checks and meaning.

`ClaimChecker` reports problems through an `error(code, message, span, hint)` callback;
`claim_meaning` / `role_meaning` turn a checked claim into (kind, params, bound) for the
compiler, so the checks and the plan read the same table (seqcirc.language.vocab).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from seqcirc.checks.diagnostics import suggest
from seqcirc.checks.generation import check_generation
from seqcirc.checks.lens import check_lens
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.language.names import canonical
from seqcirc.models.shapes import ModelShape
from seqcirc.source import Span

ErrorFn = Callable[[str, str, Span | None, str | None], None]

# Allowed threshold ranges: a claim outside them cannot be meant (80 for 80%, p = 5).
RANGES: dict[str, tuple[float, float, str]] = {
    "faithfulness": (-1.0, 2.0, "a fraction of the full model's score: 0.8 means 80%"),
    "completeness": (0.0, 2.0, "a fraction of the full model's score"),
    "minimality": (0.0, 1.0, "a fraction of the full model's score"),
    # signed: below 0 when removing a component helps (>= -0.01: a little harm allowed)
    "minimality(signed)": (-1.0, 1.0, "a signed fraction of the full model's score"),
    "role": (0.0, 1.0, "a score between 0 and 1 (role scores are shares)"),
    "prob": (0.0, 1.0, "a probability between 0 and 1"),
    "p": (0.0, 1.0, "a significance level between 0 and 1, e.g. 0.01"),
}


def _hint(name: str, choices: Any, what: str) -> str:
    return suggest(name, choices) or f"{what}: " + ", ".join(choices)


def _sequences() -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """The built-in ordered sets and their default ranges."""
    # imported here: the tasks package loads numpy and the generators, which only files
    # with a sequence task need
    from seqcirc.tasks.sets import DEFAULT_RANGE, ORDERED_SETS

    return ORDERED_SETS, DEFAULT_RANGE


def value_kind(expr: ast.ClaimExpr) -> str | None:
    """The plan claim kind an expectation names, or None if unknown."""
    name = expr.name.name
    if expr.form == "value":
        return name if name in V.VALUE_CLAIMS else None
    if expr.form == "beats":
        return "random_baseline" if name == "random" else None
    name = V.TEST_ALIASES.get(name, name)
    return name if name in V.TEST_CLAIMS and name != "random_baseline" else None


def claim_meaning(expr: ast.ClaimExpr) -> tuple[str, dict[str, Any], str]:
    """(kind, params, bound) of a checked expectation.

    Bound: faithfulness compares a bootstrap confidence bound by default, the lower one
    for `>=`/`>` and the upper one for `<=`/`<` (the side that makes the claim hard to
    pass); `bound=point` compares the point estimate. Completeness and minimality are
    worst cases over subsets with no interval (docs/language.md): point unless `bound=` says
    otherwise. p-value claims compare the p-value.
    """
    kind = value_kind(expr) or expr.name.name
    values = {a.name: a.value for a in expr.args}
    if expr.form != "value":
        return kind, values, "point"
    if expr.measure is not None and expr.target is not None:  # lens: a point value
        return kind, {**values, "measure": expr.measure.name, "target": expr.target.name}, "point"
    side = "lower" if expr.op in (">=", ">") else "upper"
    bound = str(values.pop("bound", side if kind == "faithfulness" else "point"))
    if kind == "faithfulness":
        values.setdefault("variant", "ratio")
        if values["variant"] == "normalized":  # the plan's own kind for it (plan.Claim)
            kind = "normalized_faithfulness"
    return kind, values, bound


def role_meaning(role: ast.RoleStmt) -> dict[str, Any]:
    head = role.head
    if isinstance(head, ast.HeadRef):
        head_text = canonical(head.layer, head.head)
    else:  # not reached by checked files (body.py rejects a role on anything but a head)
        head_text = head.name if isinstance(head, ast.NameRef) else canonical(head.lo, None)
    values: dict[str, Any] = dict(V.ROLE_DEFAULTS.get(role.role.name, {}))
    values.update({a.name: a.value for a in role.args})
    values.update(head=head_text, role=role.role.name)
    return values


class ClaimChecker:
    def __init__(self, error: ErrorFn) -> None:
        self.error = error

    def args(self, args: tuple[ast.Arg, ...], spec: dict[str, type], what: str) -> dict:
        values: dict[str, Any] = {}
        for arg in args:
            if arg.name in values:
                self.error("E210", f"`{arg.name}` is given twice", arg.span, None)
            if arg.name not in spec:
                accepted = ", ".join(spec) if spec else "no parameters"
                self.error(
                    "E207",
                    f"unknown parameter `{arg.name}` of {what}",
                    arg.span,
                    _hint(arg.name, spec, f"{what} accepts")
                    if spec
                    else f"{what} takes " + accepted,
                )
                continue
            want = spec[arg.name]
            value = arg.value
            ok = (
                isinstance(value, bool)
                if want is bool
                else isinstance(value, int) and not isinstance(value, bool)
                if want is int
                else isinstance(value, int | float) and not isinstance(value, bool)
                if want is float
                else isinstance(value, str)
            )
            if not ok:
                shown = "a flag" if value is True else f"`{value}`"
                kinds = {
                    bool: "a flag (written alone)",
                    int: "a whole number",
                    float: "a number",
                    str: "a name",
                }
                self.error(
                    "E251",
                    f"`{arg.name}` of {what} must be {kinds[want]}, not {shown}",
                    arg.span,
                    None,
                )
                continue
            values[arg.name] = value
        return values

    def at_least(self, values: dict, key: str, low: int, span: Span, why: str) -> None:
        if key in values and values[key] < low:
            self.error("E251", f"`{key}` must be at least {low}", span, why)

    def at_most(self, values: dict, key: str, high: int, span: Span, why: str) -> bool:
        """E251 naming the bound when values[key] exceeds `high`; False then."""
        if key in values and values[key] > high:
            self.error("E251", f"`{key}` must be at most {high:,}, not {values[key]}", span, why)
            return False
        return True

    def limit(self, values: dict, key: str, span: Span, what: str) -> bool:
        """at_most with the bound of seqcirc.language.vocab.LIMITS on `what`."""
        return self.at_most(values, key, V.LIMITS[key], span, f"seqcirc's limit on {what}")

    def choices(
        self, args: tuple[ast.Arg, ...], values: dict, choices: Mapping[str, tuple[str, ...]]
    ) -> None:
        for key, value in values.items():
            if key in choices and value not in choices[key]:
                span = next(a.span for a in args if a.name == key)
                self.error(
                    "E251",
                    f"`{key}={value}` is not supported",
                    span,
                    f"{key} may be: " + ", ".join(choices[key]),
                )

    def sequence_name(self, name: str, span: Span) -> bool:
        sets, _ = _sequences()
        if name not in sets:
            self.error(
                "E205", f"unknown sequence `{name}`", span, _hint(name, sets, "known sequences")
            )
        return name in sets

    def sequence(self, src: ast.SeqSource) -> None:
        """`sequence(NAME, ...)`: a built-in ordered set and the generator's parameters."""
        sets, default_ranges = _sequences()
        self.sequence_name(src.set_name.name, src.set_name.span)
        values = self.args(src.args, V.TASK_PARAMS, "sequence")
        size = len(sets.get(src.set_name.name, ()))
        self.task_params(values, src, size, default_ranges.get(src.set_name.name, size))

    def task_params(self, values: dict, src: ast.SeqSource, size: int, default_range: int) -> None:
        span = src.span
        spans = {a.name: a.span for a in src.args}
        template = values.get("template")
        quoted = any(a.name == "template" and a.quoted for a in src.args)
        if template is not None and not quoted and template not in V.TEMPLATE_CHOICES:
            self.error(
                "E251",
                f"unknown template `{template}`",
                spans["template"],
                _hint(template, V.TEMPLATE_CHOICES, "templates")
                + '; or a quoted template with {N} and {S}, e.g. "{N} born in {S}."',
            )
        fillers = values.get("fillers")
        if fillers is not None and fillers not in V.FILLERS:
            self.error(
                "E251",
                f"unknown fillers `{fillers}`",
                spans["fillers"],
                _hint(str(fillers), V.FILLERS, "fillers"),
            )
        s1 = values.get("s1")
        if s1 is not None and s1 not in V.S1_CHOICES:
            self.error(
                "E251", f"unknown s1 `{s1}`", spans["s1"], _hint(str(s1), V.S1_CHOICES, "s1")
            )
        partner = values.get("filter_with")
        if partner is not None:
            self.sequence_name(str(partner), spans["filter_with"])
        if quoted and not ("{N}" in str(template) and "{S}" in str(template)):
            self.error(
                "E251",
                "a template needs both {N} and {S}",
                spans["template"],
                'e.g. template="{N} born in {S}."',
            )
        for key, low in (
            ("members", 2),
            ("prompts", 1),
            ("interval", 1),
            ("start", 1),
            ("range", 2),
            ("seed", 0),
            ("step", 1),
        ):
            self.at_least(values, key, low, spans.get(key, span), "")
        self.limit(values, "prompts", spans.get("prompts", span), "the prompts of one task")
        self.limit(values, "step", spans.get("step", span), "the step of numerals")
        if "step" in values and src.set_name.name not in V.STEP_SEQUENCES:
            self.error(
                "E251",
                f"`step` applies to {', '.join(V.STEP_SEQUENCES)}, not {src.set_name.name}",
                spans["step"],
                "leave step out, or use sequence(numerals, step=10)",
            )
        self.limit(values, "seed", spans.get("seed", span), "seeds: a signed 64-bit integer")
        rng = values.get("range", default_range)
        if size and rng > size:
            self.error(
                "E251",
                f"`range` {rng} exceeds the {size} members of the sequence",
                spans.get("range", span),
                f"use range={size} or less",
            )
        elif size and self._members_fit(values, spans, span, rng):
            self._start_fits(values, spans, rng)

    def _members_fit(self, values: dict, spans: dict, span: Span, rng: int) -> bool:
        """The shown members and the answer fit the range; one name per member is left."""
        from seqcirc.tasks.sets import NAMES

        members = values.get("members", V.DEFAULT_MEMBERS)
        interval = values.get("interval", 1)
        if members * interval + 1 > rng:
            key = "members" if "members" in values else "interval"
            self.error(
                "E251",
                f"{members} members at interval {interval} need {members * interval + 1} "
                f"members of the sequence, but its range has {rng}",
                spans.get(key, span),
                "show fewer members, use a smaller interval, or a larger range",
            )
            return False
        if members + 1 > len(NAMES):
            self.error(
                "E251",
                f"`members` must be at most {len(NAMES) - 1}, not {members}",
                spans.get("members", span),
                f"each prompt names {members + 1} people and there are {len(NAMES)} names",
            )
            return False
        return True

    def _start_fits(self, values: dict, spans: dict, rng: int) -> None:
        if "start" in values:
            members = values.get("members", V.DEFAULT_MEMBERS)
            interval = values.get("interval", 1)
            last = values["start"] - 1 + members * interval  # 0-based index of the answer
            if last > rng - 1:
                self.error(
                    "E251",
                    f"with start={values['start']}, {members} members and interval "
                    f"{interval}, the answer would pass member {rng}",
                    spans["start"],
                    f"use start={max(1, rng - members * interval)} or less",
                )

    def task_clause(self, clause: ast.TaskClause) -> None:
        name = clause.name
        if clause.kind == "corrupt":
            if name.name not in V.CORRUPTIONS:
                self.error(
                    "E206",
                    f"unknown corruption `{name.name}`",
                    name.span,
                    _hint(name.name, V.CORRUPTIONS, "corruptions"),
                )
            self.args(clause.args, {}, f"corrupt {name.name}")
        elif clause.kind == "metric":
            if name.name not in V.METRICS:
                self.error(
                    "E203",
                    f"unknown metric `{name.name}`",
                    name.span,
                    _hint(name.name, V.METRICS, "metrics"),
                )
            values = self.args(clause.args, V.METRIC_PARAMS, "metric")
            self.choices(clause.args, values, V.METRIC_ARGS)
            check_generation(self, clause, values)
        elif clause.kind == "bos":
            if name.name not in V.BOS_CHOICES:
                self.error(
                    "E207",
                    f"unknown bos setting `{name.name}`",
                    name.span,
                    _hint(name.name, V.BOS_CHOICES, "bos settings"),
                )
        elif name.name not in V.FILTERS:
            self.error(
                "E207",
                f"unknown filter `{name.name}`",
                name.span,
                "the filter is `filter correct` (the paper's: top-1 right and "
                "p(correct) > 2 p(incorrect))",
            )

    def threshold(self, kind: str, t: ast.Threshold) -> None:
        low, high, meaning = RANGES[kind]
        value = t.fraction
        bad = not (low < value < high) if kind == "p" else not (low <= value <= high)
        if bad:
            shown = f"{t.value:g}%" if t.percent else f"{t.value:g}"
            interval = f"({low:g}, {high:g})" if kind == "p" else f"[{low:g}, {high:g}]"
            self.error(
                "E250",
                f"threshold {shown} is out of range {interval}",
                t.span,
                f"the threshold is {meaning}",
            )

    def claim(self, expr: ast.ClaimExpr, shape: ModelShape | None = None) -> None:
        """`shape`: the model's, where known (a lens claim's layer is bounded by it)."""
        kind = value_kind(expr)
        if kind is None:
            self._unknown_claim(expr)
        elif kind == "lens" or expr.measure is not None:
            check_lens(self, expr, kind, shape)
        elif expr.form == "value":
            self._value_claim(expr, kind)
        else:
            self._test_claim(expr, kind)

    def _unknown_claim(self, expr: ast.ClaimExpr) -> None:
        if expr.form == "test" and expr.name.name in V.VALUE_CLAIMS:
            self.error(
                "E203",
                f"`{expr.name.name}` is compared with a threshold, not tested at p",
                expr.name.span,
                f"e.g. `expect {expr.name.name} >= 0.8`",
            )
        elif expr.form == "beats":
            self.error(
                "E203",
                f"unknown baseline `{expr.name.name}`",
                expr.name.span,
                "the baseline is `beats random(n=200) at p < 0.01`",
            )
        else:
            choices = (
                tuple(V.VALUE_CLAIMS)
                if expr.form == "value"
                else (*(k for k in V.TEST_CLAIMS if k != "random_baseline"), "minimality")
            )
            self.error(
                "E203",
                f"unknown metric `{expr.name.name}`",
                expr.name.span,
                _hint(expr.name.name, choices, "claims"),
            )

    def _value_claim(self, expr: ast.ClaimExpr, kind: str) -> None:
        values = self.args(expr.args, V.VALUE_CLAIMS[kind], kind)
        self.threshold("minimality(signed)" if values.get("signed") else kind, expr.threshold)
        if values.get("bound", "lower") not in V.BOUNDS:
            self.error(
                "E251",
                f"unknown bound `{values['bound']}`",
                expr.span,
                "bound may be: " + ", ".join(V.BOUNDS),
            )
        if values.get("variant", "ratio") not in V.FAITHFULNESS_VARIANTS:
            self.error(
                "E251",
                f"unknown variant `{values['variant']}`",
                expr.span,
                "variant may be: " + ", ".join(V.FAITHFULNESS_VARIANTS),
            )
        self.at_least(values, "random", 1, expr.span, "")
        self.limit(values, "random", expr.span, "random subsets (each is a run of the model)")

    def _test_claim(self, expr: ast.ClaimExpr, kind: str) -> None:
        values = self.args(expr.args, V.TEST_CLAIMS[kind], kind)
        assert expr.stat is not None
        if expr.stat.name != "p":
            self.error(
                "E207",
                f"unknown statistic `{expr.stat.name}`",
                expr.stat.span,
                "tests are decided by their p-value: `at p < 0.01`",
            )
        self.threshold("p", expr.threshold)
        for key in ("n", "permutations"):
            self.at_least(values, key, 1, expr.span, "")
        self.limit(values, "n", expr.span, "random circuits (each is a run of the model)")
        self.limit(values, "permutations", expr.span, "the permutations of a test")
        for key in ("epsilon", "q"):
            if key in values and not 0 < values[key] < 1:
                self.error("E251", f"`{key}` must lie between 0 and 1", expr.span, None)
