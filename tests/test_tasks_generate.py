"""The paper's prompt generators: format, rules on every built-in set, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from seqcirc.errors import InputError
from seqcirc.plan import TaskSpec, params
from seqcirc.tasks.generate import generate_prompts, parse_config, render
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.sets import DEFAULT_RANGE, NAMES, ORDERED_SETS

SETS = sorted(ORDERED_SETS)
CORRUPTIONS = ["random_members", "shuffled_members", "random_tokens"]


def spec(generator: str = "numerals", corruption: str = "random_members", **kw: object) -> TaskSpec:
    return TaskSpec(name="t", generator=generator, params=params(**kw), corruption=corruption)


def members_of(rec: PromptRecord, n: int, *, corrupted: bool = False) -> list[str]:
    return [rec.word(f"S{i}", corrupted=corrupted) for i in range(1, n + 1)]


def skeleton(text: str, words: tuple[tuple[str, int, int], ...], keep_names: bool) -> str:
    """The prompt with members (and, unless keep_names, names) replaced by their slot."""
    out, last = [], 0
    for pos, start, end in words:
        out.append(text[last:start])
        out.append(text[start:end] if keep_names and pos.startswith("N") else f"<{pos}>")
        last = end
    out.append(text[last:])
    return "".join(out)


# --- the paper's format -------------------------------------------------------------


def test_render_matches_the_papers_example():
    text, sep, spans = render(
        "{N} born in {S}.", ["John", "Mary", "Anna", "Paul", "Jamie"], ["1", "2", "3", "4"]
    )
    assert text == ("John born in 1. Mary born in 2. Anna born in 3. Paul born in 4. Jamie born in")
    assert sep + "5" == " 5"
    assert [p for p, _, _ in spans] == ["N1", "S1", "N2", "S2", "N3", "S3", "N4", "S4", "N5"]


# Example prompt 0 of each paper task at seed 0 (pinned: also guards cross-machine
# determinism of numpy's PCG64 stream). The three tasks share the index draws, as the
# paper's replace_nw_seqtype did: the same prompt with a different sequence type.
PAPER_EXAMPLES = {
    "numerals": (
        "Paul born in 7. Kate born in 8. Peter born in 9. Mary born in 10. Alex born in",
        " 11",
        " 10",
    ),
    "number_words": (
        "Paul born in seven. Kate born in eight. Peter born in nine. Mary born in ten. "
        "Alex born in",
        " eleven",
        " ten",
    ),
    "months": (
        "Paul born in July. Kate born in August. Peter born in September. "
        "Mary born in October. Alex born in",
        " November",
        " October",
    ),
}


@pytest.mark.parametrize("generator", sorted(PAPER_EXAMPLES))
def test_paper_task_example_prompt(generator):
    recs = generate_prompts(spec(generator, prompts=3, seed=0))
    first = recs[0]
    assert (first.clean, first.correct, first.incorrect) == PAPER_EXAMPLES[generator]
    assert first.template == "born_in"
    assert [r.template for r in recs] == ["born_in", "done_in", "lost_in"]
    assert re.fullmatch(r"(\w+ done in \w+\. ){4}\w+ done in", recs[1].clean)
    assert re.fullmatch(r"(\w+ lost in \w+\. ){4}\w+ lost in", recs[2].clean)


def test_paper_defaults_numerals():
    """1536 prompts, 512 per template, S1 over the first 8 members, answers 5..12."""
    recs = generate_prompts(spec("numerals", seed=3))
    assert len(recs) == 1536
    assert Counter(r.template for r in recs) == {"born_in": 512, "done_in": 512, "lost_in": 512}
    assert {r.word("S1") for r in recs} == {str(i) for i in range(1, 9)}
    assert {r.correct for r in recs} == {f" {i}" for i in range(5, 13)}
    cfg = parse_config(spec("numerals"))
    assert (cfg.members, cfg.start, cfg.range, cfg.interval) == (4, 8, 12, 1)


# --- the paper's rules, on every built-in set and corruption -------------------------


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("generator", SETS)
def test_rules_on_every_set(generator, corruption):
    words = ORDERED_SETS[generator]
    index = {w: i for i, w in enumerate(words)}
    n_range = DEFAULT_RANGE[generator]
    recs = generate_prompts(spec(generator, corruption, prompts=150, seed=7))
    assert Counter(r.template for r in recs) == {"born_in": 50, "done_in": 50, "lost_in": 50}
    start = n_range - 4
    for r in recs:
        clean = [index[w] for w in members_of(r, 4)]
        corrupt = [index[w] for w in members_of(r, 4, corrupted=True)]
        # Clean: consecutive members, S1 among the first `start`, answer inside the range.
        assert clean == list(range(clean[0], clean[0] + 4))
        assert 0 <= clean[0] < start
        assert r.correct == " " + words[clean[-1] + 1]
        assert clean[-1] + 1 < n_range
        assert r.incorrect == " " + words[clean[-1]]
        # Corrupted: never a consecutive ending; members from the right pool.
        assert corrupt[-1] != corrupt[-2] + 1
        if corruption == "shuffled_members":
            assert sorted(corrupt) == clean and corrupt != clean
        elif corruption == "random_members":
            assert max(corrupt) < n_range
        # Aligned twins: same template words, and same names unless random_tokens.
        keep = corruption != "random_tokens"
        assert skeleton(r.clean, r.clean_words, keep) == skeleton(
            r.corrupted, r.corrupted_words, keep
        )
        names = [r.word(f"N{i}") for i in range(1, 6)]
        assert len(set(names)) == 5 and set(names) <= set(NAMES)
    if corruption == "random_tokens" and len(words) > n_range:
        # Drawn from the whole set: some corrupted member lies beyond the task's range.
        assert any(index[w] >= n_range for r in recs for w in members_of(r, 4, corrupted=True))


def test_random_members_draws_cover_the_range():
    recs = generate_prompts(spec("months", prompts=600, seed=1))
    seen = {w for r in recs for w in members_of(r, 4, corrupted=True)}
    assert seen == set(ORDERED_SETS["months"])


@pytest.mark.parametrize(
    ("interval", "members", "n_range", "start"), [(2, 4, 12, 4), (3, 3, 12, 3), (10, 4, 100, 60)]
)
def test_intervals(interval, members, n_range, start):
    recs = generate_prompts(
        spec("numerals", prompts=90, interval=interval, members=members, range=n_range, seed=2)
    )
    assert (
        parse_config(spec("numerals", interval=interval, members=members, range=n_range)).start
        == start
    )
    for r in recs:
        nums = [int(w) for w in members_of(r, members)]
        assert nums == [nums[0] + interval * j for j in range(members)]
        assert 1 <= nums[0] <= start
        assert r.correct == f" {nums[-1] + interval}" and int(r.correct) <= n_range
        bad = [int(w) for w in members_of(r, members, corrupted=True)]
        assert bad[-1] != bad[-2] + interval
        assert len(r.clean_words) == 2 * members + 1


def test_members_and_start():
    recs = generate_prompts(spec("days", template="born_in", members=2, start=1, prompts=9))
    assert {r.clean.split(". ")[0].split()[-1] for r in recs} == {"Monday"}
    assert all(r.correct == " Wednesday" for r in recs)
    assert all(r.template == "born_in" for r in recs)


def test_no_successor_end_can_be_switched_off():
    on = generate_prompts(spec("numerals", prompts=600, seed=4))
    t = TaskSpec("t", "numerals", params(prompts=600, seed=4),
                 corruption_params=params(no_successor_end=False))  # fmt: skip
    off = generate_prompts(t)

    def consecutive(rs):
        return sum(
            int(r.word("S4", corrupted=True)) == int(r.word("S3", corrupted=True)) + 1 for r in rs
        )

    assert consecutive(on) == 0
    # 1/12 of random pairs end consecutively (minus the S3=12 case): ~ 600 * 11/144.
    assert 20 < consecutive(off) < 75


def test_free_template():
    recs = generate_prompts(spec("months", template="{N} was born in {S}.", prompts=4))
    assert re.fullmatch(r"(\w+ was born in \w+\. ){4}\w+ was born in", recs[0].clean)
    assert recs[0].template == "custom"
    # {S} before {N}: the final unit is cut before {S}, so there is no N5.
    recs = generate_prompts(spec("days", template="In {S}, {N} was born.", members=3, prompts=2))
    r = recs[0]
    assert re.fullmatch(r"(In \w+, \w+ was born\. ){3}In", r.clean)
    assert [p for p, _, _ in r.clean_words] == ["S1", "N1", "S2", "N2", "S3", "N3"]
    assert r.correct == " " + ORDERED_SETS["days"][ORDERED_SETS["days"].index(r.word("S3")) + 1]


# --- determinism -------------------------------------------------------------------


def _dump(recs: list[PromptRecord]) -> str:
    return json.dumps(
        [(r.clean, r.corrupted, r.correct, r.incorrect, r.template, r.clean_words) for r in recs]
        + [r.corrupted_words for r in recs]
    )


def test_same_seed_same_prompts_different_seed_different():
    a = _dump(generate_prompts(spec("months", prompts=300, seed=11)))
    b = _dump(generate_prompts(spec("months", prompts=300, seed=11)))
    c = _dump(generate_prompts(spec("months", prompts=300, seed=12)))
    assert a == b
    assert a != c


def test_seed_argument_is_the_default_and_params_win():
    by_arg = _dump(generate_prompts(spec("months", prompts=30), seed=5))
    by_param = _dump(generate_prompts(spec("months", prompts=30, seed=5), seed=99))
    assert by_arg == by_param
    assert parse_config(spec("months")).seed == 0


_DIGEST_CODE = """
import hashlib, json
from seqcirc.plan import TaskSpec, params
from seqcirc.tasks.generate import generate_prompts
recs = generate_prompts(TaskSpec("t", "numerals", params(seed=0)))
blob = json.dumps([[r.clean, r.corrupted, r.correct, r.incorrect] for r in recs])
print(hashlib.sha256(blob.encode()).hexdigest())
"""


def test_byte_identical_across_processes():
    """Fresh interpreters with different hash seeds produce the same 1536 prompts."""
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST_CODE],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        digests.add(out.stdout.strip())
    recs = generate_prompts(TaskSpec("t", "numerals", params(seed=0)))
    blob = json.dumps([[r.clean, r.corrupted, r.correct, r.incorrect] for r in recs])
    digests.add(hashlib.sha256(blob.encode()).hexdigest())
    assert len(digests) == 1


@pytest.mark.parametrize(("step", "members"), [(10, 4), (100, 3)])
def test_step_numerals_are_multiples(step: int, members: int) -> None:
    """step=10: "10 20 30 40" -> " 50"; step=100: "100 200 300" -> " 400"; corrupted
    members are multiples too, and the default step leaves every prompt as it was."""
    recs = generate_prompts(spec(step=step, members=members, prompts=60, seed=4, range=12))
    for r in recs:
        shown = [int(w) for w in members_of(r, members)]
        assert [x % step for x in shown] == [0] * members
        assert shown == [shown[0] + step * k for k in range(members)]
        assert r.correct == f" {shown[-1] + step}" and r.incorrect == f" {shown[-1]}"
        assert all(int(w) % step == 0 for w in members_of(r, members, corrupted=True))
    firsts = {int(members_of(r, members)[0]) for r in recs}
    assert min(firsts) == step and max(firsts) <= step * (12 - members)
    plain = generate_prompts(spec(prompts=30, seed=4))
    assert generate_prompts(spec(prompts=30, seed=4, step=1)) == plain
    assert "step" not in parse_config(spec(prompts=30)).as_params()
    assert parse_config(spec(step=10, prompts=30)).as_params()["step"] == 10


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "code", "needle"),
    [
        (TaskSpec("t", "month"), "T101", "did you mean months"),
        (spec(membres=4), "T102", "did you mean members"),
        (spec(members=1), "T102", "members must be >= 2"),
        (spec(members=True), "T102", "members must be an integer"),
        (spec(prompts=100), "T106", "use prompts=99 or 102"),
        (spec(start=9), "T105", "use start <= 8"),
        (spec(interval=3), "T105", "need at least 13 members"),
        (spec(range=101), "T105", "numerals has only 100"),
        (spec(template="bron_in"), "T103", "did you mean born_in"),
        (spec(template="{N} and {N} in {S}"), "T103", "exactly one {N}"),
        (spec(template="{S} then {N}."), "T103", "words before {S}"),
        (spec(corruption="random_member"), "T110", "did you mean random_members"),
        (TaskSpec("t", "months", correct="prev"), "T104", "correct=next"),
        (spec("months", step=10), "T102", "step applies to numerals, not months"),
        (spec(step=0), "T102", "step must be >= 1"),
        (spec(step=10_001), "T102", "step must be <= 10000"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_bad_parameters_are_named(task, code, needle):
    with pytest.raises(InputError) as err:
        generate_prompts(task)
    assert err.value.code == code
    assert needle in err.value.render()
    assert "task t" in err.value.message
