"""Bad input never crashes and is never silently read wrong (issue 22): files without a
circuit, role sizes only the loaded model can refuse, a byte order mark, misspelled
keywords, unknown `--model` names, and every error code documented."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from seqcirc.checks import check_text
from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.language import parse
from seqcirc.plan import params
from seqcirc.plan.compile import compile_text
from tests.cli_in_process import seqcirc
from tests.mini_circuits import TASK, needs_bundled

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


# ---- a file to test states no circuit -----------------------------------------------

NO_CIRCUIT = {
    "empty": "",
    "comments": "# only a comment\n",
    "tasks": TASK,
    "imports": 'import "lib.circ"\n',  # imported circuits are tested in their own file
}
LIB = TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n}\n"


def test_test_of_a_file_without_circuits_is_a_clean_input_error(tmp_path: Path) -> None:
    (tmp_path / "lib.circ").write_text(LIB)
    for name, text in NO_CIRCUIT.items():
        (tmp_path / f"{name}.circ").write_text(text)
    names = [f"{name}.circ" for name in NO_CIRCUIT]
    assert _cli("check", *names, cwd=tmp_path).returncode == 0  # a file of tasks is fine
    assert _cli("plan", "tasks.circ", cwd=tmp_path).returncode == 0
    proc = _cli("test", "empty.circ", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "error[E404]" in proc.stderr and "states no circuit" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal failure" not in proc.stderr


@pytest.mark.parametrize("name", list(NO_CIRCUIT))
def test_evaluating_a_plan_without_circuits_raises_e404_before_any_model(
    name: str, tmp_path: Path
) -> None:
    from seqcirc.usecases.session import Session

    (tmp_path / "lib.circ").write_text(LIB)
    path = tmp_path / f"{name}.circ"
    path.write_text(NO_CIRCUIT[name])
    with pytest.raises(InputError) as info:
        Session().evaluate_file(path)
    assert info.value.code == "E404" and info.value.exit_code == 2
    assert "states no circuit" in info.value.message


# ---- role sizes the loaded model refuses ----------------------------------------------

ROLE = TASK + "circuit c on {model} {{\n  heads 0.0\n  role 0.0 successor(top={top}) >= 0.2\n}}\n"


@needs_bundled
def test_top_beyond_the_vocabulary_at_run_time_is_e806_exit_2(tmp_path: Path) -> None:
    from seqcirc.usecases.session import Session

    plan = compile_text(ROLE.format(model="seqcirc-mini", top=5), str(tmp_path / "r.circ"))
    (circuit,) = plan.circuits
    (claim,) = circuit.claims
    bad = replace(claim, params=params(**{**claim.params_dict(), "top": 100_000}))
    plan = replace(plan, circuits=(replace(circuit, claims=(bad,)),))
    with pytest.raises(InputError) as info:
        Session().evaluate_plan(plan, tmp_path)
    assert info.value.code == "E806" and info.value.exit_code == 2
    assert "226" in info.value.message  # the bundled model's vocabulary


@needs_bundled
def test_model_override_with_a_smaller_vocabulary_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "r.circ").write_text(ROLE.format(model="gpt2-small", top=1000))
    assert _cli("check", "r.circ", cwd=tmp_path).returncode == 0
    proc = _cli("test", "r.circ", "--model", "seqcirc-mini", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error[E806]" in proc.stderr and "r.circ:" in proc.stderr


# ---- --model names are decided as in a file ------------------------------------------


def test_an_unknown_model_option_is_e202_exit_2_like_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n}\n")
    (tmp_path / "empty_folder").mkdir()
    for name in ("nosuchmodel", "empty_folder"):
        proc = _cli("test", "ok.circ", "--model", name, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "error[E202]" in proc.stderr and name in proc.stderr
        assert "Traceback" not in proc.stderr
    with pytest.raises(DiagnosticsError) as info:
        check_text(TASK + "circuit c on nosuchmodel {\n  heads 0.0\n}\n")
    assert [d.code for d in info.value.diagnostics] == ["E202"]


def test_model_option_accepts_what_a_file_accepts(tmp_path: Path) -> None:
    from seqcirc.checks.components import resolve_model_option

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text('{"n_layer": 2, "n_head": 4, "n_embd": 16}')
    assert resolve_model_option("seqcirc-mini").ref.source == "bundled"
    assert resolve_model_option("gpt2-small").ref.source == "hub"
    assert resolve_model_option("someorg/some-model").ref.source == "hub"
    assert resolve_model_option(str(folder)).ref.source == "local"
    with pytest.raises(InputError) as info:
        resolve_model_option("gpt2-smal")
    assert info.value.code == "E202" and "gpt2-small" in str(info.value.hint)


# ---- a byte order mark -------------------------------------------------------------


def test_a_byte_order_mark_is_dropped_and_columns_stay_right() -> None:
    text = "circuit c on nosuchmodel {\n  heads 0.0\n}\n"
    program = parse("\ufeff" + text, "t.circ")
    assert program.text == text
    assert program.items[0].model.span.col == 14
    with pytest.raises(DiagnosticsError) as info:
        check_text("\ufeff" + TASK + text, "t.circ")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("E202", 5, 14)
    assert "^" * len("nosuchmodel") in info.value.render()


def test_a_file_with_a_byte_order_mark_checks_from_the_cli(tmp_path: Path) -> None:
    text = TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n}\n"
    (tmp_path / "bom.circ").write_bytes(b"\xef\xbb\xbf" + text.encode())
    proc = _cli("check", "bom.circ", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# ---- misspelled keywords -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "word", "keyword"),
    [("taskx months = sequence(months)\n", "taskx", "task"),
     ("taskmonths = sequence(months)\n", "taskmonths", "task"),
     ("circuitc on seqcirc-mini {\n  heads 0.0\n}\n", "circuitc", "circuit"),
     ("circut c on m {\n", "circut", "circuit"),
     ("improt \"a.circ\"\n", "improt", "import"),
     ("sed 3\n", "sed", "seed"),
     ("circuit c on m {\n  grop g = 0.1\n}\n", "grop", "group"),
     ("circuit c on m {\n  heads 0.0\n  expcet faithfulness >= 0.5\n}\n", "expcet", "expect")],
)  # fmt: skip
def test_a_misspelled_keyword_gets_did_you_mean(text: str, word: str, keyword: str) -> None:
    with pytest.raises(InputError) as info:
        parse(text, "t.circ")
    err = info.value
    assert err.code == "E100" and err.message == f"unexpected `{word}`"
    assert err.hint is not None and err.hint.startswith(f"did you mean `{keyword}`?")
    assert err.span is not None and err.span.end_col - err.span.col + 1 == len(word)


def test_keywords_followed_by_punctuation_still_parse() -> None:
    parse("task t = sequence(months)\ncircuit c on m {\n  heads 0.0\n  mlp 0..1\n}\n")
    parse("circuit c on m {\n  ablate nodes mean(corrupted)\n  heads 0.0\n}\n")


# ---- every error code is documented ----------------------------------------------------


def test_every_error_code_the_suite_raises_is_in_docs_errors_md() -> None:
    docs = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"\b[EWT]\d{3}\b", docs))
    raised: dict[str, str] = {}
    for path in sorted((ROOT / "seqcirc").rglob("*.py")):
        for code in re.findall(r"\"([EWT]\d{3})\"", path.read_text(encoding="utf-8")):
            raised.setdefault(code, str(path.relative_to(ROOT)))
    missing = {code: where for code, where in raised.items() if code not in documented}
    assert not missing, f"codes missing from docs/errors.md: {missing}"
