"""The .circ parser: grammar loading, the AST and its spans, friendly syntax errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqcirc.errors import InputError
from seqcirc.language import ast, get_parser, parse
from seqcirc.language.parser import _grammar_text

ROOT = Path(__file__).resolve().parents[1]


def _body(text: str) -> tuple:
    (circuit,) = parse(f"circuit c on gpt2-small {{\n{text}\n}}\n", "t.circ").items
    assert isinstance(circuit, ast.CircuitDef)
    return circuit.body


def test_parser_is_built_once_in_strict_mode_from_the_one_grammar_beside_it() -> None:
    assert get_parser() is get_parser()
    assert get_parser().options.strict is True
    grammar = ROOT / "seqcirc" / "language" / "circ.lark"
    assert _grammar_text() == grammar.read_text(encoding="utf-8")
    assert not (ROOT / "grammar" / "circ.lark").exists()  # one lookup, not two


@pytest.mark.parametrize(
    ("written", "layer", "head"),
    [("9.1", 9, 1), ("L9H1", 9, 1), ("6.10", 6, 10), ("L10H7", 10, 7), ("0.0", 0, 0)],
)
def test_heads_are_written_dotted_or_lh(written: str, layer: int, head: int) -> None:
    (stmt,) = _body(f"heads {written}")
    (ref,) = stmt.members
    assert isinstance(ref, ast.HeadRef)
    assert (ref.layer, ref.head, ref.text) == (layer, head, written)


def test_every_node_carries_its_span() -> None:
    stmts = _body("  group detect = 1.5, L4H4\n  mlp 0..4, 6")  # lines 2 and 3
    group, mlp = stmts
    assert group.span.line == 2 and group.span.col == 3
    second = group.members[1]
    assert (second.span.line, second.span.col, second.span.end_col) == (2, 23, 26)
    assert [(r.lo, r.hi) for r in mlp.ranges] == [(0, 4), (6, None)]
    assert mlp.ranges[1].span.col == 13


def test_thresholds_percent_and_negative() -> None:
    role, expect = _body("role 9.1 successor(top=5) >= 25%\nexpect faithfulness > -0.5")
    assert role.threshold.fraction == 0.25 and role.threshold.percent
    assert role.args == (ast.Arg("top", 5, role.args[0].span),)
    assert expect.claim.threshold.fraction == -0.5 and expect.claim.op == ">"


def test_claim_forms() -> None:
    a, b, c = _body(
        "expect completeness(random=5, greedy) <= 0.2\n"
        "expect beats random(n=10) at p < 0.01\n"
        "expect equivalence(epsilon=0.1) at p >= 0.05"
    )
    assert a.claim.form == "value" and [x.value for x in a.claim.args] == [5, True]
    assert b.claim.form == "beats" and b.claim.stat.name == "p"
    assert c.claim.form == "test" and c.claim.args[0].value == 0.1


def test_set_algebra_precedence_and_associativity() -> None:
    prog = parse("circuit x = a | b & c\ncircuit y = a - b - c\n")
    x, y = prog.items
    assert x.expr.op == "|" and x.expr.right.op == "&"
    assert y.expr.op == "-" and y.expr.left.op == "-" and y.expr.right.name.name == "c"


def test_models_hub_local_and_org_names() -> None:
    prog = parse(
        'circuit a on pythia-1.4b { heads 1.1 }\ncircuit b on "./ckpt" { heads 1.1 }\n'
        "circuit c on EleutherAI/pythia-70m { heads 1.1 }\n"
    )
    models = [(i.model.name, i.model.quoted) for i in prog.items]
    assert models == [("pythia-1.4b", False), ("./ckpt", True), ("EleutherAI/pythia-70m", False)]


def test_comments_are_kept_for_the_formatter_but_not_inside_strings() -> None:
    prog = parse('# top\nimport "a#b.circ"  # why\n')
    assert prog.items[0].path == "a#b.circ"
    assert prog.comments == ((1, "# top"), (2, "# why"))


BAD = [
    "circuit c on gpt2 { expect faithfulness 0.8 }",
    "group g = 9",
    "circuit c gpt2 {",
    "circuit c on gpt2 { heads 1.1",
    "task t = sequence(months) $",
    "circuit c on gpt2 { mlp 1.5 }",
    "group g = 1.1,, 2.2",
    "circuit c on gpt2 { edge 1.1 -> }",
    "task t = sequence(months, members=)",
    "circuit c on { }",
    "expect x on y faithfulness >= 1",
    "seed 1.5",
    "import months",
    "",
]


@pytest.mark.parametrize("text", BAD, ids=range(len(BAD)))
def test_syntax_errors_speak_the_users_language(text: str) -> None:
    if not text:
        assert parse(text).items == ()  # an empty file is a valid, empty program
        return
    with pytest.raises(InputError) as info:
        parse(text, "bad.circ")
    err = info.value
    assert err.code in {"E100", "E101", "E102"}
    assert err.span is not None and err.span.path == "bad.circ"
    rendered = err.render()
    assert rendered.startswith(f"bad.circ:{err.span.line}:{err.span.col}: error[{err.code}]")
    assert "^" in rendered and "help: " in rendered
    # internal terminal names (keywords are named after themselves: MLP for `mlp`)
    internal = {
        t.name
        for t in get_parser().terminals
        if not (t.pattern.type == "str" and t.name == t.pattern.value.upper())
    }
    shown = set(re.findall(r"[A-Z_$][A-Z_0-9]{2,}", rendered))
    assert not (shown & (internal | {"$END"})), shown


def test_friendly_hint_for_missing_comparison_after_other_statements() -> None:
    with pytest.raises(InputError) as info:
        _body("heads 9.1\nheads 4.4\nexpect faithfulness 0.8")
    assert info.value.hint is not None
    assert info.value.hint.startswith("a claim needs a comparison and a threshold")
    assert (info.value.span.line, info.value.span.col) == (4, 21)
