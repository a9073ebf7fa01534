"""Checks of logit-lens claims, `expect lens(layer=9) rank(correct) <= 1`: only `lens`
reads a measure of a target (E270), the measure and target are known (E271), the layer
is one of the model's (E251 missing or negative, E221 beyond the model), and the
threshold fits the measure (E250: a rank counts from 1, a probability lies in [0, 1])."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqcirc.checks.diagnostics import suggest
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.models.shapes import ModelShape

if TYPE_CHECKING:
    from seqcirc.checks.claims import ClaimChecker

_EXAMPLE = "e.g. `expect lens(layer=9) rank(correct) <= 1`"


def _known(claims: ClaimChecker, ref: ast.NameRef, choices: tuple[str, ...], what: str) -> bool:
    if ref.name in choices:
        return True
    hint = suggest(ref.name, choices) or f"{what}s: " + ", ".join(choices)
    claims.error("E271", f"unknown lens {what} `{ref.name}`", ref.span, hint)
    return False


def check_lens(
    claims: ClaimChecker, expr: ast.ClaimExpr, kind: str, shape: ModelShape | None
) -> None:
    """A value claim that is `lens` or reads a measure (ClaimChecker.claim sends both)."""
    if kind != "lens":
        assert expr.measure is not None and expr.target is not None
        claims.error(
            "E270",
            f"`{expr.name.name}` takes no measure; only `lens` reads "
            f"`{expr.measure.name}({expr.target.name})`",
            expr.measure.span,
            f"write `expect {expr.name.name} {expr.op} ...`, or {_EXAMPLE}",
        )
        return
    if expr.measure is None or expr.target is None:
        claims.error(
            "E270", "`lens` needs a measure of a target", expr.span,
            f"{_EXAMPLE}; measures: {', '.join(V.LENS_MEASURES)}; targets: "
            + ", ".join(V.LENS_TARGETS),
        )  # fmt: skip
        return
    values = claims.args(expr.args, V.VALUE_CLAIMS["lens"], "lens")
    measure_ok = _known(claims, expr.measure, V.LENS_MEASURES, "measure")
    _known(claims, expr.target, V.LENS_TARGETS, "target")
    _layer(claims, expr, values, shape)
    if measure_ok:
        _threshold(claims, expr.measure.name, expr.threshold, shape)


def _layer(
    claims: ClaimChecker, expr: ast.ClaimExpr, values: dict, shape: ModelShape | None
) -> None:
    if "layer" not in values:
        if not any(a.name == "layer" for a in expr.args):  # a mistyped one is E251 already
            claims.error("E251", "`lens` needs `layer=L`: the block after which the "
                         "stream is decoded", expr.name.span, _EXAMPLE)  # fmt: skip
        return
    layer = values["layer"]
    span = next(a.span for a in expr.args if a.name == "layer")
    if layer < 0:
        claims.error("E251", f"`layer` must be at least 0, not {layer}", span,
                     "layers count from 0")  # fmt: skip
        return
    bound = shape.n_layers if shape is not None else V.LIMITS["layer"] + 1
    if layer >= bound:
        hint = (
            f"the model has {bound} layers (0-{bound - 1})"
            if shape is not None
            else f"seqcirc accepts at most {bound} layers"
        )
        claims.error("E221", f"lens layer {layer} is out of range", span, hint)


def _threshold(
    claims: ClaimChecker, measure: str, t: ast.Threshold, shape: ModelShape | None
) -> None:
    shown = f"{t.value:g}%" if t.percent else f"{t.value:g}"
    if measure == "prob":
        claims.threshold("prob", t)
        return
    if t.percent:
        claims.error("E250", f"threshold {shown} is a percentage; a {measure} is not",
                     t.span, f"write the {measure} itself, e.g. `rank(correct) <= 1`")  # fmt: skip
        return
    if measure == "rank":
        vocab = shape.d_vocab if shape is not None and shape.d_vocab > 0 else None
        if t.value < 1 or (vocab is not None and t.value > vocab):
            top = f"{vocab:,}" if vocab is not None else "the vocabulary size"
            claims.error("E250", f"threshold {shown} is out of range [1, {top}]", t.span,
                         "a rank counts from 1 (the top token)")  # fmt: skip
