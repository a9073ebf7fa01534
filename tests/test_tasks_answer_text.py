"""Answers as text where the metric generates (docs/tasks.md): several tokens accepted
(the task keeps each answer's first token and the tokenizer's decode), an answer the
tokenizer cannot write still T310; without generation T310 says how to score it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from seqcirc.errors import DiagnosticsError
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.tokenization import tokenize_records
from tests.tasks_fixtures import gpt2_like, word_level_tokenizer


def _rec(correct: str, incorrect: str = " 11") -> PromptRecord:
    return PromptRecord("Mary born in 11. Tom born in", "Mary born in 3. Tom born in",
                        correct, incorrect, source="p.jsonl", line=1)  # fmt: skip


def test_several_token_answers_are_text_when_the_metric_generates() -> None:
    tok = gpt2_like(exclude=["12"])
    task = tokenize_records([_rec(" 12")], tok, name="t", prepend_bos=False, generates=True)
    assert tok.convert_ids_to_tokens([int(task.correct[0])]) == ["Ġ1"]  # the first of "Ġ1" + "2"
    assert task.decode is not None and task.decode([int(task.correct[0])]) == " 1"
    with pytest.raises(DiagnosticsError) as err:
        tokenize_records([_rec(" 12")], tok, name="t", prepend_bos=False)
    assert "T310" in err.value.render() and "accuracy(generate" in err.value.render()


def test_an_answer_with_the_unknown_token_is_refused_even_so() -> None:
    tok = word_level_tokenizer()
    with pytest.raises(DiagnosticsError) as err:
        tokenize_records([_rec(" 12 zzz")], tok, name="t", prepend_bos=False, generates=True)
    text = err.value.render()
    assert "T310" in text and "with the unknown token" in text and "must be known tokens" in text


def test_llama_2_numerals_are_named_at_their_digit_when_the_metric_generates() -> None:
    """Llama-2 writes " 5" as "▁" + "5": with a generating metric the member is named at
    its digit and the answer is two tokens; without one, T310 and T312 as before."""
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks.build import build_task
    from tests.llama_tiny import llama_tokenizer

    tok = llama_tokenizer()
    spec = TaskSpec(
        name="numerals_1to9", generator="numerals",
        params=params(members=4, range=9, start=5, prompts=6, seed=0, template="all"),
        corruption="shuffled_members", metric="accuracy",
        metric_params=params(generate=True, max_new_tokens=3),
    )  # fmt: skip
    task = build_task(spec, tok, prepend_bos=True)
    assert task.clean.shape == (6, 1 + 4 * 6 + 3)  # BOS, "N born in ▁ d ." x 4, "N born in"
    for i in range(6):
        pieces = tok.convert_ids_to_tokens(task.clean[i].tolist())
        members = [pieces[task.positions[f"S{k}"][i]] for k in range(1, 5)]
        assert members == task.clean_text[i].replace(".", "").split()[3::4]  # the digits
        assert pieces[task.positions["S1"][i] - 1] == "▁"
        for twin in (task.clean, task.corrupted):  # shuffled: the same index holds a digit
            assert tok.convert_ids_to_tokens([int(twin[i, task.positions["S2"][i]])])[0].isdigit()
    answers = {tuple(tok.tokenize(a)) for a in task.meta["correct_text"]}
    assert all(len(a) == 2 and a[0] == "▁" for a in answers)
    # without generation a member of several tokens cannot be named (T312); under a
    # one-token metric the answers stop too (T310); accuracy reads every answer token
    for metric, codes in (("accuracy", {"T312"}), ("prob", {"T310", "T312"})):
        with pytest.raises(DiagnosticsError) as err:
            build_task(replace(spec, metric=metric, metric_params=()), tok, prepend_bos=True)
        assert {d.code for d in err.value.diagnostics} >= codes
