"""Every size a .circ file can state is bounded by `seqcirc check` (issue 22): prompts,
random draws, permutations, role parameters, seeds, heads and layers of unknown shapes,
and the nesting of set algebra. The bounds live in one table, seqcirc.language.vocab.LIMITS,
and each message names its bound."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from seqcirc.checks import check_text
from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.language import parse
from seqcirc.language import vocab as V
from seqcirc.language.fmt import format_text
from seqcirc.plan import Node
from seqcirc.plan.compile import compile_text
from tests.cli_in_process import seqcirc
from tests.mini_circuits import needs_bundled

ROOT = Path(__file__).resolve().parents[1]
TASK = "task months = sequence(months, prompts=48)\n"


def _diags(text: str) -> list:
    with pytest.raises(DiagnosticsError) as info:
        check_text(text, "t.circ")
    return list(info.value.diagnostics)


def _one(text: str) -> tuple[str, str]:
    """(code, message + hint) of the single diagnostic `text` gets."""
    (d,) = _diags(text)
    return d.code, f"{d.message} | {d.hint}"


def _circuit(body: str, model: str = "seqcirc-mini", task: str = TASK) -> str:
    return f"{task}circuit c on {model} {{\n  heads 0.0\n  {body}\n}}\n"


# ---- the table ----------------------------------------------------------------------


def test_every_whole_number_parameter_has_a_bound() -> None:
    """An int parameter is bounded by LIMITS or by the size of its ordered set."""
    by_set = {"members", "interval", "start", "range"}
    specs = [V.TASK_PARAMS, *V.ROLES.values(), *V.VALUE_CLAIMS.values(), *V.TEST_CLAIMS.values()]
    ints = {name for spec in specs for name, kind in spec.items() if kind is int}
    assert ints - by_set <= set(V.LIMITS), ints - by_set - set(V.LIMITS)
    assert V.LIMITS["prompts"] == 100_000 and V.LIMITS["seed"] == 2**63 - 1


# ---- task sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["999999999", "1" + "0" * 39])
def test_prompts_above_the_bound_are_refused_naming_it(value: str) -> None:
    code, text = _one(f"task t = sequence(months, prompts={value})\n")
    assert code == "E251" and "100,000" in text and "prompts" in text


def test_prompts_at_the_bound_check_clean() -> None:
    check_text("task t = sequence(months, prompts=99999)\n")


@pytest.mark.parametrize(
    ("source", "bound"),
    [("seed 18446744073709551616\n", "9,223,372,036,854,775,807"),
     ("task t = sequence(months, seed=18446744073709551616)\n", "9,223,372,036,854,775,807"),
     ("task t = sequence(months, seed=-1)\n", "at least 0")],
)  # fmt: skip
def test_seeds_are_bounded_to_what_the_random_generators_accept(source: str, bound: str) -> None:
    code, text = _one(source)
    assert code == "E251" and bound in text


def test_members_and_interval_must_fit_the_range_even_without_start() -> None:
    code, text = _one("task t = sequence(months, members=100)\n")
    assert code == "E251" and "range" in text
    code, text = _one("task t = sequence(months, interval=1000000)\n")
    assert code == "E251" and "range" in text


# ---- claims -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim",
    ["expect beats random(n=1000000000) at p < 0.01",
     "expect completeness(random=1000000000) <= 0.2",
     "expect sufficiency(n=1000000000) at p < 0.05",
     "expect minimality(n=1000000000) at p < 0.05",
     "expect independence(permutations=1000000000) at p > 0.05"],
)  # fmt: skip
def test_random_draws_and_permutations_are_bounded(claim: str) -> None:
    code, text = _one(_circuit(claim))
    assert code == "E251" and "100,000" in text


def test_a_random_baseline_at_its_bound_checks_clean() -> None:
    check_text(_circuit("expect beats random(n=100000) at p < 0.01"))


# ---- roles --------------------------------------------------------------------------


def test_top_beyond_the_models_vocabulary_is_an_input_error_found_by_check() -> None:
    code, text = _one(_circuit("role 0.0 successor(top=100000) >= 0.2"))
    assert code == "E251" and "226" in text  # seqcirc-mini's vocabulary
    check_text(_circuit("role 0.0 successor(top=226) >= 0.2"))


def test_top_with_an_unknown_vocabulary_has_a_fixed_bound() -> None:
    module_text = _circuit("role 0.0 successor(top=100001) >= 0.2", model="someorg/m")
    diags = _diags(module_text)
    assert [d.code for d in diags] == ["E251", "W300"]
    assert "100,000" in diags[0].message + str(diags[0].hint)


def test_role_members_are_bounded_by_the_ordered_set() -> None:
    code, text = _one(_circuit("role 0.0 successor(members=13) >= 0.2"))
    assert code == "E251" and "12" in text  # months has 12 members
    code, text = _one(_circuit("role 0.0 successor(members=4) >= 0.2"))
    assert code == "E251" and "5" in text  # prompts of 4 members need 5 in scope
    check_text(_circuit("role 0.0 successor(members=4, context=alone) >= 0.2"))
    check_text(_circuit("role 0.0 copy(set=numerals, members=100) >= 0.2"))


def test_successor_of_a_prompt_file_task_needs_a_set(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text("")
    task = 'task months = file("p.jsonl")\n'
    with pytest.raises(DiagnosticsError) as info:
        check_text(_circuit("role 0.0 successor >= 0.2", task=task), str(tmp_path / "t.circ"))
    (d,) = info.value.diagnostics
    assert d.code == "E251" and "set=" in d.message + str(d.hint)


def test_pattern_roles_are_bounded_by_the_context_and_memory() -> None:
    code, text = _one(_circuit("role 0.0 induction(half_len=40) >= 0.2"))
    assert code == "E251" and "64" in text  # seqcirc-mini's context
    code, text = _one(_circuit("role 0.0 induction(n_seqs=1000000000) >= 0.2"))
    assert code == "E251" and "1,000" in text
    code, text = _one(
        _circuit("role 0.0 duplicate(n_seqs=1000, half_len=500) >= 0.2", model="gpt2-small")
    )
    assert code == "E251" and "attention" in text
    check_text(_circuit("role 0.0 previous_token(n_seqs=64, half_len=31) >= 0.2"))


def test_the_default_half_len_is_checked_against_a_small_context(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    config = '{"n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": 32, "vocab_size": 50}'
    (folder / "config.json").write_text(config)
    path = str(tmp_path / "t.circ")
    with pytest.raises(DiagnosticsError) as info:
        check_text(_circuit("role 0.0 induction >= 0.2", model='"tiny"'), path)
    (d,) = info.value.diagnostics
    assert d.code == "E251" and "half_len" in d.message and "32" in str(d.hint)
    check_text(_circuit("role 0.0 induction(half_len=15) >= 0.2", model='"tiny"'), path)


# ---- shapes seqcirc cannot know offline ---------------------------------------------


def test_heads_of_a_model_of_unknown_shape_are_capped() -> None:
    diags = _diags(_circuit("heads 1.100000", model="someorg/m"))
    assert [d.code for d in diags] == ["E220", "W300"]
    assert "1000" in diags[0].message + str(diags[0].hint)


# ---- set algebra --------------------------------------------------------------------

CIRCUIT = TASK + "circuit c on seqcirc-mini {\n  heads 0.0, 0.1\n  mlp 0\n}\n"


def _chain(n: int) -> str:
    return CIRCUIT + "circuit d on seqcirc-mini = " + " & ".join(["c"] * n) + "\n"


def _nested(n: int) -> str:
    """n operations, each the right operand of the one before: nesting n."""
    expr = "c & (" * (n - 1) + "c & c" + ")" * (n - 1)
    return CIRCUIT + "circuit d on seqcirc-mini = " + expr + "\n"


def test_a_flat_chain_of_thousands_of_operands_checks_plans_and_formats() -> None:
    text = _chain(5000) + "expect d on months: faithfulness >= 0.5\n"
    module = check_text(text, "t.circ")
    assert len(module.circuits["d"][0].nodes) == 3
    plan = compile_text(text, "t.circ")
    (derived,) = [c for c in plan.circuits if c.name == "d on months"]
    assert derived.derived_from == ("c",)
    lines = text.splitlines()
    assert format_text(text).splitlines()[-3:] == [lines[-2], "", lines[-1]]
    left = CIRCUIT + "circuit d on seqcirc-mini = " + "(" * 3000 + "c" + " | c)" * 3000 + "\n"
    assert len(check_text(left).circuits["d"][0].nodes) == 3


def test_set_algebra_nested_past_the_limit_is_a_coded_error_naming_it() -> None:
    limit = V.LIMITS["set_depth"]
    check_text(_nested(limit - 1))
    assert format_text(_nested(limit - 1)).endswith(_nested(limit - 1).splitlines()[-1] + "\n")
    for n in (limit + 1, 5000):
        with pytest.raises(InputError) as info:
            parse(_nested(n), "t.circ")
        assert info.value.code == "E103" and str(limit) in info.value.message
        with pytest.raises(InputError):
            format_text(_nested(n))


def test_the_cli_never_hits_the_recursion_limit(tmp_path: Path) -> None:
    (tmp_path / "chain.circ").write_text(_chain(5000))
    (tmp_path / "deep.circ").write_text(_nested(5000))
    runs = [
        _cli("check", "chain.circ", "deep.circ", cwd=tmp_path),
        _cli("fmt", "chain.circ", "deep.circ", cwd=tmp_path),
        _cli("plan", "deep.circ", cwd=tmp_path),
    ]
    for proc in runs:
        assert proc.returncode == 2 and "error[E103]" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
    assert "chain.circ: ok" in runs[0].stdout
    assert runs[1].stdout.count(" & c") == 4999  # the chain, formatted before the error
    plan = _cli("plan", "chain.circ", cwd=tmp_path)
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr


@needs_bundled
def test_compare_reads_a_long_chain(tmp_path: Path) -> None:
    text = (
        _chain(5000).replace("prompts=48", "prompts=6")
        + "expect d on months: faithfulness >= 0.5\n"
    )
    (tmp_path / "chain.circ").write_text(text)
    proc = _cli("compare", "chain.circ", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RecursionError" not in proc.stderr


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


# ---- groups and imports ---------------------------------------------------------------


def test_a_chain_of_thousands_of_groups_checks_without_deep_recursion() -> None:
    groups = "".join(f"group g{i} = g{i - 1}\n" for i in range(1, 3000))
    text = TASK + "group g0 = 0.0\n" + groups + "circuit c on seqcirc-mini {\n  use g2999\n}\n"
    assert check_text(text).own[0].groups == (("g2999", (Node(0, 0),)),)


def test_groups_naming_a_group_twice_at_every_level_check_at_once() -> None:
    groups = "".join(f"group g{i} = g{i - 1}, g{i - 1}, 0.1\n" for i in range(1, 60))
    text = TASK + "group g0 = 0.0\n" + groups + "circuit c on seqcirc-mini {\n  use g59\n}\n"
    assert check_text(text).own[0].nodes == {Node(0, 0), Node(0, 1)}  # not 2^59 steps


def test_imports_nested_past_the_limit_are_e111(tmp_path: Path) -> None:
    n = V.LIMITS["import_depth"] + 5
    for i in range(n):
        body = f'import "f{i + 1}.circ"\n' if i + 1 < n else TASK
        (tmp_path / f"f{i}.circ").write_text(body)
    with pytest.raises(DiagnosticsError) as info:
        check_text((tmp_path / "f0.circ").read_text(), str(tmp_path / "f0.circ"))
    (d,) = info.value.diagnostics
    assert d.code == "E111" and str(V.LIMITS["import_depth"]) in d.message
    check_text((tmp_path / "f6.circ").read_text(), str(tmp_path / "f6.circ"))


# ---- the shipped files ----------------------------------------------------------------


def test_shipped_files_still_check_clean() -> None:
    files = [
        *sorted((ROOT / "hypotheses").glob("*.circ")),
        *sorted((ROOT / "hypotheses" / "discovered").glob("*.circ")),
        ROOT / "docs" / "tutorial" / "months.circ",
        *sorted((ROOT / "tests" / "golden" / "valid").glob("*.circ")),
    ]
    from seqcirc.checks import check_file

    for path in files:
        check_file(path)
