"""Run docs/tutorial.md as a script: its files, its edits and its commands.

    python scripts/tutorial.py            # rerun every command, rewrite the outputs in the doc
    python scripts/tutorial.py --check    # rerun and compare; exit 1 with a diff on drift

The doc is the script. In order, top to bottom:
- `<!-- tutorial: file PATH -->` before a fenced block: write the block to PATH;
- `<!-- tutorial: edit PATH -->` before a ```diff block: apply it to PATH (the lines
  marked ' ' and '-' must occur once, in a row; they become the ' ' and '+' lines);
- every ```console block: run each `$ command` and compare what follows it with the
  output (stdout and stderr as one stream, as a terminal shows them). `$ echo $?` shows
  the exit code of the command before it; a command not followed by one must exit 0.

Commands run in a fresh temporary folder, through this checkout's code: `seqcirc` as
`python -m seqcirc`, `pytest` and `python` with this interpreter, PYTHONPATH at the
repository root; anything else (cat) as it is. The environment is fixed so output is
stable: COLUMNS=100, NO_COLOR, HF_HUB_OFFLINE, one torch thread, unbuffered output.
tests/test_tutorial.py runs the same comparison in the test suite.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "tutorial.md"
# The final state of these files in the doc ships next to it, for readers to run.
SHIPPED = {"hypotheses/months.circ": ROOT / "docs" / "tutorial" / "months.circ"}
# Where the doc says the commands ran; the real temporary folder is shown as this.
SHOWN_DIR = "/tmp/months"
TIMEOUT_S = 300

_MARKER = re.compile(r"<!-- tutorial: (file|edit) (\S+) -->\n```[^\n]*\n(.*?)^```\n", re.S | re.M)
_CONSOLE = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)


@dataclass
class Command:
    line: str  # as written after "$ "
    shown: str  # the output the doc shows
    span: tuple[int, int]  # where `shown` sits in the doc
    actual: str = ""
    returncode: int = 0


@dataclass
class Step:
    kind: str  # "file", "edit", "console"
    start: int
    path: str = ""
    text: str = ""
    commands: list[Command] = field(default_factory=list)


def parse(doc: str) -> list[Step]:
    """The doc's steps in order: files, edits and console blocks."""
    steps = [
        Step(m.group(1), m.start(), path=m.group(2), text=m.group(3)) for m in _MARKER.finditer(doc)
    ]
    for m in _CONSOLE.finditer(doc):
        step = Step("console", m.start())
        body_start = m.start(1)
        entries = list(re.finditer(r"^\$ (.*)\n", m.group(1), re.M))
        if not entries or entries[0].start() != 0:
            raise ValueError(f"console block at offset {m.start()} must start with '$ '")
        for i, e in enumerate(entries):
            out_start = body_start + e.end()
            out_end = body_start + (
                entries[i + 1].start() if i + 1 < len(entries) else len(m.group(1))
            )
            step.commands.append(Command(e.group(1), doc[out_start:out_end], (out_start, out_end)))
        steps.append(step)
    return sorted(steps, key=lambda s: s.start)


def apply_diff(text: str, diff: str, path: str) -> str:
    """Apply a one-hunk diff given as ' '/'-'/'+' lines (no @@ header needed)."""
    old, new = [], []
    for line in diff.splitlines():
        mark, rest = (line[:1], line[1:]) if line else (" ", "")  # an editor may strip " "
        if mark in (" ", "-"):
            old.append(rest)
        if mark in (" ", "+"):
            new.append(rest)
        if mark not in (" ", "-", "+", "@"):
            raise ValueError(f"edit of {path}: line {line!r} starts with none of ' -+'")
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    if text.count(before) != 1:
        raise ValueError(f"edit of {path}: its ' '/'-' lines occur {text.count(before)} times")
    return text.replace(before, after)


def environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_", "FORCE_COLOR", "PY_COLORS"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
        COLUMNS="100",
        LINES="50",
        NO_COLOR="1",
        TERM="dumb",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def argv(line: str) -> list[str]:
    words = shlex.split(line)
    if words[0] == "seqcirc":
        return [sys.executable, "-m", "seqcirc", *words[1:]]
    if words[0] == "pytest":
        return [sys.executable, "-m", "pytest", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return words


def run(doc: str, workdir: Path) -> list[Step]:
    """Carry out the doc's steps in `workdir`; fill in each command's real output."""
    steps = parse(doc)
    env = environment()
    last_rc = 0
    for step in steps:
        target = workdir / step.path
        if step.kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text)
        elif step.kind == "edit":
            target.write_text(apply_diff(target.read_text(), step.text, step.path))
        for cmd in step.commands:
            if cmd.line.strip() == "echo $?":
                cmd.actual, cmd.returncode = f"{last_rc}\n", 0
                continue
            proc = subprocess.run(
                argv(cmd.line),
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=TIMEOUT_S,
            )
            cmd.actual = shown_paths(proc.stdout, workdir)
            cmd.returncode = last_rc = proc.returncode
    return steps


def shown_paths(text: str, workdir: Path) -> str:
    """The real temporary folder as the doc shows it; trailing blanks dropped (rich pads)."""
    for form in {str(workdir), str(workdir.resolve())}:
        text = text.replace(form, SHOWN_DIR)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


# What legitimately differs between two runs or machines, and nothing else: durations,
# library versions and interpreter paths, pytest's environment header lines, the
# truncated message of pytest's short summary (its length depends on the folder's path),
# pytest's `=====` padding around its summary line (its length follows the duration's
# digits) and line wrapping (rich rewraps when a version string's length changes).
_NORMALISE = [
    (re.compile(r"\b(in|took) \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?"), r"\1 <t>s"),
    (re.compile(r"\b\d+(\.\d+)? s$", re.M), "<t> s"),  # progress lines: `clean run: ... in 0.4 s`
    (re.compile(r"={2,}"), "=="),
    (re.compile(r"^(platform|plugins:|cachedir:|hypothesis profile).*$", re.M), r"\1 <env>"),
    (re.compile(r"^((?:FAILED|ERROR) \S+) - .*$", re.M), r"\1 - <message>"),
    (
        re.compile(
            r"\b(numpy|python|scipy|seqcirc|torch|transformer-lens|transformers|pytest|pluggy)"
            r"([ -])\d+(\.\d+)*[\w.+-]*"
        ),
        r"\1\2<v>",
    ),
]


def normalise(text: str) -> str:
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def problems(steps: list[Step]) -> list[str]:
    """Every command whose output or exit code differs from what the doc shows."""
    out = []
    commands = [c for s in steps for c in s.commands]
    for i, cmd in enumerate(commands):
        following = commands[i + 1].line.strip() if i + 1 < len(commands) else ""
        if cmd.returncode != 0 and following != "echo $?":
            out.append(f"$ {cmd.line}: exit {cmd.returncode}, but the doc shows no `echo $?`")
        if normalise(cmd.shown) != normalise(cmd.actual):
            diff = difflib.unified_diff(
                cmd.shown.splitlines(), cmd.actual.splitlines(), "doc", "actual", lineterm=""
            )
            out.append(f"$ {cmd.line}: output differs\n" + "\n".join(diff))
    return out


def render(doc: str, steps: list[Step]) -> str:
    """The doc with every command's shown output replaced by its real one."""
    commands = sorted((c for s in steps for c in s.commands), key=lambda c: c.span[0])
    parts, pos = [], 0
    for cmd in commands:
        parts += [doc[pos : cmd.span[0]], cmd.actual]
        pos = cmd.span[1]
    return "".join([*parts, doc[pos:]])


def final_files(steps: list[Step], workdir: Path) -> dict[str, str]:
    return {name: (workdir / name).read_text() for name in SHIPPED}


def prose_numbers(doc: str) -> list[str]:
    """Decimal numbers in the prose (outside fenced blocks and inline code)."""
    prose = re.sub(r"^```.*?^```\n", "", doc, flags=re.S | re.M)
    prose = re.sub(r"`[^`]*`", "", prose)
    prose = re.sub(r"<!--.*?-->", "", prose, flags=re.S)
    return re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])|\d+%", prose)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    args = parser.parse_args()
    doc = DOC.read_text()
    with tempfile.TemporaryDirectory(prefix="seqcirc-tutorial-") as tmp:
        steps = run(doc, Path(tmp))
        files = final_files(steps, Path(tmp))
    if args.check:
        found = problems(steps)
        found += [
            f"{SHIPPED[name]} differs from the doc's final {name}"
            for name, text in files.items()
            if SHIPPED[name].read_text() != text
        ]
        print("\n\n".join(found) or "docs/tutorial.md matches its commands' output")
        return 1 if found else 0
    DOC.write_text(render(doc, steps))
    for name, text in files.items():
        SHIPPED[name].parent.mkdir(parents=True, exist_ok=True)
        SHIPPED[name].write_text(text)
    bad = [p for p in problems(steps) if "but the doc shows no `echo $?`" in p]
    print(f"rewrote {DOC.relative_to(ROOT)} and {len(files)} shipped file(s)")
    for p in bad:
        print(p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
