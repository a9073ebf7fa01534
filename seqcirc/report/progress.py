"""Progress on stderr (seqcirc.progress's phases shown): on a terminal, a rich bar per
open phase with its counts, elapsed time and ETA (transient), and a summary line per
outermost phase that took a second or more; anywhere else (a pipe, a CI log), one plain
line per phase when it ends, with its count and duration, nothing animated. Never
stdout: a command's own output (a table, JSON, a .circ file) stays clean there.

    with stderr_progress(quiet=quiet):
        run_the_command()
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from seqcirc.progress import Phase, reporting


def seconds(t: float) -> str:
    """A duration as a log shows it: 0.04 s, 12.4 s, 95 s."""
    if t < 1:
        return f"{t:.2f} s"
    return f"{t:.1f} s" if t < 60 else f"{t:.0f} s"


def count(phase: Phase) -> str:
    """'280 circuits', '1 claim', or '57 of 64 candidates' when a phase ended short of
    its total."""
    done = n = round(phase.done)
    text = f"{done:,}"
    if phase.total is not None and done != round(phase.total):
        n = round(phase.total)
        text += f" of {n:,}"
    unit = phase.unit[:-1] if n == 1 and phase.unit.endswith("s") else phase.unit
    return f"{text} {unit}".rstrip()


def line(phase: Phase) -> str:
    """'circuit c / random baseline: 280 circuits in 12.4 s' ('load model m: 0.81 s'
    for a phase that counts nothing)."""
    name = " / ".join(phase.path)
    if phase.unit:
        return f"{name}: {count(phase)} in {seconds(phase.elapsed)}"
    return f"{name}: {seconds(phase.elapsed)}"


class LogLines:
    """A pipe's or a CI log's reporter: one line per phase that ended, plain text
    (no wrapping, no markup) on the console's file (default: sys.stderr as it is when
    the line is written)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console

    def started(self, phase: Phase) -> None:
        pass

    def advanced(self, phase: Phase) -> None:
        pass

    def ended(self, phase: Phase, *, failed: bool) -> None:
        if failed:  # the error that follows says what happened
            return
        out = self.console.file if self.console is not None else sys.stderr
        out.write(line(phase) + "\n")
        out.flush()


class TerminalBars:
    """A terminal's reporter: one transient rich bar per open phase (indented by depth;
    a pulsing bar where no total is known), then a dim summary line per outermost phase
    that took `summary_after_s` or more (where the time went; quick steps leave no
    trace). The live display runs only while a phase is open, so a command's own
    output, printed between phases, is never drawn over."""

    def __init__(self, console: Console, summary_after_s: float = 1.0) -> None:
        self.console = console
        self.summary_after_s = summary_after_s
        self.bars = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[count]}"), TimeElapsedColumn(), _Eta(),
            console=console, transient=True, redirect_stdout=False,
        )  # fmt: skip
        self.tasks: dict[int, Any] = {}

    def started(self, phase: Phase) -> None:
        if not self.tasks:
            self.bars.start()
        self.tasks[id(phase)] = self.bars.add_task(
            "  " * phase.depth + phase.name, total=phase.total, count=_count_field(phase)
        )

    def advanced(self, phase: Phase) -> None:
        task = self.tasks.get(id(phase))
        if task is not None:
            self.bars.update(task, completed=phase.done, count=_count_field(phase))

    def ended(self, phase: Phase, *, failed: bool) -> None:
        task = self.tasks.pop(id(phase), None)
        if task is not None:
            # one last frame with the final count, then the bar goes (transient)
            self.bars.update(task, completed=phase.done, count=_count_field(phase))
            self.bars.refresh()
            self.bars.remove_task(task)
        if not self.tasks:
            self.bars.stop()
        if phase.depth == 0 and not failed and phase.elapsed >= self.summary_after_s:
            self.console.print(line(phase), style="dim", highlight=False, markup=False)


def _count_field(phase: Phase) -> str:
    if not phase.unit:
        return ""
    if phase.total is None:
        return f"{round(phase.done):,} {phase.unit}"
    return f"{round(phase.done):,}/{round(phase.total):,} {phase.unit}"


class _Eta(ProgressColumn):
    """'ETA 0:00:12' once rich can estimate it; nothing for a phase without a total."""

    def render(self, task: Any) -> Text:
        left = task.time_remaining
        if task.total is None or task.finished or left is None:
            return Text("")
        m, s = divmod(int(left), 60)
        h, m = divmod(m, 60)
        return Text(f"ETA {h}:{m:02d}:{s:02d}", style="progress.remaining")


@contextmanager
def stderr_progress(*, quiet: bool = False, console: Console | None = None) -> Iterator[None]:
    """Show the phases of what runs inside on stderr: bars on a terminal, lines
    otherwise, nothing when `quiet`. `console`: where to draw (default: stderr)."""
    if quiet:
        with reporting(None):
            yield
        return
    console = console or Console(stderr=True)
    reporter: TerminalBars | LogLines
    # rich's rules decide what a terminal is (TTY_INTERACTIVE=0 asks for lines); a log
    # line goes to console.file as it is then (sys.stderr, or a test's capture)
    reporter = TerminalBars(console) if console.is_interactive else LogLines(console)
    try:
        with reporting(reporter):
            yield
    finally:
        if isinstance(reporter, TerminalBars):
            reporter.bars.stop()


__all__ = ["LogLines", "TerminalBars", "line", "seconds", "stderr_progress"]
