"""Semantic checks of a parsed .circ file against the shapes of the models it names.

Config only, no weights. Every problem is collected; `check_file`/`check_program`
raise one DiagnosticsError listing them all. What survives the checks is a Module:
the file's tasks, groups and circuits resolved to concrete nodes and edges, which
seqcirc.plan.compile turns into a Plan.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from seqcirc.checks.claims import ClaimChecker
from seqcirc.checks.components import ResolvedModel, check_head, mlp_nodes, resolve_model
from seqcirc.errors import Diagnostic, DiagnosticsError, SeqcircError
from seqcirc.language import ast, parse
from seqcirc.language import vocab as V
from seqcirc.models import shapes
from seqcirc.plan import EMBED, LOGITS, Edge, Node
from seqcirc.source import Span


def suggest(name: str, candidates: object) -> str | None:
    """`did you mean ...?` from difflib, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)  # type: ignore[call-overload]
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


@dataclass(frozen=True)
class Circuit:
    """A circuit section (or a set-algebra result) with its components resolved."""

    name: str
    model: ResolvedModel
    nodes: frozenset[Node]
    groups: tuple[tuple[str, tuple[Node, ...]], ...]
    edges: tuple[Edge, ...]
    task: ast.TaskDef | None
    ablation: ast.AblateStmt | None
    claims: tuple[ast.RoleStmt | ast.ExpectStmt, ...]
    path: str
    span: Span
    derived: bool = False


@dataclass
class Module:
    """One checked file: its own definitions plus what it imported (not re-exported)."""

    path: str
    program: ast.Program
    tasks: dict[str, ast.TaskDef] = field(default_factory=dict)
    task_dirs: dict[str, str] = field(default_factory=dict)  # task -> directory of its file
    groups: dict[str, ast.GroupDef] = field(default_factory=dict)
    circuits: dict[str, list[Circuit]] = field(default_factory=dict)
    own: list[Circuit] = field(default_factory=list)  # circuits defined in this file
    expect_on: list[tuple[ast.ExpectOn, Circuit, ast.TaskDef]] = field(default_factory=list)
    seed: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)
    exported: set[str] = field(default_factory=set)


class Checker:
    """Checks one file; `stack` holds the files being imported, for cycle detection."""

    def __init__(self, program: ast.Program, stack: tuple[str, ...] = ()) -> None:
        self.program = program
        self.base = Path(program.path).parent if program.path != "<string>" else Path()
        self.stack = (*stack, _key(program.path))
        self.diags: list[Diagnostic] = []
        self.mod = Module(program.path, program)
        self._resolving: set[str] = set()  # file-level groups being expanded (cycle guard)
        self.failed: set[str] = set()  # circuits already reported, so uses add no noise

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    # ---- the file -----------------------------------------------------------------
    def run(self) -> Module:
        seeds = self.program.of_type(ast.SeedStmt)
        for extra in seeds[1:]:
            self.error("E210", "the seed is set twice", extra.span, "keep one `seed` line")
        if seeds:
            self.mod.seed = seeds[0].value
        for imp in self.program.of_type(ast.ImportStmt):
            self._import(imp)
        for task in self.program.of_type(ast.TaskDef):
            self._define(self.mod.tasks, task.name, task, "task")
            self.mod.task_dirs[task.name.name] = str(self.base)
            self._check_task(task)
        for group in self.program.of_type(ast.GroupDef):
            self._define(self.mod.groups, group.name, group, "group")
            self.expand(group.members, None, {}, group.span)
        for item in self.program.items:
            if isinstance(item, ast.CircuitDef):
                self._circuit(item)
            elif isinstance(item, ast.DerivedDef):
                self._derived(item)
            elif isinstance(item, ast.ExpectOn):
                self._expect_on(item)
        return self.mod

    def _define(self, table: dict, name: ast.NameRef, value: object, what: str) -> None:
        if name.name in table:
            self.error(
                "E210",
                f"{what} `{name.name}` is defined twice",
                name.span,
                f"rename one of them; each {what} name must be unique in a file and its imports",
            )
        table[name.name] = value

    # ---- imports ------------------------------------------------------------------
    def _import(self, imp: ast.ImportStmt) -> None:
        target = Path(os.path.normpath(self.base / imp.path))
        if _key(str(target)) in self.stack:
            chain = " -> ".join(Path(p).name for p in (*self.stack, str(target)))
            self.error("E111", f"import cycle: {chain}", imp.span, "remove one of these imports")
            return
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            self.error(
                "E110",
                f"cannot import `{imp.path}`: {reason}",
                imp.span,
                "import paths are relative to the importing file",
            )
            return
        try:
            mod = Checker(parse(text, str(target)), self.stack).run_or_raise()
        except SeqcircError as err:
            first = err.diagnostics[0]
            where = f" at {imp.path}:{first.span.line}:{first.span.col}" if first.span else ""
            if first.code == "E111":
                self.error("E111", first.message, imp.span, "remove one of these imports")
                return
            self.error(
                "E112",
                f"`{imp.path}` has {len(err.diagnostics)} error(s), first{where}: {first.message}",
                imp.span,
                f"run `seqcirc check {imp.path}`",
            )
            return
        for name, task in mod.tasks.items():
            if name in mod.exported:
                self._define(self.mod.tasks, ast.NameRef(name, imp.span), task, "task")
                self.mod.task_dirs[name] = mod.task_dirs[name]
        for name, group in mod.groups.items():
            if name in mod.exported:
                # flattened, so names the imported file itself imported need not be in scope
                flat = replace(group, members=_flatten(mod.groups, name))
                self._define(self.mod.groups, ast.NameRef(name, imp.span), flat, "group")
        for circuit in mod.own:
            self.mod.circuits.setdefault(circuit.name, []).append(circuit)

    def _position(self, d: Diagnostic) -> tuple[int, int, int]:
        """Source order; problems found in other files (imported groups) last."""
        if d.span is None:
            return (0, 0, 0)
        return (int(d.span.path != self.program.path), d.span.line, d.span.col)

    def run_or_raise(self) -> Module:
        mod = self.run()
        if self.diags:
            found = sorted(dict.fromkeys(self.diags), key=self._position)
            found += mod.warnings  # shown too, after the errors
            raise CheckError(found, self.program.text, self.program.path)
        mod.exported = {t.name.name for t in self.program.of_type(ast.TaskDef)} | {
            g.name.name for g in self.program.of_type(ast.GroupDef)
        }
        return mod

    # ---- tasks --------------------------------------------------------------------
    def _check_task(self, task: ast.TaskDef) -> None:
        from seqcirc.tasks.sets import DEFAULT_RANGE, ORDERED_SETS

        claims = ClaimChecker(self.error)
        if isinstance(task.source, ast.SeqSource):
            src = task.source
            if src.set_name.name not in ORDERED_SETS:
                self.error(
                    "E205",
                    f"unknown sequence `{src.set_name.name}`",
                    src.set_name.span,
                    suggest(src.set_name.name, ORDERED_SETS)
                    or "known sequences: " + ", ".join(ORDERED_SETS),
                )
            values = claims.args(src.args, V.TASK_PARAMS, "sequence")
            size = len(ORDERED_SETS.get(src.set_name.name, ()))
            default_range = DEFAULT_RANGE.get(src.set_name.name, size)
            claims.task_params(values, src, size, default_range)
        elif not (self.base / task.source.path).is_file():
            self.error(
                "E110",
                f"prompt file `{task.source.path}` not found",
                task.source.span,
                "prompt files (JSONL or CSV) are found relative to this file",
            )
        seen: dict[str, ast.TaskClause] = {}
        for clause in task.clauses:
            if clause.kind in seen:
                self.error("E210", f"`{clause.kind}` is given twice", clause.span)
            seen[clause.kind] = clause
            claims.task_clause(clause)

    def positions_of(self, task: ast.TaskDef | None) -> tuple[str, ...] | None:
        """Named positions of a task's prompts; None when only the file knows them."""
        if task is None or isinstance(task.source, ast.FileSource):
            return None
        members = V.TASK_DEFAULTS["members"]
        for arg in task.source.args:
            if arg.name == "members" and isinstance(arg.value, int):
                members = arg.value
        return V.position_names(min(int(members), 9999))  # type: ignore[call-overload]

    def check_position(self, name: ast.NameRef, task: ast.TaskDef | None) -> None:
        known = self.positions_of(task)
        ok = V.POSITION.fullmatch(name.name) is not None if known is None else name.name in known
        if not ok:
            listed = ", ".join(known) if known else "S1.., N1.., END"
            self.error(
                "E208",
                f"unknown position `{name.name}`",
                name.span,
                suggest(name.name, known or ("END",)) or f"positions of this task: {listed}",
            )

    # ---- models -------------------------------------------------------------------
    def expand(
        self,
        members: tuple[ast.Member, ...],
        shape: shapes.ModelShape | None,
        local: dict[str, tuple[Node, ...]],
        span: Span,
    ) -> tuple[Node, ...]:
        """Members -> nodes; names are groups (this circuit's first, then the file's)."""
        out: list[Node] = []
        for m in members:
            if isinstance(m, ast.HeadRef):
                if check_head(self, m, shape):
                    out.append(Node(m.layer, m.head))
            elif isinstance(m, ast.MlpRange):
                out.extend(mlp_nodes(self, m, shape))
            elif m.name in local:
                out.extend(local[m.name])
            elif m.name in self.mod.groups:
                out.extend(self.file_group(m.name, shape))
            else:
                self.unknown_name(m)
        return tuple(dict.fromkeys(out))

    def file_group(self, name: str, shape: shapes.ModelShape | None) -> tuple[Node, ...]:
        """A file-level group's nodes, checked against `shape` (reported at its definition)."""
        group = self.mod.groups[name]
        if name in self._resolving:
            self.error(
                "E200",
                f"group `{name}` contains itself",
                group.name.span,
                "a group may include other groups, but not in a cycle",
            )
            return ()
        self._resolving.add(name)
        try:
            return self.expand(group.members, shape, {}, group.span)
        finally:
            self._resolving.discard(name)

    def unknown_name(self, ref: ast.NameRef, extra: tuple[str, ...] = ()) -> None:
        names = [*self.local_names, *self.mod.groups, *extra]
        self.error(
            "E200",
            f"unknown name `{ref.name}`",
            ref.span,
            suggest(ref.name, names)
            or "a name here is a group defined earlier in this circuit, in this file "
            "or in an imported file; heads are written 9.1 or L9H1",
        )

    local_names: tuple[str, ...] = ()

    # ---- circuits -----------------------------------------------------------------
    def _circuit(self, c: ast.CircuitDef) -> None:
        from seqcirc.checks.body import check_body

        model = resolve_model(self, c.model)
        for other in self.mod.circuits.get(c.name.name, []):
            if model is not None and other.model.ref.name == model.ref.name:
                self.error(
                    "E210",
                    f"circuit `{c.name.name}` on `{model.ref.name}` is defined twice",
                    c.name.span,
                    "one section per model; use another name for a variant",
                )
        circuit = check_body(self, c, model)
        if circuit is None:
            self.failed.add(c.name.name)
        else:
            self.mod.circuits.setdefault(c.name.name, []).append(circuit)
            self.mod.own.append(circuit)

    def _derived(self, d: ast.DerivedDef) -> None:
        from seqcirc.checks.algebra import evaluate_derived

        if d.name.name in self.mod.circuits:
            self.error("E210", f"circuit `{d.name.name}` is defined twice", d.name.span)
            return
        circuit = evaluate_derived(self, d)
        if circuit is None:
            self.failed.add(d.name.name)
        else:
            self.mod.circuits[d.name.name] = [circuit]

    def _expect_on(self, e: ast.ExpectOn) -> None:
        from seqcirc.checks.algebra import lookup_circuit

        circuit = lookup_circuit(self, e.circuit, None)
        task = self.mod.tasks.get(e.task.name)
        if task is None:
            self.unknown_task(e.task)
        ClaimChecker(self.error).claim(e.claim)
        if circuit is not None and task is not None:
            self.mod.expect_on.append((e, circuit, task))

    def unknown_task(self, ref: ast.NameRef) -> None:
        self.error(
            "E201",
            f"unknown task `{ref.name}`",
            ref.span,
            suggest(ref.name, self.mod.tasks)
            or (
                "tasks here: " + ", ".join(self.mod.tasks)
                if self.mod.tasks
                else "define one: task months = sequence(months)"
            ),
        )


class CheckError(DiagnosticsError):
    """Diagnostics of one file; those pointing into an imported file show its lines."""

    def __init__(self, diagnostics: object, source_text: str, path: str) -> None:
        super().__init__(diagnostics, source_text)  # type: ignore[arg-type]
        self.path = path

    def render(self) -> str:
        return render_diagnostics(self.diagnostics, self.path, self.source_text or "")


def render_diagnostics(diags: tuple[Diagnostic, ...], path: str, text: str) -> str:
    out = []
    for d in diags:
        own = d.span is None or d.span.path == path
        out.append(d.render(text if own else _read_or_none(d.span.path if d.span else "")))
    return "\n\n".join(out)


def _read_or_none(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def depth(endpoint: str, architecture: str) -> float:
    """Order of computation: embed < heads of layer L < MLP L < heads of L+1 < logits.

    GPT-NeoX (Pythia) runs attention and MLP of a layer in parallel: there the MLP of
    layer L does not see that layer's heads.
    """
    if endpoint == EMBED:
        return -1
    if endpoint == LOGITS:
        return float("inf")
    node = Node.parse(endpoint)
    parallel = architecture.startswith("GPTNeoX")
    if node.head is not None:
        return 2 * node.layer
    return 2 * node.layer + (0 if parallel else 1)


def _flatten(groups: dict[str, ast.GroupDef], name: str) -> tuple[ast.Member, ...]:
    """A checked group's members with group names replaced by their members."""
    out: list[ast.Member] = []
    for m in groups[name].members:
        out.extend(_flatten(groups, m.name) if isinstance(m, ast.NameRef) else (m,))
    return tuple(out)


def _key(path: str) -> str:
    return str(Path(path).resolve()) if path != "<string>" else path


def check_program(program: ast.Program) -> Module:
    """Check a parsed program; raise DiagnosticsError with every problem found."""
    return Checker(program).run_or_raise()


def check_text(text: str, path: str = "<string>") -> Module:
    return check_program(parse(text, path))


def check_file(path: str | Path) -> Module:
    """Read, parse and check a .circ file (InputError if it cannot be read)."""
    from seqcirc.errors import InputError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read {path}: {getattr(err, 'strerror', None) or err}",
            code="E110",
            hint="give the path of a .circ file",
        ) from None
    return check_text(text, str(path))
