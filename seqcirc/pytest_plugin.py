"""pytest plugin (entry point `pytest11`): circuit claims in .circ files as tests.

Hooks and collection nodes only; the work lives in seqcirc.usecases.session and
seqcirc.report. Loaded by every pytest run where seqcirc is installed, so it imports
nothing heavy at import time, and it collects only the .circ files a project asks for
(the `seqcirc_files` ini patterns, or files named on the command line).

The tree is file -> circuit -> claim, with ids a person can type:
`months.circ::months_mini::role[2.0-successor]`, `...::faithfulness`, `...::beats_random`
(seqcirc.pytest_names), so `-k`, `--lf`, `--ff`, `--sw` and `-x` work as for Python tests.
A file's circuits on one model share one evaluation, run in the setup of the first
circuit that needs it; each item then reports its own claim's time (the shared
evaluation is reported once: a JUnit property and a terminal section).
"""

from __future__ import annotations

import fnmatch
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import ModelUnavailableError, SeqcircError
from seqcirc.language.vocab import BOS_CHOICES
from seqcirc.pytest_names import circuit_node_names, claim_names

# xdist modes that keep every claim of a file on one worker (one evaluation per file).
_XDIST_MODES_OK = ("loadfile", "each", "no")
_EVALUATION = "seqcirc_evaluation"  # the user property naming a shared evaluation


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seqcirc", "seqcirc circuit claims")
    group.addoption("--seqcirc-model", default=None, help="evaluate every circuit on this model")
    group.addoption("--seqcirc-seed", type=int, default=None, help="seed for every random draw")
    group.addoption("--seqcirc-prompts", type=int, default=None, help="prompts per task")
    group.addoption(
        "--seqcirc-device", default="auto", help="torch device: auto (a GPU if present), cpu, cuda"
    )
    group.addoption(
        "--seqcirc-bos",
        default=None,
        choices=BOS_CHOICES,
        help="BOS for every task: on, off, or auto (the model's default); "
        "default: each task's own `bos`",
    )
    group.addoption(
        "--seqcirc-cache-dir",
        default=None,
        help="keep mean-ablation values on disk here (default: $SEQCIRC_CACHE_DIR, else off)",
    )
    group.addoption(
        "--seqcirc-strict",
        action="store_true",
        default=False,
        help="fail (not skip) claims whose model cannot be loaded here",
    )
    group.addoption("--seqcirc-json", default=None, help="write the results JSON here")
    group.addoption("--seqcirc-html", default=None, help="write the HTML report here")
    parser.addini(
        "seqcirc_files",
        type="linelist",
        default=[],
        help="glob patterns (relative to rootdir) of .circ files to collect, "
        "e.g. hypotheses/*.circ",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Report paths checked before any claim runs: an unwritable one is a usage error."""
    config.pluginmanager.register(_EvaluationLog(config), "seqcirc-evaluations")
    _warn_on_splitting_xdist(config)
    paths = {
        "json_path": config.getoption("--seqcirc-json", None),
        "html_path": config.getoption("--seqcirc-html", None),
    }
    if any(paths.values()):
        from seqcirc.report import check_report_paths

        try:
            check_report_paths(**paths)
        except SeqcircError as err:
            raise pytest.UsageError(err.render()) from None


def _warn_on_splitting_xdist(config: pytest.Config) -> None:
    """Under pytest-xdist, a mode other than loadfile can send a file's claims to several
    workers, and each would evaluate the file again (loadgroup too: pytest-xdist 3.8
    writes its group into `item._nodeid`, which pytest 9 no longer reads)."""
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    if not config.getini("seqcirc_files"):
        return
    dist = getattr(config.option, "dist", "no")
    if getattr(config.option, "numprocesses", None) and dist not in _XDIST_MODES_OK:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"seqcirc: with --dist {dist} the claims of one .circ file can run on "
                "several workers, each evaluating the file again; use --dist loadfile"
            ),
            stacklevel=2,
        )


def _session(config: pytest.Config) -> Any:
    """The process-wide seqcirc Session (models, tasks and means cached across items)."""
    session = getattr(config, "_seqcirc_session", None)
    if session is None:
        from seqcirc.usecases.session import Options, Session

        session = Session(
            Options(
                model=config.getoption("--seqcirc-model"),
                seed=config.getoption("--seqcirc-seed"),
                prompts=config.getoption("--seqcirc-prompts"),
                device=config.getoption("--seqcirc-device"),
                cache_dir=config.getoption("--seqcirc-cache-dir"),
                bos=config.getoption("--seqcirc-bos"),
            )
        )
        config._seqcirc_session = session  # type: ignore[attr-defined]
        config._seqcirc_results = []  # type: ignore[attr-defined]
    return session


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CircFile | None:
    if file_path.suffix != ".circ":
        return None
    config = parent.config
    rel = (
        file_path.relative_to(config.rootpath).as_posix()
        if file_path.is_relative_to(config.rootpath)
        else str(file_path)
    )
    patterns = config.getini("seqcirc_files")
    named = any(Path(a.split("::")[0]).resolve() == file_path for a in config.args)
    if named or any(fnmatch.fnmatch(rel, p) for p in patterns):
        return CircFile.from_parent(parent, path=file_path)
    return None


# ---- collection nodes ---------------------------------------------------------------
@dataclass(frozen=True)
class _Evaluation:
    """One shared evaluation (a file's circuits on one model), for the reports."""

    file: str
    model: str
    circuits: int
    seconds: float
    worker: str | None  # pytest-xdist's worker id (gw0, ...), None outside xdist
    error: str | None  # the code of the error that stopped it, None when it ran

    def text(self) -> str:
        where = f" [{self.worker}]" if self.worker else ""
        n = f"{self.circuits} circuit{'s' if self.circuits != 1 else ''}"
        stopped = f" (stopped by {self.error})" if self.error else ""
        return f"{self.file} on {self.model}{where}: {n} in {self.seconds:.2f}s{stopped}"


class CircFile(pytest.File):
    """A .circ file: one collector per circuit, one item per claim."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        from seqcirc.plan.compile import compile_file

        try:
            plan = compile_file(self.path)
        except SeqcircError as err:
            # One failing item, not a collection error: those stop the whole session,
            # and the other files' claims must still run.
            yield BrokenFileItem.from_parent(self, name="check", error=err)
            return
        self.plan = plan
        self._results: dict[str, Any] = {}
        self._unreported: list[_Evaluation] = []
        # For pytest-xdist versions whose loadgroup honours the mark (--dist loadfile is
        # the documented mode: see _warn_on_splitting_xdist).
        self.add_marker(pytest.mark.xdist_group(self.nodeid))
        for circuit, name in zip(plan.circuits, circuit_node_names(plan.circuits), strict=True):
            if circuit.claims:
                yield Circuit.from_parent(self, name=name, circuit=circuit)

    def result_for(self, model_name: str) -> Any:
        """The evaluation of this file's circuits on one model, computed once (every one
        of them, whichever claims are selected: Holm across the file stays the same)."""
        if model_name not in self._results:
            session = _session(self.config)
            names = [c.name for c in self.plan.circuits if c.model.name == model_name]
            t0 = time.perf_counter()
            try:
                result = session.evaluate_circuits(self.plan, names, self.path.parent)
            except SeqcircError as err:
                result = err
            else:
                self.config._seqcirc_results.append(result)  # type: ignore[attr-defined]
            seconds = time.perf_counter() - t0
            self._results[model_name] = result
            worker = getattr(self.config, "workerinput", {}).get("workerid")
            error = result.code if isinstance(result, SeqcircError) else None
            self._unreported.append(
                _Evaluation(self.nodeid, model_name, len(names), seconds, worker, error)
            )
        return self._results[model_name]

    def evaluated(self, model_name: str) -> Any:
        """The evaluation on this model if it has run (None if not)."""
        return self._results.get(model_name)

    def take_unreported(self) -> list[_Evaluation]:
        """Evaluations run since the last call (by the setup being reported now)."""
        done, self._unreported = self._unreported, []
        return done


class Circuit(pytest.Collector):
    """One circuit of a .circ file; its setup runs the file's evaluation on its model."""

    def __init__(self, *, circuit: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.circuit = circuit

    def collect(self) -> Iterator[ClaimItem]:
        for claim, name in zip(self.circuit.claims, claim_names(self.circuit.claims), strict=True):
            # The id given as a string: pytest 9 parses `role[2.0-successor]` into a name
            # and its parameters, as it parses the ids --lf and --sw read back.
            nodeid = f"{self.nodeid}::{name}"
            yield ClaimItem.from_parent(self, name=name, nodeid=nodeid, claim=claim)

    def setup(self) -> None:
        assert isinstance(self.parent, CircFile)
        self.parent.result_for(self.circuit.model.name)


class BrokenFileItem(pytest.Item):
    """A .circ file that does not compile: fails with its diagnostics (path:line:col)."""

    def __init__(self, *, error: SeqcircError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, SeqcircError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        span = self.error.span
        line = max(span.line - 1, 0) if span is not None else 0
        return self.path, line, f"{self.path.name} does not compile"


class ClaimFailed(Exception):
    """A claim that does not hold; repr_failure shows the report's failure text."""


class ClaimItem(pytest.Item):
    def __init__(self, *, claim: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        assert isinstance(self.parent, Circuit) and isinstance(self.parent.parent, CircFile)
        self.circuit = self.parent.circuit
        self.circ_file = self.parent.parent

    def _result(self) -> Any:
        return self.circ_file.result_for(self.circuit.model.name)

    def runtest(self) -> None:
        result = self._result()
        if isinstance(result, ModelUnavailableError):
            if self.config.getoption("--seqcirc-strict"):
                raise result
            pytest.skip(f"model {self.circuit.model.name} unavailable here: {result.message}")
        if isinstance(result, SeqcircError):
            raise result
        circuit = result[self.circuit.name]
        claim = circuit.claim(self.claim.id)
        self.user_properties.append(("value", claim.value))
        if claim.verdict == "skipped":
            pytest.skip(claim.message or "claim not measured")
        if claim.verdict != "pass":
            from seqcirc.report import failure_text

            raise ClaimFailed(failure_text(claim, circuit, str(self.path)))

    def own_seconds(self) -> float | None:
        """The time this claim's own measurement took in the shared evaluation."""
        result = self.circ_file.evaluated(self.circuit.model.name)
        if result is None or isinstance(result, SeqcircError):
            return None
        timings = result[self.circuit.name].timings or {}
        seconds = timings.get(f"claim_s:{self.claim.id}")
        return None if seconds is None else float(seconds)

    def attribute_time(self, report: pytest.TestReport) -> None:
        """Durations (JUnit, --durations) per claim: the setup that ran a shared
        evaluation does not carry it (it is named once, as a property), and the call
        carries the claim's own measuring time."""
        if report.when == "setup":
            for evaluation in self.circ_file.take_unreported():
                report.duration = max(report.duration - evaluation.seconds, 0.0)
                prop = (_EVALUATION, evaluation.text())
                self.user_properties.append(prop)
                report.user_properties.append(prop)
        elif report.when == "call":
            own = self.own_seconds()
            if own is not None:
                report.duration += own

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, SeqcircError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        # pytest shows line numbers 1-based from a 0-based value
        return self.path, max(self.claim.line - 1, 0), f"{self.circuit.name}: {self.claim.text}"


# ---- reporting ----------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if isinstance(item, ClaimItem):
        item.attribute_time(report)
    return report


class _EvaluationLog:
    """The shared evaluations, gathered from the setup reports (so the workers' reach
    xdist's controller) and listed once after the test summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self.lines += [str(v) for k, v in report.user_properties if k == _EVALUATION]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        quiet = self.config.get_verbosity() < 0 and not self.config.getoption("durations", None)
        if self.lines and not quiet:
            terminalreporter.write_sep("=", "seqcirc evaluations (each shared by its claims)")
            for line in self.lines:
                terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    results = getattr(session.config, "_seqcirc_results", None)
    if not results:
        return
    json_path = session.config.getoption("--seqcirc-json")
    html_path = session.config.getoption("--seqcirc-html")
    if not (json_path or html_path):
        return
    from seqcirc.report import write_each

    errors: list[SeqcircError] = []
    write_each(results, json_path=json_path, html_path=html_path, errors=errors)
    if errors:  # after the test summary, an error the user must see: exit 4 (usage)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for err in errors:
            if reporter is not None:
                reporter.write_line(err.render(), red=True)
            else:
                sys.stderr.write(err.render() + "\n")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


@pytest.fixture(scope="session")
def seqcirc_session(pytestconfig: pytest.Config) -> Any:
    """The shared seqcirc Session: `seqcirc_session.evaluate_file("hypotheses/x.circ")`."""
    return _session(pytestconfig)
