"""The authors' prompt set as generator options (docs/tasks.md): S1 balanced over the
first eight members (`s1=balanced`) and the joint filter of number words and months
(`filter_with=months`), each checked as a property of the generated data."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from tasks_fixtures import word_level_tokenizer

from seqcirc.checks import check_text
from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.plan import TaskSpec, params
from seqcirc.tasks.for_model import task_for_model
from seqcirc.tasks.generate import generate_prompts, parse_config
from seqcirc.tasks.sets import ORDERED_SETS


def _spec(gen: str, filter_correct: bool = False, **kw: Any) -> TaskSpec:
    return TaskSpec(name=gen, generator=gen, params=params(**kw), filter_correct=filter_correct)


@pytest.mark.parametrize(("prompts", "template"), [(1536, "all"), (48, "all"), (30, "born_in")])
def test_balanced_s1_is_each_of_the_first_eight_members_equally_often(prompts, template):  # type: ignore[no-untyped-def]
    records = generate_prompts(_spec("numerals", prompts=prompts, template=template, s1="balanced"))
    per_template = Counter((r.template, r.info["clean_members"][0]) for r in records)  # type: ignore[index]
    for key in {r.template for r in records}:
        counts = [per_template[(key, s1)] for s1 in range(8)]
        assert max(counts) - min(counts) <= 1 and sum(counts) == prompts // (
            3 - 2 * (template != "all")
        )
    if prompts == 1536:  # the authors' 64 per member and template, 192 per member
        assert set(per_template.values()) == {64}
    assert {r.info["clean_members"][0] for r in records} == set(range(8))  # type: ignore[index]


def test_balanced_s1_is_seeded_and_shared_by_every_sequence() -> None:
    def draws(gen: str, seed: int) -> list[tuple[Any, ...]]:
        recs = generate_prompts(_spec(gen, prompts=96, s1="balanced", seed=seed))
        return [(r.info["clean_members"], r.info["names"], r.template) for r in recs]

    assert draws("number_words", 4) == draws("months", 4) == draws("numerals", 4)
    assert draws("months", 4) != draws("months", 5)
    uniform = generate_prompts(_spec("months", prompts=96, seed=4))
    assert [r.clean for r in uniform] != [r.clean for r in generate_prompts(
        _spec("months", prompts=96, seed=4, s1="balanced"))]  # fmt: skip
    # the default is unchanged: no s1 in the meta of a task that does not ask for it
    assert "s1" not in parse_config(_spec("months")).as_params()
    assert parse_config(_spec("months", s1="balanced")).as_params()["s1"] == "balanced"


@pytest.mark.parametrize(
    ("kw", "filter_correct", "needle"),
    [({"s1": "even"}, False, "unknown s1 'even'"),
     ({"filter_with": "monts"}, True, "filter_with must name another sequence"),
     ({"filter_with": "months"}, True, "another sequence"),
     ({"filter_with": "number_words"}, False, "the task has none"),
     ({"filter_with": "days", "start": 8}, True, "start=8 would put answers past member 7")],
)  # fmt: skip
def test_bad_options_are_named(kw, filter_correct, needle):  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as err:
        parse_config(_spec("months", filter_correct, **kw))
    assert err.value.code in ("T102", "T105") and needle in err.value.message


@pytest.mark.parametrize(("args", "code"), [("s1=even", "E251"), ("filter_with=monts", "E205")])
def test_the_checks_name_bad_option_values(args: str, code: str) -> None:
    text = f"task months = sequence(months, {args})\ncircuit months on gpt2 {{ heads 1.1 }}"
    with pytest.raises(DiagnosticsError) as err:
        check_text(text, "t.circ")
    assert [d.code for d in err.value.diagnostics] == [code]
    check_text(
        "task m = sequence(months, s1=balanced, filter_with=number_words)\n  filter correct\n"
        "circuit m on gpt2 { heads 1.1 }",
        "t.circ",
    )


# ------------------------------------------------------------------ the joint filter

FAILS = {"number_words": 9, "months": 5}  # answer member the model gets wrong: ten, June


class SuccessorModel(torch.nn.Module):
    """A stand-in model for the word-level tokenizer's prompts "... S4 . N5 born in": at
    each position it predicts the successor of the token four back, except that it says
    S4 again where the successor is `ten` or `June` (so the two sequences fail on
    different prompts)."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__()
        self.vocab = len(tokenizer)
        self.next: dict[int, int] = {}
        for gen, bad in FAILS.items():
            ids = tokenizer.convert_tokens_to_ids(list(ORDERED_SETS[gen]))
            for j in range(len(ids) - 1):
                self.next[ids[j]] = ids[j] if j + 1 == bad else ids[j + 1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*tokens.shape, self.vocab)
        for b, s in np.ndindex(tokens.shape[0], tokens.shape[1] - 4):
            src = int(tokens[b, s])
            out[b, s + 4, self.next.get(src, src)] = 10.0
        return out


def test_joint_filter_keeps_or_drops_both_versions_of_a_prompt() -> None:
    tok = word_level_tokenizer()
    loaded = SimpleNamespace(
        tokenizer=tok, bridge=SuccessorModel(tok), identity=SimpleNamespace(prepend_bos=False)
    )
    none = InputError("nothing kept", code="T406")
    kw = dict(prompts=96, s1="balanced", seed=2)
    answers = [r.info["answer_member"] for r in generate_prompts(_spec("months", **kw))]
    alone = {
        gen: task_for_model(_spec(gen, True, **kw), loaded, none_kept=none)[1] for gen in FAILS
    }
    for gen, bad in FAILS.items():  # each sequence alone drops its own failures
        assert alone[gen] is not None
        assert alone[gen].kept.tolist() == [i for i, a in enumerate(answers) if a != bad]
    both = [i for i, a in enumerate(answers) if a not in FAILS.values()]
    tasks = {}
    for gen, other in (("number_words", "months"), ("months", "number_words")):
        task, report = task_for_model(
            _spec(gen, True, **kw, filter_with=other), loaded, none_kept=none
        )
        assert report is not None and report.kept.tolist() == both
        assert report.n_partner == answers.count(FAILS[other])
        assert task.meta["filter"]["partner"] == other  # type: ignore[index]
        assert f"{report.n_partner} whose {other} version failed" in report.summary()
        tasks[gen] = task
    assert tasks["months"].n_prompts == len(both) < 96
    # kept together: the two kept sets are the same prompts in two sequences
    for a, b in zip(tasks["months"].clean_text, tasks["number_words"].clean_text, strict=True):
        assert a.split(" in ")[0] == b.split(" in ")[0]
