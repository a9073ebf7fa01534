"""Checks of logit-lens claims: each mistake one coded error at the right place, the
layer bounded by the model's shape, the canonical layout and the plan's params."""

from __future__ import annotations

import pytest

from seqcirc.checks import check_text
from seqcirc.errors import SeqcircError
from seqcirc.language.fmt import format_text
from seqcirc.plan.compile import compile_text

HEAD = "task months = sequence(months, prompts=6)\ncircuit c on {model} {{\n  heads 1.0\n"


def _codes(claim: str, model: str = "seqcirc-mini") -> list[tuple[str, int]]:
    text = HEAD.format(model=model) + f"  {claim}\n}}\n"
    with pytest.raises(SeqcircError) as info:
        check_text(text, "x.circ")
    return [(d.code, d.span.col if d.span else 0) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    ("claim", "want"),
    [
        ("expect faithfulness rank(correct) >= 0.8", [("E270", 23)]),
        ("expect lens(layer=1) >= 1", [("E270", 10)]),
        ("expect lens(layer=1) rnak(correct) <= 1", [("E271", 24)]),
        ("expect lens(layer=1) rank(wrong) <= 1", [("E271", 29)]),
        ("expect lens rank(correct) <= 1", [("E251", 10)]),
        ("expect lens(layer=-1) rank(correct) <= 1", [("E251", 15)]),
        ("expect lens(layer=x) rank(correct) <= 1", [("E251", 15)]),
        ("expect lens(layer=4) rank(correct) <= 1", [("E221", 15)]),  # mini: layers 0-3
        ("expect lens(layer=1, top=5) rank(correct) <= 1", [("E207", 24)]),
        ("expect lens(layer=1) rank(correct) <= 0", [("E250", 41)]),
        ("expect lens(layer=1) rank(correct) <= 227", [("E250", 41)]),  # vocabulary: 226
        ("expect lens(layer=1) rank(correct) <= 5%", [("E250", 41)]),
        ("expect lens(layer=1) prob(correct) >= 50", [("E250", 41)]),
        ("expect lens(layer=1) logit(last) >= 10%", [("E250", 39)]),
    ],
)
def test_each_mistake_is_one_coded_error(claim: str, want: list[tuple[str, int]]) -> None:
    assert _codes(claim) == want


def test_good_claims_check_and_compile() -> None:
    text = HEAD.format(model="seqcirc-mini") + (
        "  expect lens(layer=3) rank(correct) <= 1\n"
        "  expect lens(layer=0) logit(last) >= -100\n"
        "  expect lens(layer=2) prob(correct) >= 50%\n"
        "}\n"
        "expect c on months: lens(layer=3) rank(last) > 1\n"
    )
    plan = compile_text(text, "x.circ")
    claims = [c for cp in plan.circuits for c in cp.claims]
    assert [(c.kind, dict(c.params), c.threshold, c.bound) for c in claims] == [
        ("lens", {"layer": 3, "measure": "rank", "target": "correct"}, 1.0, "point"),
        ("lens", {"layer": 0, "measure": "logit", "target": "last"}, -100.0, "point"),
        ("lens", {"layer": 2, "measure": "prob", "target": "correct"}, 0.5, "point"),
        ("lens", {"layer": 3, "measure": "rank", "target": "last"}, 1.0, "point"),
    ]
    assert format_text(format_text(text)) == format_text(text)
    assert "expect lens(layer=3) rank(correct) <= 1" in format_text(text)


def test_expect_on_bounds_the_layer_by_the_circuits_model() -> None:
    text = HEAD.format(model="seqcirc-mini") + "}\n"
    text += "expect c on months: lens(layer=9) rank(last) > 1\n"
    with pytest.raises(SeqcircError) as info:
        check_text(text, "x.circ")
    assert [d.code for d in info.value.diagnostics] == ["E221"]


def test_a_model_of_unknown_shape_bounds_the_layer_by_the_limit() -> None:
    assert _codes("expect lens(layer=1000) rank(correct) <= 1", '"./no-such-model"') == [
        ("E202", 14),
        ("E221", 15),
    ]
