"""Prompt files that are hostile or odd: deep JSON, lone surrogates, Unicode line breaks
inside strings, byte order marks, CRLF, a hundred thousand bad lines. Each loads or is
a coded InputError at file:line; none crashes or hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcirc.errors import EXIT_BAD_INPUT, DiagnosticsError, InputError, SeqcircError
from seqcirc.models.shapes import BUNDLED_DIR
from seqcirc.plan import TaskSpec
from seqcirc.tasks import build_task, load_prompt_file
from seqcirc.tasks.prompt_files import MAX_SHOWN

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "clean": "Ann born in January. Bob born in February. Cat born in",
    "corrupted": "Ann born in May. Bob born in March. Cat born in",
    "correct": "March",
    "incorrect": "February",
}
ROW = json.dumps(GOOD)
CSV_ROW = ",".join(GOOD.values()).replace(".", "")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def problems(path: Path) -> DiagnosticsError:
    with pytest.raises(DiagnosticsError) as info:
        load_prompt_file(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    return info.value


def test_json_nested_100000_deep_is_a_coded_error_at_its_line(tmp_path):
    path = write(tmp_path, "p.jsonl", f"{ROW}\n" + "[" * 100_000 + "]" * 100_000 + f"\n{ROW}\n")
    err = problems(path)
    assert [(d.code, d.span.line) for d in err.diagnostics if d.span] == [("T208", 2)]
    text = err.render()
    assert f"{path}:2:1: error[T208]: JSON nested too deeply to read" in text
    assert len(text) < 1000  # the 200,000-character line is quoted cut short


def test_a_deep_value_in_a_field_is_named_briefly(tmp_path):
    path = write(tmp_path, "p.jsonl", json.dumps({**GOOD, "correct": [[[[1]]]] * 500}) + "\n")
    (diag,) = problems(path).diagnostics
    assert diag.code == "T201" and diag.message.startswith("field 'correct' must be a string")
    assert len(diag.message) < 150


@pytest.mark.parametrize("field", ["clean", "corrupted", "correct", "incorrect", "id"])
def test_a_lone_surrogate_is_no_text(tmp_path, field):
    row = ROW[:-1] + ', "id": "x"}'
    row = row.replace(
        f'"{field}": "', f'"{field}": "\\ud800 ' if field != "id" else '"id": "\\udfff'
    )
    path = write(tmp_path, "p.jsonl", f"{ROW}\n{row}\n")
    (diag,) = problems(path).diagnostics
    assert diag.code == "T209" and diag.span is not None and diag.span.line == 2
    assert f"field '{field}' is not text: it holds the lone surrogate \\ud" in diag.message


def test_an_escaped_surrogate_pair_is_one_character(tmp_path):
    path = write(tmp_path, "p.jsonl", ROW.replace('"Ann born', '"\\ud83d\\ude00 Ann born', 1))
    (rec,) = load_prompt_file(path)
    assert rec.clean.startswith("\U0001f600 Ann")


def test_unicode_line_breaks_inside_strings_are_text(tmp_path):
    """JSONL lines end at \\n only: U+2028, U+2029, NEL, FF and VT are part of a string."""
    odd = "\u2028\u2029\x85\x0c\x0b\x1c"
    row = json.dumps({**GOOD, "id": f"a{odd}b"}, ensure_ascii=False)
    path = write(tmp_path, "p.jsonl", f"{row}\n{row}\n{{bad\n{row}\n")
    err = problems(path)
    assert [(d.code, d.span.line) for d in err.diagnostics if d.span] == [("T202", 3)]
    assert f"{path}:3:2: error[T202]" in err.render() and "   3 | {bad" in err.render()
    path = write(tmp_path, "q.jsonl", f"{row}\n\n{row}\n")
    recs = load_prompt_file(path)
    assert [r.line for r in recs] == [1, 3] and recs[0].info == {"id": f"a{odd}b"}
    path = write(tmp_path, "p.csv", f"{','.join(GOOD)}\na\u2028b,c,d,e\nx,y,z\n")
    assert f"{path}:3:1: error[T204]: 3 values" in problems(path).render()


def test_crlf_line_ends(tmp_path):
    path = write(tmp_path, "p.jsonl", f"{ROW}\r\n\r\n{ROW}\r\n")
    assert [r.line for r in load_prompt_file(path)] == [1, 3]
    path = write(tmp_path, "q.jsonl", f"{ROW}\r\n{{bad\r\n")
    assert "   2 | {bad\n" in problems(path).render()


@pytest.mark.parametrize(
    ("name", "text"),
    [("p.jsonl", f"{ROW}\n{ROW}\n"),
     ("p.csv", f"{','.join(GOOD)}\n{CSV_ROW}\n"),
     ("q.csv", f"{','.join(GOOD)}\r\n{CSV_ROW}\r\n")],
)  # fmt: skip
def test_a_byte_order_mark_is_dropped(tmp_path, name, text):
    recs = load_prompt_file(write(tmp_path, name, "\ufeff" + text))
    assert recs[0].clean.startswith("Ann born") and recs[0].line in (1, 2)


def test_many_bad_lines_are_counted_not_all_shown(tmp_path):
    path = write(tmp_path, "p.jsonl", "{bad\n" * 20_000)
    start = time.monotonic()
    err = problems(path)
    text = err.render()
    assert time.monotonic() - start < 10  # minutes before: a snippet re-split the file per problem
    assert len(err.diagnostics) == MAX_SHOWN + 1
    assert err.diagnostics[-1].code == "T200"
    assert text.endswith(f"error[T200]: ... and {20_000 - MAX_SHOWN} more problems in {path}")
    assert f"{path}:20:2: error[T202]" in text and f"{path}:21:" not in text


def test_many_misspelt_fields_and_many_good_rows_load_quickly(tmp_path):
    misspelt = json.dumps({**GOOD, "corect": "x"})
    path = write(tmp_path, "p.jsonl", f"{misspelt}\n" * 20_000)
    start = time.monotonic()
    err = problems(path)
    assert time.monotonic() - start < 10
    assert "help: did you mean 'correct'?" in err.render()
    path = write(tmp_path, "q.jsonl", f"{ROW}\n" * 20_000)
    start = time.monotonic()
    assert len(load_prompt_file(path)) == 20_000
    assert time.monotonic() - start < 10


def test_the_cli_reports_deep_json_and_surrogates_at_their_lines(tmp_path):
    """Before: a RecursionError and the tokenizer's TypeError, as internal failures."""
    lone = ROW.replace('"Ann born in Jan', '"Ann \\ud800 born in Jan', 1)
    write(tmp_path, "p.jsonl", "[" * 100_000 + "]" * 100_000 + f"\n{lone}\n{ROW}\n")
    (tmp_path / "f.circ").write_text(
        'task t = file("p.jsonl")\ncircuit c on seqcirc-mini {\n  heads 0.0\n'
        "  expect faithfulness >= 0.1\n}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "seqcirc", "test", "f.circ"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "p.jsonl:1:1: error[T208]: JSON nested too deeply to read" in proc.stderr
    assert "p.jsonl:2:1: error[T209]: field 'clean' is not text" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal failure" not in proc.stderr


# ---- fuzz: random bytes, text and JSON rows -> a task or a SeqcircError -------------


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(BUNDLED_DIR))


def _load_or_seqcirc_error(path: Path, tokenizer) -> None:
    try:
        task = build_task(TaskSpec("t", file=path.name), tokenizer, prepend_bos=True,
                          base_dir=path.parent)  # fmt: skip
    except SeqcircError as err:
        assert err.code and err.render()
        assert not isinstance(err, InputError) or err.exit_code == EXIT_BAD_INPUT
        return
    assert task.n_prompts >= 1


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
WORDS = st.sampled_from(["Ann", "born", "in", "May", "March", " ", "\u2028", "\ud800", "\x00", "é"])
TEXTS = st.one_of(st.text(max_size=20), st.lists(WORDS, min_size=1, max_size=8).map(" ".join))
ROWS = st.one_of(
    JSON,
    st.fixed_dictionaries({k: TEXTS for k in GOOD}, optional={"id": JSON, "corect": TEXTS}),
)


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_random_bytes(tmp_path, tokenizer, data, suffix):
    path = tmp_path / f"b{suffix}"
    path.write_bytes(data)
    _load_or_seqcirc_error(path, tokenizer)


@FUZZ
@given(text=st.text(max_size=300), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_random_text(tmp_path, tokenizer, text, suffix):
    _load_or_seqcirc_error(write(tmp_path, f"t{suffix}", text), tokenizer)


@FUZZ
@given(rows=st.lists(ROWS, min_size=1, max_size=6), ascii_only=st.booleans(),
       end=st.sampled_from(["\n", "\r\n"]))  # fmt: skip
def test_random_json_rows(tmp_path, tokenizer, rows, ascii_only, end):
    text = end.join(json.dumps(r, ensure_ascii=ascii_only) for r in rows) + end
    _load_or_seqcirc_error(write(tmp_path, "r.jsonl", text), tokenizer)


@FUZZ
@given(rows=st.lists(st.lists(TEXTS, min_size=3, max_size=5), min_size=1, max_size=5))
def test_random_csv_rows(tmp_path, tokenizer, rows):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(GOOD))
    writer.writerows(rows)
    _load_or_seqcirc_error(write(tmp_path, "c.csv", out.getvalue()), tokenizer)
