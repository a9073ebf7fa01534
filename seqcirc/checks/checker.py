"""Semantic checks of a parsed .circ file against the shapes of the models it names.

Config only, no weights. Every problem is collected; `check_file`/`check_program`
raise one CheckError listing them all. What survives the checks is a Module: the
file's tasks, groups and circuits resolved to concrete nodes and edges, which
seqcirc.plan.compile turns into a Plan.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from seqcirc.checks.algebra import evaluate_derived, lookup_circuit
from seqcirc.checks.body import check_body
from seqcirc.checks.claims import ClaimChecker
from seqcirc.checks.components import resolve_model
from seqcirc.checks.context import CheckContext
from seqcirc.checks.diagnostics import CheckError
from seqcirc.checks.generation import check_generation_filter
from seqcirc.checks.resolved import Module
from seqcirc.checks.scope import check_group_name, file_group, unknown_task
from seqcirc.errors import Diagnostic, InputError, SeqcircError
from seqcirc.language import ast, parse
from seqcirc.language import vocab as V


class Checker:
    """Checks one file; `stack` holds the files being imported, for cycle detection."""

    def __init__(self, program: ast.Program, stack: tuple[str, ...] = ()) -> None:
        self.program = program
        self.stack = (*stack, _key(program.path))
        self.mod = Module(program.path, program)
        base = Path(program.path).parent if program.path != "<string>" else Path()
        self.ck = CheckContext.of(self.mod, base)

    def run(self) -> Module:
        ck = self.ck
        seeds = self.program.of_type(ast.SeedStmt)
        for extra in seeds[1:]:
            ck.error("E210", "the seed is set twice", extra.span, "keep one `seed` line")
        if seeds:
            self.mod.seed = seeds[0].value
            if seeds[0].value > V.LIMITS["seed"]:
                ck.error(
                    "E251",
                    f"the seed must be at most {V.LIMITS['seed']:,}, not {seeds[0].value}",
                    seeds[0].span,
                    "a seed fits a signed 64-bit integer",
                )
        for imp in self.program.of_type(ast.ImportStmt):
            self._import(imp)
        for task in self.program.of_type(ast.TaskDef):
            self._define(ck.tasks, task.name, task, "task")
            self.mod.task_dirs[task.name.name] = str(ck.base)
            self._check_task(task)
        for group in self.program.of_type(ast.GroupDef):
            check_group_name(ck, group.name)
            self._define(ck.groups, group.name, group, "group")
            file_group(ck, group.name.name, None)
        for item in self.program.items:
            if isinstance(item, ast.CircuitDef):
                self._circuit(item)
            elif isinstance(item, ast.DerivedDef):
                self._derived(item)
            elif isinstance(item, ast.ExpectOn):
                self._expect_on(item)
        return self.mod

    def run_or_raise(self) -> Module:
        mod = self.run()
        if self.ck.diags:
            found = sorted(dict.fromkeys(self.ck.diags), key=self._position)
            found += mod.warnings  # shown too, after the errors
            raise CheckError(found, self.program.text, self.program.path)
        mod.exported = {t.name.name for t in self.program.of_type(ast.TaskDef)} | {
            g.name.name for g in self.program.of_type(ast.GroupDef)
        }
        return mod

    def _position(self, d: Diagnostic) -> tuple[int, int, int]:
        """Source order; problems found in other files (imported groups) last."""
        if d.span is None:
            return (0, 0, 0)
        return (int(d.span.path != self.program.path), d.span.line, d.span.col)

    def _define(self, table: dict, name: ast.NameRef, value: object, what: str) -> None:
        if name.name in table:
            self.ck.error(
                "E210",
                f"{what} `{name.name}` is defined twice",
                name.span,
                f"rename one of them; each {what} name must be unique in a file and its imports",
            )
        table[name.name] = value

    # ---- imports ------------------------------------------------------------------
    def _import(self, imp: ast.ImportStmt) -> None:
        target = Path(os.path.normpath(self.ck.base / imp.path))
        if _key(str(target)) in self.stack:
            chain = " -> ".join(Path(p).name for p in (*self.stack, str(target)))
            self.ck.error("E111", f"import cycle: {chain}", imp.span, "remove one of these imports")
            return
        if len(self.stack) >= V.LIMITS["import_depth"]:
            self.ck.error(
                "E111",
                f"imports nested more than {V.LIMITS['import_depth']} files deep",
                imp.span,
                "import the files a chain ends in directly",
            )
            return
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            self.ck.error(
                "E110",
                f"cannot import `{imp.path}`: {reason}",
                imp.span,
                "import paths are relative to the importing file",
            )
            return
        try:
            mod = Checker(parse(text, str(target)), self.stack).run_or_raise()
        except SeqcircError as err:
            self._broken_import(imp, err)
            return
        self._take_exports(imp, mod)

    def _broken_import(self, imp: ast.ImportStmt, err: SeqcircError) -> None:
        first = err.diagnostics[0]
        where = f" at {imp.path}:{first.span.line}:{first.span.col}" if first.span else ""
        if first.code == "E111":
            self.ck.error("E111", first.message, imp.span, first.hint)
            return
        self.ck.error(
            "E112",
            f"`{imp.path}` has {len(err.diagnostics)} error(s), first{where}: {first.message}",
            imp.span,
            f"run `seqcirc check {imp.path}`",
        )

    def _take_exports(self, imp: ast.ImportStmt, mod: Module) -> None:
        """The imported file's own tasks and groups, and its circuits to refer to."""
        for name, task in mod.tasks.items():
            if name in mod.exported:
                self._define(self.ck.tasks, ast.NameRef(name, imp.span), task, "task")
                self.mod.task_dirs[name] = mod.task_dirs[name]
        for name, group in mod.groups.items():
            if name in mod.exported:
                # flattened, so names the imported file itself imported need not be in scope
                flat = replace(group, members=mod.flat_groups[name])
                self._define(self.ck.groups, ast.NameRef(name, imp.span), flat, "group")
        for circuit in mod.own:
            self.ck.circuits.setdefault(circuit.name, []).append(circuit)

    # ---- tasks --------------------------------------------------------------------
    def _check_task(self, task: ast.TaskDef) -> None:
        claims = ClaimChecker(self.ck.error)
        if isinstance(task.source, ast.SeqSource):
            claims.sequence(task.source)
        elif not (self.ck.base / task.source.path).is_file():
            self.ck.error(
                "E110",
                f"prompt file `{task.source.path}` not found",
                task.source.span,
                "prompt files (JSONL or CSV) are found relative to this file",
            )
        seen: dict[str, ast.TaskClause] = {}
        for clause in task.clauses:
            if clause.kind in seen:
                self.ck.error("E210", f"`{clause.kind}` is given twice", clause.span)
            seen[clause.kind] = clause
            claims.task_clause(clause)
        check_generation_filter(self.ck.error, seen)

    # ---- circuits -----------------------------------------------------------------
    def _circuit(self, c: ast.CircuitDef) -> None:
        model = resolve_model(self.ck, c.model)
        for other in self.ck.circuits.get(c.name.name, []):
            if model is not None and other.model.ref.name == model.ref.name:
                self.ck.error(
                    "E210",
                    f"circuit `{c.name.name}` on `{model.ref.name}` is defined twice",
                    c.name.span,
                    "one section per model; use another name for a variant",
                )
        circuit = check_body(self.ck, c, model)
        if circuit is None:
            self.ck.failed.add(c.name.name)
        else:
            self.ck.circuits.setdefault(c.name.name, []).append(circuit)
            self.mod.own.append(circuit)

    def _derived(self, d: ast.DerivedDef) -> None:
        if d.name.name in self.ck.circuits:
            self.ck.error("E210", f"circuit `{d.name.name}` is defined twice", d.name.span)
            return
        circuit = evaluate_derived(self.ck, d)
        if circuit is None:
            self.ck.failed.add(d.name.name)
        else:
            self.ck.circuits[d.name.name] = [circuit]

    def _expect_on(self, e: ast.ExpectOn) -> None:
        circuit = lookup_circuit(self.ck, e.circuit, None)
        task = self.ck.tasks.get(e.task.name)
        if task is None:
            unknown_task(self.ck, e.task)
        shape = circuit.model.shape if circuit is not None else None
        ClaimChecker(self.ck.error).claim(e.claim, shape)
        if circuit is not None and task is not None:
            self.mod.expect_on.append((e, circuit, task))


def _key(path: str) -> str:
    return str(Path(path).resolve()) if path != "<string>" else path


def check_program(program: ast.Program) -> Module:
    """Check a parsed program; raise CheckError with every problem found."""
    return Checker(program).run_or_raise()


def check_text(text: str, path: str = "<string>") -> Module:
    return check_program(parse(text, path))


def check_file(path: str | Path) -> Module:
    """Read, parse and check a .circ file (InputError if it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read {path}: {getattr(err, 'strerror', None) or err}",
            code="E110",
            hint="give the path of a .circ file",
        ) from None
    return check_text(text, str(path))
