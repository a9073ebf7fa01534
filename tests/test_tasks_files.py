"""User prompt files (JSONL, CSV): loading, line-numbered errors, building a task."""

from __future__ import annotations

import json

import pytest
from tasks_fixtures import word_level_tokenizer

from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.plan import TaskSpec
from seqcirc.tasks import build_task, load_prompt_file
from seqcirc.tasks.prompt_files import continuation

GOOD = {
    "clean": "John born in 4. Mary born in",
    "corrupted": "John born in 9. Mary born in",
    "correct": "5",
    "incorrect": " 4",
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_continuation_rule():
    assert continuation("Mary born in", "5") == " 5"
    assert continuation("Mary born in", " 5") == " 5"
    assert continuation("Mary born in ", "5") == "5"


def test_jsonl_loads(tmp_path):
    second = {**GOOD, "id": "b", "clean": "Tom born in 6. Ann born in"}
    path = write(tmp_path, "p.jsonl", json.dumps(GOOD) + "\n\n" + json.dumps(second) + "\n")
    recs = load_prompt_file(path)
    assert [r.line for r in recs] == [1, 3]
    assert recs[0].correct == " 5" and recs[0].incorrect == " 4"
    assert recs[1].info == {"id": "b"}
    assert recs[1].where == f"{path}:3"


def test_jsonl_errors_have_line_numbers_and_come_together(tmp_path):
    lines = [
        json.dumps(GOOD),
        json.dumps({k: v for k, v in GOOD.items() if k != "corrupted"}),
        '{"clean": "John born in 4.",',
        json.dumps({**GOOD, "correct": 5}),
        json.dumps({**GOOD, "corect": "5"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({**GOOD, "incorrect": "  "}),
    ]
    write(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DiagnosticsError) as err:
        load_prompt_file("bad.jsonl", base_dir=tmp_path)
    text = err.value.render()
    expected = [
        "bad.jsonl:2:1: error[T201]: missing field 'corrupted'",
        "bad.jsonl:3:29: error[T202]: not valid JSON",
        "bad.jsonl:4:1: error[T201]: field 'correct' must be a string, got 5",
        "bad.jsonl:5:1: error[T201]: unknown field 'corect'",
        "help: did you mean 'correct'?",
        "bad.jsonl:6:1: error[T201]: expected an object with clean, corrupted, correct, "
        "incorrect, got list",
        "bad.jsonl:7:1: error[T201]: field 'incorrect' is empty",
    ]
    for needle in expected:
        assert needle in text
    assert len(err.value.diagnostics) == 6
    assert err.value.exit_code == 2


def test_csv_loads_with_quoted_commas_and_multiline_fields(tmp_path):
    text = (
        "clean,corrupted,correct,incorrect\n"
        '"In May, John was born in","In June, John was born in",June,May\n'
        '"a\nb",c,d,e\n'
        '"In May, Ann was born in","In July, Ann was born in",June,May\n'
    )
    recs = load_prompt_file(write(tmp_path, "p.csv", text))
    assert [r.line for r in recs] == [2, 3, 5]
    assert recs[0].clean == "In May, John was born in" and recs[0].correct == " June"


def test_csv_errors(tmp_path):
    path = write(tmp_path, "p.csv", "clean,corrupted,correct\nx,y,z\n")
    with pytest.raises(DiagnosticsError) as err:
        load_prompt_file(path)
    assert "p.csv:1:1: error[T203]: the header row lacks column(s) incorrect" in err.value.render()
    path = write(
        tmp_path,
        "q.csv",
        "clean,corrupted,correct,incorrect\na,b,c,d\na,b,c\n\na,b,c,d,e\n,b,c,d\n",
    )
    with pytest.raises(DiagnosticsError) as err:
        load_prompt_file(path)
    text = err.value.render()
    assert "q.csv:3:1: error[T204]: 3 values but the header has 4 columns" in text
    assert "q.csv:5:1: error[T204]: 5 values but the header has 4 columns" in text
    assert "q.csv:6:1: error[T201]: field 'clean' is empty" in text


@pytest.mark.parametrize(
    ("name", "text", "code"),
    [("p.txt", "x", "T205"), ("empty.jsonl", "\n\n", "T207"), ("empty.csv", "", "T207")],
)
def test_file_level_errors(tmp_path, name, text, code):
    with pytest.raises(InputError) as err:
        load_prompt_file(write(tmp_path, name, text))
    assert err.value.code == code


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_prompt_file("nope.jsonl", base_dir=tmp_path)
    assert err.value.code == "T206"
    assert "prompt file nope.jsonl not found" in err.value.message


def test_build_task_from_a_file(tmp_path):
    rows = [
        GOOD,
        {**GOOD, "clean": "Tom born in 7. Anna born in", "correct": "8", "incorrect": "7"},
    ]
    write(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    tok = word_level_tokenizer()
    task = build_task(TaskSpec("mine", file="p.jsonl"), tok, prepend_bos=True, base_dir=tmp_path)
    assert task.n_prompts == 2 and task.seq_len == 9
    assert set(task.positions) == {"END"} and task.positions["END"].tolist() == [8, 8]
    assert tok.convert_ids_to_tokens(task.correct.tolist()) == ["5", "8"]
    assert tok.convert_ids_to_tokens(task.incorrect.tolist()) == ["4", "7"]
    assert tok.convert_ids_to_tokens(task.corrupted[0].tolist())[4] == "9"
    assert task.meta["source"] == "file"


def test_file_and_generator_are_exclusive(tmp_path):
    tok = word_level_tokenizer()
    with pytest.raises(InputError, match="not both"):
        build_task(TaskSpec("t", "months", file="p.jsonl"), tok, prepend_bos=True)
    with pytest.raises(InputError, match="neither"):
        build_task(TaskSpec("t"), tok, prepend_bos=True)
