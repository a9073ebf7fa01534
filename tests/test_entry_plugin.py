"""The pytest plugin, through pytester: collection, pass, fail, syntax errors, skips."""

from pathlib import Path

import pytest

from tests.mini_circuits import BAD, GOOD, TASK, needs_bundled
from tests.mini_circuits import heavy_modules_imported_outside as _heavy  # noqa: F401 (autouse)

pytest_plugins = ["pytester"]


def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nseqcirc_files = *.circ\n")


@needs_bundled
def test_passing_file_collects_one_item_per_claim(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["good.circ::most::faithfulness PASSED*"])


@needs_bundled
def test_failing_claim_points_at_file_and_line(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", bad=BAD)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    line = BAD.splitlines().index("  expect faithfulness(bound=point) >= 0.99") + 1
    assert f"bad.circ:{line}" in text
    assert ">= 0.99" in text
    assert "FAIL" in text
    assert "mean over the corrupted prompts" in text  # the ablation set-up is shown


def test_syntax_error_is_a_pointed_collection_error(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", broken="circuit x on seqcirc-mini {\n  heads 9..\n}\n")
    result = pytester.runpytest()
    # one failing item, not a collection error (which would stop every other file)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*broken.circ:2:*error[[]E*"])
    assert "Traceback" not in result.stdout.str()


@needs_bundled
def test_a_broken_file_does_not_stop_the_good_ones(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD, broken="circuit x on seqcirc-mini {\n  heads 9..\n}\n")
    result = pytester.runpytest("-v", "--seqcirc-prompts", "24")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["broken.circ::check FAILED*", "good.circ::most::faithfulness PASSED*"]
    )
    result.stdout.fnmatch_lines(["*broken.circ:2:9: error[[]E100[]]: unexpected*"])
    assert "Traceback" not in result.stdout.str()


def test_an_unwritable_report_path_is_a_usage_error_before_collection(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD)
    pytester.mkdir("out")
    result = pytester.runpytest("--seqcirc-json", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*error[[]E901[]]: cannot write the JSON report to out: it is a directory"]
    )
    assert "collected" not in result.stdout.str()


@needs_bundled
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_report_that_fails_to_write_at_the_end_is_exit_4(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD)
    result = pytester.runpytest("--seqcirc-json=/dev/full", "--seqcirc-prompts", "24")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*error[[]E901[]]: cannot write the JSON report to /dev/full*"])


def test_files_outside_the_patterns_are_not_collected(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nseqcirc_files = hypotheses/*.circ\n")
    pytester.makefile(".circ", other="this is not even a valid file")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_unloadable_model_skips_and_strict_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for the network
    _ini(pytester)
    pytester.makefile(
        ".circ",
        hub=TASK.replace("seqcirc-mini", "gpt2-small")
        + """
circuit c on gpt2-small {
  heads 9.1
  expect faithfulness >= 0.1
}
""",
    )
    skipped = pytester.runpytest("-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*gpt2-small*unavailable*"])
    strict = pytester.runpytest("--seqcirc-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*E50*gpt2-small*"])


@needs_bundled
def test_model_loaded_once_across_items_and_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcirc.models.load as models

    loads: list[str] = []
    real = models._load_folder

    def counting(*args, **kwargs):
        loads.append(str(args[0]))
        return real(*args, **kwargs)

    models.clear_cache()
    monkeypatch.setattr(models, "_load_folder", counting)
    _ini(pytester)
    pytester.makefile(".circ", a=GOOD, b=BAD.replace("tiny", "tiny2"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    assert loads == ["seqcirc-mini"]


@needs_bundled
def test_python_api_and_attribute_access(tmp_path: Path) -> None:
    import seqcirc

    path = tmp_path / "most.circ"
    path.write_text(GOOD)
    result = seqcirc.evaluate(path)
    assert result["most"].performance_ratio.lower >= 0.5
    assert result.passed


@needs_bundled
def test_role_claims_are_measured_in_a_session(tmp_path: Path) -> None:
    """A role claim's value is the roles module's own score of that head, and its verdict
    follows the threshold (one claim set to hold, one set to fail)."""
    from seqcirc.models.load import load_model
    from seqcirc.roles import ov_scores
    from seqcirc.usecases.session import Session

    path = tmp_path / "roles.circ"
    path.write_text(
        TASK
        + """
circuit r on seqcirc-mini {
  heads 0.0, 1.0
  role 1.0 successor(top=5) >= 0.0
  role 1.0 successor(top=5) >= 1.0
}
"""
    )
    result = Session().evaluate_file(path)
    holds, fails = result["r"].claims
    model = load_model("seqcirc-mini")
    want = ov_scores(model.bridge, model.tokenizer, "months", target="next", top_k=5).topk[1, 0]
    assert holds.value == pytest.approx(float(want), abs=1e-12)
    assert fails.value == holds.value
    assert (holds.verdict, fails.verdict) == ("pass", "fail")
    # the report's attention plot of the role head: named positions, causal, rows <= 1
    att = holds.detail["attention"]
    assert {"END", "S4", "N1"} <= set(att["labels"])
    grid = att["pattern"]
    end, n1 = att["labels"].index("END"), att["labels"].index("N1")
    assert grid[n1][end] == 0.0  # N1 comes before END: no attention forward in time
    assert all(sum(row) <= 1.0 + 1e-9 for row in grid)


@needs_bundled
def test_cache_dir_option_keeps_the_means_on_disk(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD)
    cache = pytester.path / "means"
    result = pytester.runpytest("--seqcirc-cache-dir", str(cache), "--seqcirc-device", "cpu")
    result.assert_outcomes(passed=1)
    assert len(list(cache.glob("means-*.safetensors"))) == 1


def test_unavailable_device_fails_the_items_with_e405(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makefile(".circ", good=GOOD)
    result = pytester.runpytest("--seqcirc-device", "tpu7")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*error[[]E405[]]*unknown device*tpu7*"])
