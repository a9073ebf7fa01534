"""Token-level attention patterns (seqcirc.roles.patterns) and the paper's mixed prompts
(seqcirc.roles.mixed), on the role tests' planted GPT-2 (tests/roles_planted.py), whose
head 0.2 and layer-1 heads have zero queries and keys and so attend uniformly: the
pattern of query q is 1 / (q + 1) on every key k <= q, a closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from roles_planted import planted_bridge, planted_tokenizer

from seqcirc.errors import InputError
from seqcirc.plan import TaskSpec, params
from seqcirc.roles.attention import attends_scores
from seqcirc.roles.mixed import builtin_groups, mixed_prompts, tokenize_group
from seqcirc.roles.patterns import (
    attends_mean,
    end_row,
    head_patterns,
    pattern_record,
    task_group,
    task_token_attention,
)
from seqcirc.tasks import build_task


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return planted_tokenizer()


@pytest.fixture(scope="module")
def bridge():  # type: ignore[no-untyped-def]
    return planted_bridge()


@pytest.fixture(scope="module")
def task(tokenizer):  # type: ignore[no-untyped-def]
    spec = TaskSpec(name="months", generator="months", params=params(prompts=6, seed=0))
    return build_task(spec, tokenizer, prepend_bos=True, seed=0)


def _uniform(seq: int) -> np.ndarray:
    q = np.arange(seq)[:, None]
    return np.where(np.arange(seq)[None, :] <= q, 1.0 / (q + 1), 0.0)


def test_uniform_heads_give_the_closed_form(bridge, tokenizer, task):  # type: ignore[no-untyped-def]
    group = task_group(task, tokenizer)
    pats = head_patterns(bridge, group, [(1, 3), (0, 2)], batch_size=4)
    for head in ((1, 3), (0, 2)):
        assert pats[head].shape == (6, task.seq_len, task.seq_len)
        np.testing.assert_allclose(pats[head].mean(0), _uniform(task.seq_len), atol=1e-6)
    rec = pattern_record(group, pats[(1, 3)], "1.3", ("S2", "S1"))
    s2 = int(task.positions["S2"][0])
    assert rec["attends"]["mean"] == pytest.approx(1 / (s2 + 1))  # S2 at 9: 0.1
    assert rec["attends"]["cell"] == [s2, int(task.positions["S1"][0])]
    assert rec["labels"][0] == "'<bos>'" and rec["labels"][s2].startswith("S2 ")
    assert rec["labels"][-1].startswith("END ")
    assert end_row(rec)[0][1] == pytest.approx(1 / task.seq_len, abs=1e-4)


def test_attends_mean_is_the_role_claims_attends(bridge, tokenizer, task):  # type: ignore[no-untyped-def]
    # the previous-token head 0.0 is not uniform: a real check of the per-prompt indexing
    group = task_group(task, tokenizer)
    pats = head_patterns(bridge, group, [(0, 0)])[(0, 0)]
    want = attends_scores(bridge, task, "S2", "S1")[0, 0]
    assert attends_mean(pats, group, "S2", "S1") == pytest.approx(want, abs=1e-9)
    with pytest.raises(InputError) as info:
        attends_mean(pats, group, "S1", "S2")
    assert info.value.code == "E808"
    with pytest.raises(InputError) as info:
        attends_mean(pats, group, "S9", "S1")
    assert info.value.code == "E808" and "S1" in (info.value.hint or "")


def test_patterns_match_a_direct_run_with_cache(bridge, tokenizer):  # type: ignore[no-untyped-def]
    groups = builtin_groups("mixed", tokenizer, bos=0, seed=3)
    group = groups[-1]
    pats = head_patterns(bridge, group, [(0, 0)], batch_size=2)[(0, 0)]
    with torch.no_grad():
        _, cache = bridge.run_with_cache(torch.as_tensor(group.tokens))
    want = cache["blocks.0.attn.hook_pattern"][:, 0].double().numpy()
    np.testing.assert_allclose(pats, want, atol=1e-7)
    assert not np.allclose(pats.mean(0), _uniform(group.tokens.shape[1]))


def test_mixed_prompts_follow_the_authors_rules() -> None:
    groups = mixed_prompts(seed=0)
    assert list(groups) == [
        "digits in order", "digits in random order", "months in order",
        "months in random order", "number words and months in order",
        "random number words, months in order",
    ]  # fmt: skip
    assert groups["digits in order"][0].text == "1 2 3 4"
    assert groups["months in order"][0].text == "January February March April"
    assert groups["number words and months in order"][0].text == (
        "one January two February three March four April five"
    )
    for ordered, shuffled in zip(groups["digits in order"], groups["digits in random order"],
                                 strict=True):  # fmt: skip
        assert sorted(ordered.text.split()) == sorted(shuffled.text.split())
        assert ordered.text != shuffled.text
    words = [p.text.split()[0::2] for p in groups["random number words, months in order"]]
    assert all(w == words[0] for w in words)  # one draw of number words, months move on
    order = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    r2 = order.index(words[0][1])
    assert r2 >= 4 and order.index(words[0][3]) == r2 - 1  # r4: the word before r2
    months = [p.text.split()[1::2] for p in groups["random number words, months in order"]]
    assert months[0] == ["January", "February", "March", "April"] and months[4][0] == "May"
    assert mixed_prompts(seed=0) == groups and mixed_prompts(seed=1) != groups


def test_positions_on_a_tokenizer_that_splits_digits() -> None:
    from tests.llama_tiny import llama_tokenizer

    tok = llama_tokenizer()  # " 1" is "▁" + "1", as Llama-2 splits numerals
    prompts = mixed_prompts()["digits in order"][:2]
    (group,) = tokenize_group("digits", prompts, tok, bos=1)
    assert group.token_text[:3] == ("<s>", "▁", "1")  # BOS, the space piece, the digit
    assert group.positions["S1"].tolist() == [2, 2]
    assert group.positions["S4"].tolist() == [8, 8] == group.positions["END"].tolist()
    assert group.labels()[8] == "S4/END '4'"


def test_task_token_attention_for_the_report(bridge, tokenizer, task):  # type: ignore[no-untyped-def]
    rec = task_token_attention(bridge, tokenizer, task, "1.3", ("S2", "S1"))
    assert rec is not None and rec["n_prompts"] == 6 and "S2 -> S1" in rec["caption"]
    np.testing.assert_allclose(rec["pattern"], _uniform(task.seq_len), atol=1e-4)


def test_unknown_builtin_is_refused(tokenizer):  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as info:
        builtin_groups("mixd", tokenizer, bos=None)
    assert info.value.code == "E361"
