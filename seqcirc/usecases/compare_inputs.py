"""The circuits `seqcirc compare` reads: every node circuit of the files, those stated
on one model with `--on MODEL`, renamed with `--rename [FILE:]OLD=NEW` where two files
use one name. Errors say which file holds what and the exact option that resolves them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from seqcirc.errors import InputError
from seqcirc.plan import CircuitPlan

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a circuit name, as the grammar's NAME


@dataclass(frozen=True)
class Entry:
    """A circuit to compare: its (possibly renamed) name, plan, file and file seed."""

    name: str
    circuit: CircuitPlan
    file: str  # as given on the command line
    folder: Path  # the file's folder: relative model and prompt paths resolve there
    seed: int


@dataclass(frozen=True)
class Rename:
    file: str | None  # None: the one file holding a circuit named `old`
    old: str
    new: str


def parse_rename(text: str) -> Rename:
    """ "[FILE:]OLD=NEW" -> Rename (E352 when malformed)."""
    lhs, eq, new = text.partition("=")
    file, colon, old = lhs.rpartition(":")
    if not eq or not old or not _NAME.match(old) or not _NAME.match(new):
        raise InputError(
            f"--rename {text!r} is not [FILE:]OLD=NEW with two circuit names",
            code="E352",
            hint="e.g. --rename months=months_found, or --rename b.circ:months=months_b",
        )
    return Rename(file if colon else None, old, new)


def load_circuits(
    files: Sequence[str], *, on: str | None = None, renames: Sequence[Rename] = ()
) -> list[Entry]:
    """The node circuits of the files (derived and `X on T` plans are skipped: compare
    evaluates every circuit on every task itself); with `on`, only those stated on that
    model (E404 for a file with none, as `seqcirc test --on`); renamed; names distinct."""
    from seqcirc.plan.compile import compile_file
    from seqcirc.usecases.session import Options, apply_options

    _no_file_twice(files)
    out: list[Entry] = []
    for path in files:
        plan = compile_file(path)
        if on is not None:
            plan = apply_options(plan, Options(only_model=on))
        folder = Path(path).resolve().parent
        for c in plan.circuits:
            # `expect C on T` plans C once more, named "C on T" (no circuit name has a space)
            if not (c.derived_from or c.ablation.is_edge or " " in c.name):
                out.append(Entry(c.name, c, path, folder, plan.seed))
    if not out:
        raise InputError(
            "no node circuit in the files given",
            code="E350",
            hint="compare takes .circ files with `circuit NAME on MODEL {...}`",
        )
    return _distinct(_renamed(out, renames))


def _no_file_twice(files: Sequence[str]) -> None:
    seen: dict[Path, str] = {}
    for path in files:
        key = Path(path).resolve()
        if key in seen:
            raise InputError(
                f"{path} is given twice (also as {seen[key]})",
                code="E350",
                hint="name each file once; its circuits are compared with the other files'",
            )
        seen[key] = path


def _matches(entry: Entry, file: str) -> bool:
    """FILE of --rename: the path as given, or the file's name."""
    return entry.file == file or Path(entry.file).name == file


def _renamed(entries: list[Entry], renames: Sequence[Rename]) -> list[Entry]:
    out = list(entries)
    for r in renames:
        if r.file is not None and not any(_matches(e, r.file) for e in entries):
            raise InputError(
                f"--rename {r.file}:{r.old}={r.new}: no file {r.file} was given",
                code="E352", hint="files: " + ", ".join(dict.fromkeys(e.file for e in entries)),
            )  # fmt: skip
        hits = [
            i
            for i, e in enumerate(entries)
            if e.name == r.old and (r.file is None or _matches(e, r.file))
        ]
        if not hits:
            names = ", ".join(dict.fromkeys(e.name for e in entries))
            raise InputError(
                f"--rename: no circuit named {r.old}" + (f" in {r.file}" if r.file else ""),
                code="E352", hint=f"circuits compared: {names}",
            )  # fmt: skip
        if len(hits) > 1:
            where = [entries[i].file for i in hits]
            raise InputError(
                f"--rename {r.old}={r.new}: circuit {r.old} is in {len(hits)} files "
                f"({', '.join(where)})",
                code="E352", hint=f"say which: --rename {where[-1]}:{r.old}={r.new}",
            )  # fmt: skip
        i = hits[0]
        out[i] = replace(out[i], name=r.new, circuit=replace(out[i].circuit, name=r.new))
    return out


def _distinct(entries: list[Entry]) -> list[Entry]:
    """Entries whose names are distinct, or E350 naming the files and the way out."""
    by_name: dict[str, list[Entry]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e)
    for name, same in by_name.items():
        if len(same) > 1:
            files = [e.file for e in same]
            fix = " ".join(
                f"--rename {e.file}:{name}={name}_{i + 2}" for i, e in enumerate(same[1:])
            )
            raise InputError(
                f"circuit name {name} appears more than once ({', '.join(files)}); "
                "the tables need one name per circuit",
                code="E350", hint=f"rename all but one: {fix}",
            )  # fmt: skip
    return entries
