"""Property tests of the .circ front end: random and mutated inputs only ever raise
seqcirc's own errors and never hang; formatting keeps the plan (round trip)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcirc.errors import SeqcircError
from seqcirc.language.fmt import format_text
from seqcirc.plan import Plan
from seqcirc.plan.compile import compile_text

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    *sorted((ROOT / "tests/golden/valid").glob("*.circ")),
    *sorted((ROOT / "hypotheses").glob("*.circ")),
]
WORDS = [
    "task", "circuit", "on", "group", "mlp", "heads", "edge", "->", "role", "expect",
    "import", "seed", "use", "ablate", "=", "{", "}", "(", ")", ",", "..", ":", "&", "|",
    "-", ">=", "<", "%", "9.1", "L9H1", "12.12", "0", "99999999999", "0..4", "gpt2-small",
    "pythia-70m", "seqcirc-mini", '"x"', '"."', '""', "sequence(months)", "file", "at",
    "p", "beats", "random", "faithfulness", "successor", "attends(from=S3, to=S2)",
    "months", "embed", "logits", "#", "\n", "nodes", "edges", "mean", "zero", "a", "b",
    "group a =", "group b =",
]  # fmt: skip


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM; the suite runs on Linux)."""

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError(f"the front end ran for more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _front_end(text: str, path: str) -> None:
    """Parse, check, compile and format; only SeqcircError may escape."""
    with _time_limit(10):
        try:
            compile_text(text, path)
        except SeqcircError as err:
            assert err.code and err.render()  # renders without crashing
            return
        format_text(text, path)


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("fuzz") / "fuzz.circ")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_raises_only_seqcirc_errors(fuzz_path: str, text: str) -> None:
    _front_end(text, fuzz_path)


@FUZZ
@given(words=st.lists(st.sampled_from(WORDS), max_size=40))
def test_random_token_soup_raises_only_seqcirc_errors(fuzz_path: str, words: list[str]) -> None:
    _front_end(" ".join(words), fuzz_path)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    path = draw(st.sampled_from(SOURCES))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate", "word"]))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + draw(st.text(max_size=5)) + text[i:]
        elif action == "duplicate":
            text = text[:i] + text[i:j] + text[i:]
        else:
            text = text[:i] + " " + draw(st.sampled_from(WORDS)) + " " + text[j:]
    return str(path), text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_mutated_programs_raise_only_seqcirc_errors(case: tuple[str, str]) -> None:
    path, text = case
    _front_end(text, path)  # imports resolve next to the original file


# ---- round trip ---------------------------------------------------------------------


def _without_positions(plan: Plan) -> Plan:
    """The plan minus where things were written (lines move when a file is formatted)."""
    circuits = tuple(
        replace(
            c,
            line=0,
            claims=tuple(
                replace(k, line=0, col=0, text="", id=k.id.split(":")[0] + k.kind) for k in c.claims
            ),
        )
        for c in plan.circuits
    )
    return replace(plan, circuits=circuits)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_formatting_keeps_the_plan(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    formatted = format_text(text, str(path))
    assert format_text(formatted, str(path)) == formatted  # idempotent
    before = compile_text(text, str(path))
    after = compile_text(formatted, str(path))
    assert _without_positions(after) == _without_positions(before)
    assert formatted.count("#") == text.count("#")  # no comment lost


HEAD = st.builds(lambda layer, head: f"{layer}.{head}", st.integers(0, 11), st.integers(0, 11))
MLP = st.builds(
    lambda lo, n: f"mlp {lo}..{lo + n}" if n else f"mlp {lo}", st.integers(0, 9), st.integers(0, 2)
)


@st.composite
def programs(draw: st.DrawFn) -> str:
    """Random valid programs in a deliberately ugly layout."""
    lines = [f"task t = sequence(months, members={draw(st.integers(2, 6))})"]
    body = []
    for g in range(draw(st.integers(1, 4))):
        members = draw(st.lists(st.one_of(HEAD, MLP), min_size=1, max_size=4))
        body.append(f"group g{g}   =   " + " ,".join(members))
    if draw(st.booleans()):
        body.append("heads " + ", ".join(draw(st.lists(HEAD, min_size=1, max_size=3))))
    threshold = draw(st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 3)))
    body.append(f"expect faithfulness >= {threshold}")
    sep = draw(st.sampled_from(["\n", "\n\n", " "]))
    comment = "  # a comment" if sep != " " else ""
    if draw(st.booleans()):
        body.append(f"role 9.1 successor(top={draw(st.integers(1, 10))}) >= {threshold}{comment}")
    if draw(st.booleans()):
        body.append("edge g0 -> logits")
    lines.append("circuit t on gpt2-small {" + sep + sep.join(body) + sep + "}")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(text=programs())
def test_round_trip_on_generated_programs(text: str) -> None:
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert _without_positions(compile_text(formatted)) == _without_positions(compile_text(text))


# ---- set algebra against Python's sets ---------------------------------------------

NODE = st.one_of(
    st.builds(lambda layer, head: (layer, head), st.integers(0, 3), st.integers(0, 3)),
    st.builds(lambda layer: (layer, None), st.integers(0, 3)),
)


@st.composite
def set_expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """(.circ expression, Python expression) over circuits a, b, c."""
    if depth >= 3 or draw(st.booleans()):
        name = draw(st.sampled_from("abc"))
        return name, name
    op = draw(st.sampled_from(["|", "&", "-"]))
    left = draw(set_expressions(depth + 1))
    right = draw(set_expressions(depth + 1))
    return f"({left[0]} {op} {right[0]})", f"({left[1]} {op} {right[1]})"


def _written(node: tuple[int, int | None]) -> str:
    return f"mlp {node[0]}" if node[1] is None else f"{node[0]}.{node[1]}"


@settings(max_examples=80, deadline=None)
@given(
    sets=st.lists(st.sets(NODE, min_size=1, max_size=6), min_size=3, max_size=3),
    expr=set_expressions(),
)
def test_set_algebra_matches_python_sets(
    sets: list[set[tuple[int, int | None]]], expr: tuple[str, str]
) -> None:
    from seqcirc.plan import Node

    circ, python = expr
    a, b, c = sets
    expected = eval(python, {}, {"a": a, "b": b, "c": c})  # `|`, `&`, `-` of Python sets
    text = "task t = sequence(months)\n" + "".join(
        f"circuit {n} on gpt2-small {{ heads {', '.join(_written(x) for x in s)} }}\n"
        for n, s in zip("abc", sets, strict=True)
    )
    text += f"circuit d = {circ}\nexpect d on t: faithfulness >= 0.5\n"
    if not expected:
        with pytest.raises(SeqcircError) as info:
            compile_text(text)
        assert [d.code for d in info.value.diagnostics] == ["E240"]
        return
    derived = compile_text(text).circuits[-1]
    assert set(derived.nodes) == {Node(layer, head) for layer, head in expected}
    assert format_text(format_text(text)) == format_text(text)
