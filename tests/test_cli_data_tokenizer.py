"""`seqcirc data export --tokenizer FOLDER`: a task's prompts tokenized offline with a
tokenizer folder alone (no weights): the gpt2-small sections of hypotheses/ export the
authors' prompts with exactly GPT-2's token ids, without BOS."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import InputError
from seqcirc.usecases.data_export import export_circ_task
from tests.cli_in_process import seqcirc

ROOT = Path(__file__).resolve().parent.parent
GPT2 = ROOT / "tests" / "data" / "gpt2-tokenizer"
PROMPTS = ROOT / "hypotheses" / "data" / "paper-prompts"


@pytest.fixture(scope="module")
def gpt2() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(GPT2))


def _export(circ: Path, task: str, **kw: Any) -> list[dict[str, Any]]:
    buf = io.StringIO()
    export_circ_task(circ, buf, task=task, model=kw.pop("model", None), tokenizer=GPT2, **kw)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.mark.parametrize("name", ["numerals", "number_words", "months"])
def test_export_equals_gpt2s_tokenization_of_the_shipped_prompts(gpt2: Any, name: str) -> None:
    head, *rows = _export(ROOT / "hypotheses" / f"{name}.circ", name)
    assert head["task"] == name and head["meta"]["bos"] == "off"
    assert head["meta"]["model"] == {"name": "gpt2-small", "tokenizer": str(GPT2), "weights": None}
    shipped = [json.loads(x) for x in (PROMPTS / f"{name}.jsonl").read_text().splitlines()]
    assert len(rows) == len(shipped) == 1536
    for row, src in zip(rows, shipped, strict=True):
        assert row["clean"] == src["clean"] and row["corrupted"] == src["corrupted"]
        assert row["clean_ids"] == gpt2(src["clean"])["input_ids"]
        assert row["corrupted_ids"] == gpt2(src["corrupted"])["input_ids"]
        assert row["correct_id"] == gpt2(src["correct"])["input_ids"][0]
        assert row["incorrect_id"] == gpt2(src["incorrect"])["input_ids"][0]
        assert row["template"] == src["template"]
        # the named positions: the token there is the named word of the shipped row
        assert row["positions"]["END"] == 22 and len(row["positions"]) == 10
        for pos, at in row["positions"].items():
            if pos != "END":
                word = gpt2.decode([row["clean_ids"][at]]).strip()
                where = src["positions"][pos]
                assert word == (where if isinstance(where, str) else src["clean"][slice(*where)])


def test_a_filtering_task_needs_unfiltered(tmp_path: Path) -> None:
    circ = tmp_path / "f.circ"
    circ.write_text(
        f'task months = file("{(PROMPTS / "months.jsonl").as_posix()}")\n  filter correct\n'
        "circuit c on gpt2-small {\n  heads 9.1\n  expect faithfulness >= 0.5\n}\n"
    )
    with pytest.raises(InputError) as err:
        _export(circ, "months")
    assert err.value.code == "T407" and "--unfiltered" in (err.value.hint or "")
    # with --unfiltered: every prompt, and `bos auto` is on (as TransformerLens loads GPT-2)
    head, *rows = _export(circ, "months", apply_filter=False)
    assert head["meta"]["bos"] == "on" and len(rows) == 1536
    assert all(r["clean_ids"][0] == 50256 and len(r["clean_ids"]) == 24 for r in rows)


def test_a_folder_without_a_tokenizer_is_t408(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        export_circ_task(
            ROOT / "hypotheses" / "months.circ", io.StringIO(), task="months", tokenizer=tmp_path
        )
    assert err.value.code == "T408"


def test_cli_exports_offline(tmp_path: Path) -> None:
    out = tmp_path / "months.jsonl"
    args = ["hypotheses/months.circ", "--task", "months", "--tokenizer", str(GPT2), "-o", str(out)]
    proc = seqcirc("data", "export", *args, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1536 prompts of task months" in proc.stderr
    assert len(out.read_text().splitlines()) == 1537
