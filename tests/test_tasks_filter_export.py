"""The paper's filter (pure function) and the JSONL export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tasks_fixtures import gpt2_like, word_level_tokenizer

from seqcirc.plan import TaskSpec, params
from seqcirc.tasks import build_task, export_lines, filter_correct, write_export


def test_filter_hand_worked():
    # ratio test: 0.5 > 0.4 yes; 0.3 > 0.3 no (strict); 0.2 > 0.2 no; 0.1 > 0.4 no;
    # 0.6 > 0.1 yes but not top-1.
    report = filter_correct(
        [0.5, 0.3, 0.2, 0.1, 0.6],
        [0.2, 0.15, 0.1, 0.2, 0.05],
        top1_correct=[True, True, False, True, False],
    )
    assert report.kept.tolist() == [0]
    assert (report.n_total, report.n_kept, report.n_not_top1, report.n_low_ratio) == (5, 1, 2, 2)
    assert report.summary() == (
        "kept 1 of 5 prompts (top-1 correct and p(correct) > 2·p(incorrect)); "
        "dropped 4: 2 not top-1, 2 below the ratio"
    )
    assert report.as_dict()["n_kept"] == 1


def test_filter_without_top1_and_other_ratio():
    report = filter_correct(np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.15, 0.1]), ratio=1.5)
    assert report.kept.tolist() == [0, 1, 2]
    report = filter_correct([0.5, 0.3, 0.2], [0.2, 0.15, 0.1], ratio=2.4)
    assert report.kept.tolist() == [0] and report.n_low_ratio == 2


@pytest.mark.parametrize(
    ("pc", "pi", "top1"),
    [([0.5], [0.1, 0.2], None), ([1.5], [0.1], None), ([np.nan], [0.1], None),
     ([0.5, 0.2], [0.1, 0.1], [True])],
)  # fmt: skip
def test_filter_rejects_malformed_inputs(pc, pi, top1):
    with pytest.raises(ValueError):
        filter_correct(pc, pi, top1_correct=top1)


def test_filter_subsets_a_task():
    tok = word_level_tokenizer()
    task = build_task(TaskSpec("t", "months", params(prompts=6)), tok, prepend_bos=True)
    report = filter_correct([0.9, 0.1, 0.9, 0.1, 0.9, 0.9], [0.1] * 6)
    kept = task.subset(report.kept)
    assert kept.n_prompts == 4
    assert kept.clean_text == tuple(task.clean_text[i] for i in (0, 2, 4, 5))
    assert np.array_equal(kept.positions["S3"], task.positions["S3"][[0, 2, 4, 5]])


def _task(seed=0):
    spec = TaskSpec("months", "months", params(prompts=9, seed=seed), corruption="shuffled_members")
    return build_task(spec, gpt2_like(), prepend_bos=True)


def test_export_holds_exact_prompts_ids_and_answers(tmp_path):
    task = _task()
    path = tmp_path / "out.jsonl"
    assert write_export(task, path) == 9
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10
    head = json.loads(lines[0])
    assert head["task"] == "months"
    assert head["meta"]["seed"] == 0 and head["meta"]["generator"] == "months"
    assert head["meta"]["params"]["corruption"] == "shuffled_members"
    assert head["meta"]["prepend_bos"] is True
    tok = gpt2_like()
    for i, line in enumerate(lines[1:]):
        row = json.loads(line)
        assert row["index"] == i
        assert row["clean"] == task.clean_text[i] and row["corrupted"] == task.corrupted_text[i]
        assert row["clean_ids"] == task.clean[i].tolist()
        assert row["corrupted_ids"] == task.corrupted[i].tolist()
        # Reproducible outside seqcirc: the ids are the tokenizer's, BOS first.
        assert row["clean_ids"] == [tok.bos_token_id] + tok(row["clean"])["input_ids"]
        assert tok(row["correct"])["input_ids"] == [row["correct_id"]]
        assert tok(row["incorrect"])["input_ids"] == [row["incorrect_id"]]
        assert row["positions"]["END"] == len(row["clean_ids"]) - 1
        s4 = row["positions"]["S4"]
        assert tok.decode([row["clean_ids"][s4]]) == " " + row["incorrect"].strip()


def test_export_is_byte_identical_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_export(_task(0), a)
    write_export(_task(0), b)
    write_export(_task(1), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert export_lines(_task(0)) == a.read_text(encoding="utf-8").splitlines()


def test_export_of_a_filtered_subset_decodes_answers():
    task = _task()
    kept = task.subset(np.array([1, 4]))
    with pytest.raises(ValueError, match="pass the tokenizer"):
        export_lines(kept)
    rows = [json.loads(line) for line in export_lines(kept, gpt2_like())[1:]]
    full = [json.loads(line) for line in export_lines(task)[1:]]
    assert [r["correct"] for r in rows] == [full[1]["correct"], full[4]["correct"]]
    assert [r["clean_ids"] for r in rows] == [full[1]["clean_ids"], full[4]["clean_ids"]]
    assert "template" not in rows[0]
