"""The `bos` setting of a task (`bos on|off|auto`, `--bos`): parsed, checked, recorded in
the plan only when not the default (old plans and circuit hashes stay the same), honoured
where prompts are tokenized, and recorded in every result and its set-up line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.language.fmt import format_text
from seqcirc.plan import TaskSpec, to_jsonable
from seqcirc.plan.compile import compile_text
from seqcirc.report.view import ablation_setup
from seqcirc.usecases.session import Options, Session
from tests.mini_circuits import TASK, heads_but_last, needs_bundled

CIRC = (
    TASK
    + """  bos {bos}

circuit most on seqcirc-mini {{
  heads {heads}
  expect faithfulness(bound=point) >= -1
}}
"""
)


def _text(bos: str) -> str:
    return CIRC.format(bos=bos, heads=heads_but_last())


def test_effective_bos_follows_the_model_only_on_auto() -> None:
    assert TaskSpec("t").effective_bos(True) is True
    assert TaskSpec("t").effective_bos(False) is False
    assert TaskSpec("t", bos="off").effective_bos(True) is False
    assert TaskSpec("t", bos="on").effective_bos(False) is True


def test_plan_records_bos_only_when_set() -> None:
    default = compile_text(_text("auto"))
    no_clause = compile_text(_text("auto").replace("  bos auto\n", ""))
    off = compile_text(_text("off"))
    assert "bos" not in to_jsonable(no_clause.circuits[0].task)
    assert to_jsonable(default.circuits[0].task) == to_jsonable(no_clause.circuits[0].task)
    assert default.circuits[0].circuit_hash() == no_clause.circuits[0].circuit_hash()
    assert to_jsonable(off.circuits[0].task)["bos"] == "off"
    assert off.circuits[0].task.bos == "off"


def test_unknown_bos_setting_is_e207_with_the_choices() -> None:
    with pytest.raises(DiagnosticsError) as err:
        compile_text(_text("yes"))
    (diag,) = err.value.diagnostics
    assert diag.code == "E207" and "bos setting `yes`" in diag.message
    assert "auto, on, off" in (diag.hint or "")


def test_bos_twice_is_e210() -> None:
    with pytest.raises(DiagnosticsError) as err:
        compile_text(_text("on").replace("  bos on\n", "  bos on\n  bos off\n"))
    assert [d.code for d in err.value.diagnostics] == ["E210"]


def test_fmt_keeps_the_clause() -> None:
    assert "  bos off\n" in format_text(_text("off"))


def test_bad_bos_option_is_e402() -> None:
    with pytest.raises(InputError) as err:
        Session(Options(bos="maybe")).evaluate_plan(compile_text(_text("on")), Path("."))
    assert err.value.code == "E402"


def _evaluate(tmp_path: Path, bos: str, options: dict[str, Any] | None = None) -> Any:
    path = tmp_path / f"{bos}.circ"
    path.write_text(_text(bos))
    return Session(Options(n_boot=100, **(options or {}))).evaluate_file(path)


@needs_bundled
def test_bos_off_is_one_token_shorter_and_gives_other_numbers(tmp_path: Path) -> None:
    on = _evaluate(tmp_path, "on").circuits[0]
    off = _evaluate(tmp_path, "off").circuits[0]
    auto = _evaluate(tmp_path, "auto").circuits[0]
    assert on.task["seq_len"] == off.task["seq_len"] + 1
    assert (on.task["bos"], off.task["bos"]) == ("on", "off")
    assert auto.task["bos"] == "on"  # the bundled model's loader prepends BOS
    assert auto.f_model == on.f_model and auto.f_circuit == on.f_circuit
    assert off.f_model != pytest.approx(on.f_model, rel=1e-3)
    assert off.per_prompt["model"] != on.per_prompt["model"]
    assert ablation_setup(off).endswith("; BOS off")
    assert ablation_setup(on).endswith("; BOS on")


@needs_bundled
def test_bos_option_overrides_every_task(tmp_path: Path) -> None:
    forced = _evaluate(tmp_path, "on", {"bos": "off"}).circuits[0]
    off = _evaluate(tmp_path, "off").circuits[0]
    assert forced.task["bos"] == "off"
    assert forced.task["seq_len"] == off.task["seq_len"]
    assert forced.f_model == off.f_model
