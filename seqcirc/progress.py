"""Progress of long steps: named phases that have a total and advance.

The stages that do the work (models/, tasks/, engine/, claims/, roles/, discovery/) mark
their long loops here and draw nothing: an entry point installs a Reporter for the
length of a command (seqcirc.report.progress: rich bars on a terminal, one line per
phase in a log). Without one (the pytest plugin, the Python API) every call here is a
no-op that costs a context-variable lookup. No rich, no torch: any stage may import it.

A long step of a new command, e.g. attribution's integrated-gradient steps:

    from seqcirc import progress

    with progress.phase("attribution", total=n_steps, unit="steps") as bar:
        for step in range(n_steps):
            ...
            bar.advance()

Phases nest: a reporter names a phase by its path ("circuit c / random baseline").
A loop that does not own the phase reports with `progress.advance(n, unit)`, which
advances the innermost open phase only when that phase counts `unit`: run_circuits
reports circuits scored this way, so "random baseline" counts its circuits chunk by
chunk while a pruning sweep (which counts candidates) is not disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(eq=False)
class Phase:
    """One open (or ended) phase: what it counts, how far it is, since when."""

    name: str
    total: float | None = None  # None: no count known ahead (a bar without an end)
    unit: str = ""  # what `done` counts: "prompts", "circuits", "candidates", ...
    parent: Phase | None = None
    done: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    reporter: Reporter | None = None

    @property
    def path(self) -> tuple[str, ...]:
        """The names of the open phases from the outermost down to this one."""
        up = self.parent.path if self.parent is not None else ()
        return (*up, self.name)

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def advance(self, n: float = 1) -> None:
        """n more units done (fractions allowed: a chunk of a circuit's prompts)."""
        self.done += n
        if self.reporter is not None:
            self.reporter.advanced(self)


class Reporter(Protocol):
    """What shows phases; seqcirc.report.progress has a terminal's and a log's."""

    def started(self, phase: Phase) -> None: ...

    def advanced(self, phase: Phase) -> None: ...

    def ended(self, phase: Phase, *, failed: bool) -> None: ...


_REPORTER: ContextVar[Reporter | None] = ContextVar("seqcirc_progress", default=None)
_OPEN: ContextVar[Phase | None] = ContextVar("seqcirc_progress_phase", default=None)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Phases opened inside go to `reporter` (None: nowhere, e.g. for --quiet)."""
    token, open_token = _REPORTER.set(reporter), _OPEN.set(None)
    try:
        yield
    finally:
        _OPEN.reset(open_token)
        _REPORTER.reset(token)


@contextmanager
def phase(name: str, total: float | None = None, unit: str = "") -> Iterator[Phase]:
    """A long step: yields its Phase, to `advance(n)` as work is done. A phase that
    raises is reported as failed (a log prints no line for it)."""
    reporter = _REPORTER.get()
    current = Phase(name, total, unit, parent=_OPEN.get(), reporter=reporter)
    if reporter is None:
        yield current
        return
    token = _OPEN.set(current)
    reporter.started(current)
    failed = True
    try:
        yield current
        failed = False
    finally:
        current.ended = time.perf_counter()
        _OPEN.reset(token)
        reporter.ended(current, failed=failed)


def advance(n: float = 1, unit: str | None = None) -> None:
    """Advance the innermost open phase by n, if it counts `unit` (None: whatever it
    counts). A no-op without a reporter or an open phase."""
    current = _OPEN.get()
    if current is not None and (unit is None or current.unit == unit):
        current.advance(n)


__all__ = ["Phase", "Reporter", "advance", "phase", "reporting"]
