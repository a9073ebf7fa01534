"""Tokenization checks and TokenizedTask building, on word-level and byte-level BPE
tokenizers built in code."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from tasks_fixtures import BOS, gpt2_like, word_level_tokenizer

from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.plan import TaskSpec, params
from seqcirc.tasks import build_task
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.sets import ORDERED_SETS
from seqcirc.tasks.tokenization import _word_token, tokenize_records

NAMED = [f"S{i}" for i in range(1, 5)] + [f"N{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def words_tok():
    return word_level_tokenizer()


@pytest.fixture(scope="module")
def gpt2_tok():
    return gpt2_like()


def spec(generator="numerals", corruption="random_members", metric="logit_diff", **kw):
    kw.setdefault("prompts", 30)
    return TaskSpec(
        name="t", generator=generator, params=params(**kw), corruption=corruption, metric=metric
    )


def check_task(task, tok, bos: bool, space: str, first_space: str = ""):
    """Every named position holds its word, in both twins; END is the last token."""
    n, seq = task.clean.shape
    assert task.corrupted.shape == (n, seq)
    offset = 1 if bos else 0
    if bos:
        assert (task.clean[:, 0] == tok.bos_token_id).all()
        assert (task.corrupted[:, 0] == tok.bos_token_id).all()
    assert (task.positions["END"] == seq - 1).all()
    assert (task.answer_pos == seq - 1).all()
    for i in range(n):
        clean = tok.convert_ids_to_tokens(task.clean[i].tolist())
        corrupted = tok.convert_ids_to_tokens(task.corrupted[i].tolist())
        words = task.clean_text[i].replace(".", " .").split()
        bad_words = task.corrupted_text[i].replace(".", " .").split()
        # Word-level: tokens are the words; check positions against the text directly.
        for pos in NAMED:
            p = int(task.positions[pos][i])
            k = int(pos[1:])
            slot = 5 * (k - 1) + (3 if pos[0] == "S" else 0)  # "N born in S ." units
            lead = space if slot > 0 else first_space
            assert clean[p] == lead + words[slot]
            assert corrupted[p] == lead + bad_words[slot]
        assert clean[-1] == space + "in"
        ans = tok.convert_ids_to_tokens([int(task.correct[i]), int(task.incorrect[i])])
        assert ans == [space + task.meta["correct_text"][i].strip(),
                       space + task.meta["incorrect_text"][i].strip()]  # fmt: skip
    # "N1 born in S1 ." x4 + "N5 born in" = 23 tokens.
    assert seq == 23 + offset
    assert task.positions["S1"][0] == 3 + offset and task.positions["N5"][0] == 20 + offset


@pytest.mark.parametrize("bos", [True, False], ids=["bos", "no_bos"])
@pytest.mark.parametrize("generator", sorted(ORDERED_SETS))
def test_word_level_every_set(generator, bos, words_tok):
    task = build_task(spec(generator, "random_tokens"), words_tok, prepend_bos=bos)
    check_task(task, words_tok, bos, space="")
    assert task.meta["generator"] == generator
    assert task.meta["template_counts"] == {"born_in": 10, "done_in": 10, "lost_in": 10}
    assert task.meta["seed"] == 0


@pytest.mark.parametrize("trim", [False, True], ids=["offsets_with_space", "trimmed_offsets"])
@pytest.mark.parametrize("generator", ["numerals", "number_words", "months"])
def test_gpt2_like_byte_level(generator, trim):
    tok = gpt2_like(trim_offsets=trim)
    task = build_task(spec(generator), tok, prepend_bos=True)
    check_task(task, tok, True, space="Ġ", first_space="Ġ")


def test_seed_argument_reaches_the_generator(words_tok):
    a = build_task(spec("months"), words_tok, prepend_bos=True, seed=3)
    b = build_task(spec("months", seed=3), words_tok, prepend_bos=True)
    c = build_task(spec("months"), words_tok, prepend_bos=True)
    assert np.array_equal(a.clean, b.clean) and np.array_equal(a.corrupted, b.corrupted)
    assert not np.array_equal(a.clean, c.clean)
    assert a.meta["seed"] == 3


# --- errors name the word and the tokens --------------------------------------------


def test_multi_token_member_is_named():
    tok = gpt2_like(exclude=["12"])  # " 12" becomes "Ġ1" + "2"
    with pytest.raises(DiagnosticsError) as err:
        build_task(spec("numerals", prompts=90, metric="prob"), tok, prepend_bos=True)
    text = err.value.render()
    assert "answer ' 12' is 2 tokens: 'Ġ1' + '2'" in text
    assert re.search(r"S[1-4] '12' is not one token: the (clean|corrupted) prompt splits it "
                     r"into 'Ġ1' \+ '2'", text)  # fmt: skip
    assert err.value.code == "T310"


def test_multi_token_month_in_prompt_only():
    """A member that only occurs inside prompts (never as an answer) is still caught."""
    tok = gpt2_like(exclude=["January"])
    task = spec("months", template="born_in", start=1, prompts=3)
    with pytest.raises(DiagnosticsError) as err:
        build_task(task, tok, prepend_bos=False)
    assert (
        "S1 'January' is not one token: the clean prompt splits it into "
        "'ĠJan' + 'u' + 'a' + 'r' + 'y'" in err.value.render()
    )


def test_word_merged_with_punctuation_is_refused():
    # Without a punctuation split "4." is one token: S4 would not be its own position.
    tok = word_level_tokenizer(extra=[f"{i}." for i in range(1, 13)], punctuation=False)
    with pytest.raises(DiagnosticsError) as err:
        build_task(spec("numerals", template="born_in", prompts=3), tok, prepend_bos=True)
    assert re.search(r"S1 '\d+' is not one token: the clean prompt splits it into '\d+\.'",
                     err.value.render())  # fmt: skip


def test_unknown_word_is_named(words_tok):
    tok = word_level_tokenizer(exclude=["Sunday"])
    with pytest.raises(DiagnosticsError) as err:
        build_task(spec("days", template="born_in", prompts=30), tok, prepend_bos=True)
    assert "'Sunday' not in the tokenizer's vocabulary (became '[UNK]')" in err.value.render()


def test_leading_space_must_belong_to_the_token():
    # "in September": the space is its own token "Ġ", then "September".
    assert _word_token("in September", [(0, 2), (2, 3), (3, 12)], 3, 12) == (None, [1, 2])
    assert _word_token("in September", [(0, 2), (2, 12)], 3, 12) == (1, [1])
    assert _word_token("in September", [(0, 2), (3, 12)], 3, 12) == (1, [1])  # trimmed
    assert _word_token("in Sept.", [(0, 2), (2, 8)], 3, 7) == (None, [1])  # merged "."


def _rec(clean, corrupted, correct=" 5", incorrect=" 4", line=1):
    return PromptRecord(clean, corrupted, correct, incorrect, source="p.jsonl", line=line)


def test_misaligned_twins_name_the_line(words_tok):
    recs = [
        _rec("John born in 4. Mary born in", "John born in 9. Mary born in", line=1),
        _rec("John born in 4. Mary born in", "John born in 9 Mary born in", line=2),
    ]
    with pytest.raises(DiagnosticsError) as err:
        tokenize_records(recs, words_tok, name="t", prepend_bos=True)
    assert err.value.code == "T314"
    assert "p.jsonl:2:1: error[T314]: task t: the clean prompt has 8 tokens, the corrupted 7" in (
        err.value.render()
    )


def test_prompts_of_different_lengths_are_padded_on_the_right(words_tok):
    recs = [
        _rec("John born in 4. Mary born in", "John born in 9. Mary born in", line=1),
        _rec("Mary born in", "John born in", line=3),
    ]
    task = tokenize_records(recs, words_tok, name="t", prepend_bos=True)
    short = [words_tok.bos_token_id, *words_tok("Mary born in")["input_ids"]]
    assert task.lengths is not None and task.lengths.tolist() == [9, 4]
    assert task.answer_pos.tolist() == [8, 3]  # each prompt's own last token
    assert task.clean[1].tolist() == short + [0] * 5  # no pad or EOS token: id 0
    assert task.real_ids(1) == short and task.real_ids(1, "corrupted")[1] != short[1]
    same = tokenize_records(recs[:1] * 2, words_tok, name="t", prepend_bos=True)
    assert same.lengths is None and not same.ragged
    with pytest.raises(InputError) as err:
        task.require_one_length("this")
    assert err.value.code == "T315" and "4 to 9 tokens" in err.value.message


def test_multi_token_answer_from_a_file():
    tok = gpt2_like(exclude=["12"])
    recs = [_rec("Mary born in 11. Tom born in", "Mary born in 3. Tom born in", " 12", " 11")]
    with pytest.raises(DiagnosticsError) as err:
        tokenize_records(recs, tok, name="t", prepend_bos=False)
    assert "p.jsonl:1:1: error[T310]: task t: answer ' 12' is 2 tokens: 'Ġ1' + '2'" in (
        err.value.render()
    )
    # the metrics that read every answer token take it (tokenize_records's multi_token)
    task = tokenize_records(recs, tok, name="t", prepend_bos=False, multi_token=True)
    assert task.multi_token and task.correct_len.tolist() == [2]  # type: ignore[union-attr]
    assert tok.convert_ids_to_tokens(task.correct_ids[0].tolist()) == ["Ġ1", "2"]  # type: ignore[index]
    assert task.incorrect_ids.tolist() == [[task.incorrect[0]]]  # type: ignore[union-attr]
    assert task.correct[0] == task.correct_ids[0, 0]  # type: ignore[index]
    from seqcirc.tasks.export import export_lines
    from seqcirc.tasks.filtering import keep_prompts

    row = json.loads(export_lines(task)[1])
    assert row["correct_ids"] == task.correct_ids[0].tolist() and row["correct"] == " 12"  # type: ignore[index]
    sub = task.subset(np.asarray([0]))  # no answer texts in meta: decoded, every token
    sub.meta.pop("correct_text"), sub.meta.pop("incorrect_text")
    assert json.loads(export_lines(sub, tok)[1])["correct"] == " 12"
    assert keep_prompts(task, [0]).correct_len.tolist() == [2]  # type: ignore[union-attr]


def test_bos_required_when_prepending():
    tok = word_level_tokenizer()
    tok.bos_token = None
    with pytest.raises(InputError) as err:
        build_task(spec("months"), tok, prepend_bos=True)
    assert err.value.code == "T303"
    assert build_task(spec("months"), tok, prepend_bos=False).seq_len == 23


def test_bos_token_is_the_tokenizers(words_tok):
    task = build_task(spec("letters"), words_tok, prepend_bos=True)
    assert words_tok.convert_ids_to_tokens([int(task.clean[0, 0])]) == [BOS]


def test_prompts_must_share_named_positions(words_tok):
    a = PromptRecord("Mary born in", "John born in", " 5", " 4", (("N1", 0, 4),),
                     (("N1", 0, 4),))  # fmt: skip
    b = PromptRecord("Mary born in", "John born in", " 5", " 4")
    with pytest.raises(DiagnosticsError) as err:
        tokenize_records([a, b], words_tok, name="t", prepend_bos=False)
    assert "task t: prompt 1 has no position N1" in err.value.render()
