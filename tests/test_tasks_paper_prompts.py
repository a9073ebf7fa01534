"""The paper's own prompts (hypotheses/data/paper-prompts, MIT) load as they are, with
GPT-2's real tokenizer (tests/data/gpt2-tokenizer): 1,536 rows each, 512 per template,
23 tokens without BOS (as the authors ran them), ids equal to GPT-2's tokenization."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import DiagnosticsError
from seqcirc.plan import TaskSpec
from seqcirc.tasks import build_task
from seqcirc.tasks.prompt_files import load_prompt_file

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "hypotheses" / "data" / "paper-prompts"
TASKS = ("numerals", "number_words", "months")


@pytest.fixture(scope="module")
def gpt2() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(ROOT / "tests" / "data" / "gpt2-tokenizer"))


def test_licence_and_provenance_are_shipped() -> None:
    licence = (PROMPTS / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2023" in licence
    assert "apartresearch/seqcont_circuits" in (PROMPTS / "README.md").read_text()


@pytest.mark.parametrize("name", TASKS)
def test_file_keeps_its_labels(name: str) -> None:
    records = load_prompt_file(PROMPTS / f"{name}.jsonl")
    assert len(records) == 1536
    assert Counter(r.template for r in records) == {"done_in": 512, "lost_in": 512, "born_in": 512}
    assert records[0].info["id"] == f"{name}-done-0"
    members = records[0].info["members"]
    assert isinstance(members, list) and len(members) == 4
    assert all(f" {m}." in records[0].clean for m in members)


@pytest.mark.parametrize("name", TASKS)
def test_file_tokenizes_to_23_gpt2_tokens_without_bos(gpt2: Any, name: str) -> None:
    path = PROMPTS / f"{name}.jsonl"
    spec = TaskSpec(name, file=str(path), bos="off")
    task = build_task(spec, gpt2, prepend_bos=True)  # GPT-2's loader would prepend BOS
    assert task.meta["bos"] == "off" and task.meta["prepend_bos"] is False
    assert task.clean.shape == task.corrupted.shape == (1536, 23)
    assert (task.answer_pos == 22).all()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert task.clean.tolist() == [gpt2(r["clean"])["input_ids"] for r in rows]
    assert task.corrupted.tolist() == [gpt2(r["corrupted"])["input_ids"] for r in rows]
    assert task.correct.tolist() == [gpt2(r["correct"])["input_ids"][0] for r in rows]
    assert task.incorrect.tolist() == [gpt2(r["incorrect"])["input_ids"][0] for r in rows]
    # with BOS: one token longer, the same ids after it
    with_bos = build_task(TaskSpec(name, file=str(path)), gpt2, prepend_bos=True)
    assert with_bos.seq_len == 24 and (with_bos.clean[:, 1:] == task.clean).all()


def test_bad_labels_are_t201(tmp_path: Path) -> None:
    row = {"clean": "Ann born in 4. Bob born in", "corrupted": "Ann born in 9. Bob born in"}
    row |= {"correct": " 5", "incorrect": " 4"}
    lines = [
        {**row, "template": 3},
        {**row, "members": [4]},
        {**row, "membres": ["4"]},
        {**row, "members": "4", "template": "born_in"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(DiagnosticsError) as err:
        load_prompt_file(path)
    found = [(d.code, d.span.line if d.span else 0, d.message) for d in err.value.diagnostics]
    assert found == [
        ("T201", 1, "field 'template' must be a string, got 3"),
        ("T201", 2, "field 'members' must be a list of strings, got [4]"),
        ("T201", 3, "unknown field 'membres'"),
    ]


@pytest.mark.parametrize("name", TASKS)
def test_named_positions_land_on_the_template_tokens(gpt2: Any, name: str) -> None:
    """Every row names N1..N5 and S1..S4; without BOS the template puts them at fixed
    token indices ("{N1} done in {S1}." is 5 tokens), the same in the corrupted twin."""
    task = build_task(
        TaskSpec(name, file=str(PROMPTS / f"{name}.jsonl"), bos="off"), gpt2, prepend_bos=True
    )
    expected = {f"N{i}": 5 * (i - 1) for i in range(1, 6)} | {
        f"S{i}": 5 * i - 2 for i in range(1, 5)
    }
    assert {k: set(v.tolist()) for k, v in task.positions.items()} == {
        **{k: {v} for k, v in expected.items()},
        "END": {22},
    }
    records = load_prompt_file(PROMPTS / f"{name}.jsonl")
    for rec, row in zip(records[::97], task.clean[::97], strict=True):
        assert [rec.word(f"S{i}") for i in range(1, 5)] == rec.info["members"]
        for pos, at in expected.items():  # the token there decodes to the named word
            assert gpt2.decode([int(row[at])]).strip() == rec.word(pos)


def test_positions_by_word_or_offsets_and_their_errors(gpt2: Any, tmp_path: Path) -> None:
    row = {"clean": "Van done in May. Hat done in June. Sun done in", "correct": " July"}
    row |= {"corrupted": "Van done in May. Hat done in May. Sun done in", "incorrect": " June"}
    good = {**row, "positions": {"S1": "May", "S2": [29, 33], "N1": "Van"}}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(good) + "\n")
    task = build_task(TaskSpec("t", file=str(path), bos="off"), gpt2, prepend_bos=False)
    assert {k: int(v[0]) for k, v in task.positions.items()} == {
        "N1": 0,
        "S1": 3,
        "S2": 8,
        "END": 12,
    }
    bad = [
        {**row, "positions": {"S1": "done"}},  # three times
        {**row, "positions": {"S1": "Dec"}},  # absent
        {**row, "positions": {"END": "Sun", "X1": "Van"}},  # not nameable
        {**row, "positions": {"S1": [40, 99]}},  # past the end
        {**row, "positions": ["S1"]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in bad) + "\n")
    with pytest.raises(DiagnosticsError) as err:
        load_prompt_file(path)
    found = [(d.code, d.span.line if d.span else 0) for d in err.value.diagnostics]
    assert found == [("T210", 1), ("T210", 2), ("T210", 3), ("T210", 3), ("T210", 4), ("T210", 5)]
    messages = " | ".join(d.message for d in err.value.diagnostics)
    assert "occurs 3 times" in messages and "is not a word of" in messages
    assert "END is always the last token" in messages and "past" not in messages
    # a named word that is not one token is the tokenizer check's T312, naming the word
    split = {**row, "clean": "Van done in Mayday. Hat done in June. Sun done in"}
    path.write_text(json.dumps({**split, "positions": {"S1": "Mayday"}}) + "\n")
    with pytest.raises(DiagnosticsError) as err2:
        build_task(TaskSpec("t", file=str(path), bos="off"), gpt2, prepend_bos=False)
    assert [d.code for d in err2.value.diagnostics] == ["T312"]
