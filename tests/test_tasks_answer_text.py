"""Answers as text where the metric generates (docs/tasks.md): several tokens accepted
(the task keeps each answer's first token and the tokenizer's decode), an answer the
tokenizer cannot write still T310; without generation T310 says how to score it."""

from __future__ import annotations

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
