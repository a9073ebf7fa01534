"""`seqcirc lens` and `seqcirc attention` end to end, in process (seqcirc.cli.main), on
the role tests' planted GPT-2 saved as a Hugging Face folder (tests/roles_planted.py:
its layer-1 heads attend uniformly, so attends(from=S2, to=S1) of 1.3 is 1/10 on
"<bos> N born in S1 . N born in S2 ..." prompts, S2 at token 9)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from roles_planted import planted_hf, planted_tokenizer

from seqcirc.cli import main
from seqcirc.errors import InputError
from seqcirc.usecases.attention_run import parse_heads, split_heads
from seqcirc.usecases.task_option import resolve_task


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("planted")
    planted_hf().save_pretrained(out)
    planted_tokenizer().save_pretrained(out)
    return out


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "argv", ["seqcirc", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_lens_table_json_and_plot(folder, tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    svg, js = tmp_path / "lens.svg", tmp_path / "lens.json"
    code, out, err = _run(
        monkeypatch, capsys, "lens", str(folder), "--task", "months", "--prompts", "6",
        "--components", "--json", str(js), "-o", str(svg), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    table = json.loads(js.read_text())
    rows = [r["row"] for r in table["rows"]]
    assert rows == ["embed", "0.0", "0.1", "0.2", "0.3", "mlp0", "1.0", "1.1", "1.2", "1.3", "mlp1"]
    assert table["final_max_abs_diff"] < 1e-5 and table["meta"]["n_prompts"] == 6
    assert table["meta"]["model"] == str(folder) and table["meta"]["components"] is True
    assert "head 1.0" in out and "mlp1" in out and "equals the model's logits" in out
    assert svg.read_text().lstrip().startswith("<?xml")


def test_attention_on_a_task_with_named_positions(folder, tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    code, out, err = _run(
        monkeypatch, capsys, "attention", str(folder), "--heads", "1.3,a0.h0", "--task",
        "months", "--prompts", "6", "--from", "S2", "--to", "S1", "--json", "-",
        "-o", str(tmp_path / "figs"), "--format", "svg", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["meta"]["heads"] == ["1.3", "0.0"]
    by_head = {r["head"]: r for r in data["records"]}
    assert by_head["1.3"]["attends"]["mean"] == pytest.approx(0.1)
    assert by_head["1.3"]["attends"]["cell"] == [9, 4]
    assert by_head["0.0"]["attends"]["mean"] < 0.1  # the previous-token head looks back one
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "attention_0.0.svg", "attention_1.3.svg",
    ]  # fmt: skip
    assert "attends(S2 -> S1) = 0.100" in err


def test_attention_on_the_builtin_mixed_prompts(folder, tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    code, out, err = _run(
        monkeypatch, capsys, "attention", str(folder), "--heads", "blocks.1.attn.hook_z[:, :, 2]",
        "--builtin", "mixed", "-o", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "head 1.2" in out and "digits in random order" in out
    assert out.count("prompts): END attends to") == 6
    assert (tmp_path / "attention_1.2.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["attention", "M", "--heads", "1.3", "--from", "S2"], "E361", "--from and --to"),
        (["attention", "M", "--heads", "mlp1", "--builtin", "mixed"], "E362", "not a head"),
        (["attention", "M", "--heads", "1.3", "--builtin", "mixed", "--task", "x"], "E361", "both"),
        (["lens", "M", "--task", "monthz"], "E361", "did you mean"),
        (["lens", "M", "--task", "months", "--prompts", "7"], "T106", "multiple of 3"),
        (["lens", "M", "--task", "months", "-o", "lens.txt"], "E361", "suffix"),
        (["lens", "M"], "E361", "no prompts"),
    ],
)
def test_bad_options_are_exit_2_before_the_model_loads(args, code, words, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    # "M" is no model: each error must come before a load is tried
    status, _, err = _run(monkeypatch, capsys, *args)
    assert status == 2 and f"[{code}]" in err and words in err, err
    assert "Traceback" not in err


def test_a_head_outside_the_model_is_e362(folder, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    status, _, err = _run(monkeypatch, capsys, "attention", str(folder), "--heads", "2.0",
                          "--builtin", "mixed", "--device", "cpu")  # fmt: skip
    assert status == 2 and "[E362]" in err and "layers 0..1" in err


def test_heads_in_every_spelling() -> None:
    assert split_heads(["4.4,blocks.9.attn.hook_z[:, :, 1]", "a9.h1"]) == [
        "4.4", "blocks.9.attn.hook_z[:, :, 1]", "a9.h1",
    ]  # fmt: skip
    assert parse_heads(["4.4,L9H1", "a9.h1,9.1"]) == [(4, 4), (9, 1)]


def test_task_options(tmp_path: Path) -> None:
    circ = tmp_path / "t.circ"
    circ.write_text(
        "seed 3\ntask m = sequence(months, prompts=9)\n  filter correct\n"
        "circuit c on seqcirc-mini {\n  heads 1.0\n}\n"
    )
    got = resolve_task(f"{circ}:m", None)
    assert got.spec.filter_correct and dict(got.spec.params)["prompts"] == 9 and got.seed == 3
    with pytest.raises(InputError) as info:
        resolve_task(f"{circ}:x", None)
    assert info.value.code == "T403"
    assert resolve_task("months", "30", filter_correct=True).spec.filter_correct
    with pytest.raises(InputError):
        resolve_task(None, str(tmp_path / "missing.jsonl"))
