"""The pytest plugin in the daily workflow, through real pytest runs (pytester) on tiny
files on the bundled model: ids to select by (-k), --lf / --ff / -x / --sw, each claim's
own time in JUnit, --seqcirc-bos, and pytest-xdist keeping a file's claims on one worker
(one evaluation per file)."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET

import pytest

from seqcirc.plan.compile import compile_text
from seqcirc.pytest_names import circuit_node_names, claim_names
from tests.mini_circuits import TASK, heads_but_last, last_head, needs_bundled
from tests.mini_circuits import heavy_modules_imported_outside as _heavy  # noqa: F401 (autouse)

pytest_plugins = ["pytester"]

# Every kind of claim a circuit states, two of them twice; collected, never run.
KINDS = (
    TASK
    + """
circuit kinds on seqcirc-mini {
  heads 0.0, 0.1, 1.0
  role 1.0 successor(top=5) >= 0.1
  role 0.1 attends(from=S3, to=S2) >= 0.1
  role 0.1 attends(from=S4, to=S3) >= 0.1
  expect faithfulness >= 0.5
  expect faithfulness(bound=point) >= 0.5
  expect faithfulness(variant=normalized) >= 0.5
  expect minimality(signed) >= 0.01
  expect completeness(random=4, greedy) <= 0.5
  expect beats random(n=20) at p < 0.05
  expect beats random(n=20, layer_matched) at p < 0.05
  expect minimality(n=20, q=0.9) at p >= 0.05
}
expect kinds on months: faithfulness >= 0.1
"""
)

# Run for real: two role claims and a faithfulness claim that hold, one claim that fails.
WORK = (
    TASK
    + f"""
circuit most on seqcirc-mini {{
  heads {heads_but_last()}
  role 0.1 successor(top=5) >= 0.0
  role 1.0 successor(top=5) >= 0.0
  expect faithfulness >= 0.5
}}

circuit tiny on seqcirc-mini {{
  heads {last_head()}
  expect faithfulness(bound=point) >= 0.99
}}
"""
)
MOST = ["role[0.1-successor]", "role[1.0-successor]", "faithfulness"]
FAILING = "work.circ::tiny::faithfulness"


def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nseqcirc_files = *.circ\n")


def _glob(text: str) -> str:
    """`text` as an fnmatch pattern that matches itself (ids hold brackets)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in text)


def _evaluations(stdout: str) -> list[str]:
    """The terminal section naming each shared evaluation, one line each."""
    lines = stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if "seqcirc evaluations (each shared" in line]
    if not heads:
        return []
    section = []
    for line in lines[heads[0] + 1 :]:
        if line.startswith("="):
            break
        section.append(line)
    return section


def test_claim_names_say_what_each_claim_measures() -> None:
    plan = compile_text(KINDS, "kinds.circ")
    kinds, pair = plan.circuits
    lines = KINDS.splitlines()
    lower = lines.index("  expect faithfulness >= 0.5") + 1
    point = lines.index("  expect faithfulness(bound=point) >= 0.5") + 1
    assert claim_names(kinds.claims) == [
        "role[1.0-successor]",
        "role[0.1-attends-S3-S2]",
        "role[0.1-attends-S4-S3]",
        f"faithfulness[line{lower}]",  # faithfulness stated twice: told apart by line
        f"faithfulness[line{point}]",
        "faithfulness[normalized]",
        "minimality[signed]",
        "completeness[greedy]",
        "beats_random",
        "beats_random[layer_matched]",
        "minimality_test",
    ]
    assert circuit_node_names(plan.circuits) == ["kinds", "kinds-on-months"]
    assert claim_names(pair.claims) == ["faithfulness"]


def test_a_circuit_name_on_two_models_gets_the_model() -> None:
    one = "circuit twice on MODEL {\n  heads 0.0\n  expect faithfulness >= 0.1\n}\n"
    text = TASK + one.replace("MODEL", "seqcirc-mini") + one.replace("MODEL", "gpt2-small")
    plan = compile_text(text, "twice.circ")
    assert circuit_node_names(plan.circuits) == ["twice-on-seqcirc-mini", "twice-on-gpt2-small"]


def test_claims_sharing_a_line_get_the_column_too() -> None:
    from dataclasses import replace

    claim = compile_text(KINDS, "kinds.circ").circuits[0].claims[3]  # faithfulness
    twins = [replace(claim, col=3), replace(claim, col=40)]
    line = claim.line
    assert claim_names(twins) == [
        f"faithfulness[line{line}-col3]",
        f"faithfulness[line{line}-col40]",
    ]


def test_k_selects_claims_by_kind_role_and_head(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", kinds=KINDS)

    def ids(*args: str) -> list[str]:
        out = pytester.runpytest("--co", "-q", *args).stdout.lines
        return [line for line in out if line.startswith("kinds.circ::")]

    everything = ids()
    assert everything[:3] == [
        "kinds.circ::kinds::role[1.0-successor]",
        "kinds.circ::kinds::role[0.1-attends-S3-S2]",
        "kinds.circ::kinds::role[0.1-attends-S4-S3]",
    ]
    assert everything[-1] == "kinds.circ::kinds-on-months::faithfulness"
    assert len(everything) == len(set(everything)) == 12
    assert ids("-k", "successor") == ["kinds.circ::kinds::role[1.0-successor]"]
    assert ids("-k", "0.1 and attends") == everything[1:3]
    assert ids("-k", "beats_random and not layer_matched") == ["kinds.circ::kinds::beats_random"]
    assert ids("-k", "months") == ["kinds.circ::kinds-on-months::faithfulness"]


@needs_bundled
def test_last_failed_failed_first_exitfirst_and_stepwise(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", work=WORK)
    first = pytester.runpytest("--sw", "-v")  # nothing to skip yet: runs every claim
    first.assert_outcomes(passed=3, failed=1)
    first.stdout.fnmatch_lines([_glob(f"work.circ::most::{name} PASSED") + "*" for name in MOST])
    assert len(_evaluations(first.stdout.str())) == 1  # the file's circuits: one evaluation

    again = pytester.runpytest("--lf", "-v")
    again.assert_outcomes(failed=1, deselected=3)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure", f"{FAILING} FAILED*"])

    first_failed = pytester.runpytest("--ff", "-x", "-v")
    first_failed.assert_outcomes(failed=1)
    first_failed.stdout.fnmatch_lines([f"{FAILING} FAILED*", "*stopping after 1 failures*"])

    resumed = pytester.runpytest("--sw", "-v")
    resumed.assert_outcomes(failed=1, deselected=3)
    resumed.stdout.fnmatch_lines(["stepwise: skipping 3 already passed items*", f"{FAILING} *"])


@needs_bundled
def test_junit_gives_each_claim_its_own_time(pytester: pytest.Pytester) -> None:
    """A testcase's time is its claim's own measuring time (from the result's timings);
    the shared evaluation is charged to none of them and named once, as a property. The
    run also takes --seqcirc-bos, which reaches every task."""
    _ini(pytester)
    pytester.makefile(".circ", work=WORK)
    result = pytester.runpytest(
        "--junitxml=junit.xml", "--seqcirc-json=result.json", "--seqcirc-bos", "off"
    )
    result.assert_outcomes(passed=3, failed=1)
    report = json.loads((pytester.path / "result.json").read_text())
    assert {c["task"]["bos"] for c in report["circuits"]} == {"off"}
    own = [
        c["timings"][f"claim_s:{claim['id']}"] for c in report["circuits"] for claim in c["claims"]
    ]
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    times, shared = [], []
    for case in cases:
        times.append(float(case.attrib["time"]))
        props = case.iter("property")
        shared += [p.attrib["value"] for p in props if p.attrib["name"] == "seqcirc_evaluation"]
    assert len(shared) == 1, shared
    seconds = float(re.fullmatch(r"work\.circ on seqcirc-mini: 2 circuits in (\S+)s", shared[0])[1])
    assert len(times) == len(own) == 4
    for time, claim_s in zip(times, own, strict=True):
        assert claim_s - 0.001 <= time <= claim_s + 0.25  # + the item's own bookkeeping
    assert times[0] < seconds / 2 and sum(own) < seconds


def test_a_bos_value_outside_the_choices_is_a_usage_error(pytester: pytest.Pytester) -> None:
    wrong = pytester.runpytest("--seqcirc-bos", "maybe")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    wrong.stderr.fnmatch_lines(["*--seqcirc-bos: invalid choice: 'maybe'*"])


@pytest.mark.parametrize(
    ("dist", "warns"), [("load", True), ("loadgroup", True), ("loadfile", False)]
)
def test_xdist_modes_that_split_a_file_are_warned_about(
    pytester: pytest.Pytester, dist: str, warns: bool
) -> None:
    pytest.importorskip("xdist")
    from seqcirc.pytest_plugin import _warn_on_splitting_xdist

    _ini(pytester)
    # Parsed, not configured (no xdist controller, no exit-time gc); the plugin's
    # pytest_configure calls this with the same config.
    config = pytester.parseconfig("-n", "2", "--dist", dist)
    seen: list[str] = []

    class Recorder:
        def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
            seen.append(str(warning_message.message))

    config.pluginmanager.register(Recorder())
    _warn_on_splitting_xdist(config)
    ours = [m for m in seen if "use --dist loadfile" in m]
    assert len(ours) == int(warns), seen


CONFTEST = """
import os

import seqcirc.usecases.session as session

_evaluate = session.Session.evaluate_circuits


def _counting(self, plan, names, base_dir):
    with open(os.path.join(os.path.dirname(__file__), "evaluations.log"), "a") as log:
        log.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {os.path.basename(plan.source)}\\n")
    return _evaluate(self, plan, names, base_dir)


session.Session.evaluate_circuits = _counting
"""


@needs_bundled
def test_xdist_loadfile_keeps_a_file_on_one_worker(pytester: pytest.Pytester) -> None:
    """Four claims of one file on two workers: every claim runs on one worker, which
    evaluates the file once (counted by a conftest around the session, not by the
    plugin's own log); the idle worker never loads torch, which keeps this cheap."""
    pytest.importorskip("xdist")
    _ini(pytester)
    pytester.makeconftest(CONFTEST)
    circuit = (
        "\ncircuit NAME on seqcirc-mini {\n  heads " + heads_but_last() + "\n"
        "  expect faithfulness >= 0.5\n  expect faithfulness(bound=point) >= 0.5\n}\n"
    )
    text = TASK + circuit.replace("NAME", "one") + circuit.replace("NAME", "two")
    pytester.makefile(".circ", pair=text)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "-v", "--seqcirc-prompts", "24", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)
    log = (pytester.path / "evaluations.log").read_text().splitlines()
    assert len(log) == 1 and log[0].endswith(" pair.circ"), log  # one evaluation
    worker = log[0].split()[0]
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED pair\.circ::", result.stdout.str())
    assert ran == [worker] * 4, result.stdout.str()
    shown = _evaluations(result.stdout.str())  # the plugin's own account agrees
    assert len(shown) == 1, shown
    assert shown[0].startswith(f"pair.circ on seqcirc-mini [{worker}]: 2 circuits in ")
