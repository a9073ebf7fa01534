"""pytest plugin (entry point `pytest11`): circuit claims in .circ files as tests.

Hooks and fixtures only; the work lives in seqcirc.usecases.session and seqcirc.report. Loaded
by every pytest run where seqcirc is installed, so it imports nothing heavy at import
time, and it collects only the .circ files a project asks for (the `seqcirc_files` ini
patterns, or files named on the command line).
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import ModelUnavailableError, SeqcircError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seqcirc", "seqcirc circuit claims")
    group.addoption("--seqcirc-model", default=None, help="evaluate every circuit on this model")
    group.addoption("--seqcirc-seed", type=int, default=None, help="seed for every random draw")
    group.addoption("--seqcirc-prompts", type=int, default=None, help="prompts per task")
    group.addoption(
        "--seqcirc-device", default="auto", help="torch device: auto (a GPU if present), cpu, cuda"
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


class CircFile(pytest.File):
    """A .circ file: one item per claim, grouped by circuit."""

    def collect(self) -> Any:
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
        for circuit in plan.circuits:
            for claim in circuit.claims:
                item = ClaimItem.from_parent(
                    self, name=f"{circuit.name}::{claim.id}", circuit=circuit, claim=claim
                )
                # pytest-xdist --dist loadgroup: a file's items share one evaluation.
                item.add_marker(pytest.mark.xdist_group(str(self.path)))
                yield item

    def result_for(self, model_name: str) -> Any:
        """The evaluation of this file's circuits on one model, computed once."""
        if model_name not in self._results:
            session = _session(self.config)
            names = [c.name for c in self.plan.circuits if c.model.name == model_name]
            try:
                result = session.evaluate_circuits(self.plan, names, self.path.parent)
            except SeqcircError as err:
                result = err
            else:
                self.config._seqcirc_results.append(result)  # type: ignore[attr-defined]
            self._results[model_name] = result
        return self._results[model_name]


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
    def __init__(self, *, circuit: Any, claim: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.circuit = circuit
        self.claim = claim

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, CircFile)
        result = parent.result_for(self.circuit.model.name)
        if isinstance(result, ModelUnavailableError):
            if self.config.getoption("--seqcirc-strict"):
                raise result
            pytest.skip(f"model {self.circuit.model.name} unavailable here: {result.message}")
        if isinstance(result, SeqcircError):
            raise result
        circuit = next(c for c in result.circuits if c.name == self.circuit.name)
        claim = next(c for c in circuit.claims if c.id == self.claim.id)
        self.user_properties.append(("value", claim.value))
        if claim.verdict == "skipped":
            pytest.skip(claim.message or "claim not measured")
        if claim.verdict != "pass":
            from seqcirc.report import failure_text

            raise ClaimFailed(failure_text(claim, circuit, str(self.path)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, SeqcircError):
            return excinfo.value.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        # pytest shows line numbers 1-based from a 0-based value
        return self.path, max(self.claim.line - 1, 0), f"{self.circuit.name}: {self.claim.text}"


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
