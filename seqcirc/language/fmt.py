"""The canonical layout of a .circ file (`seqcirc fmt`). Comments are kept: a comment
on its own line stays before the statement that follows it, a trailing comment stays
at the end of its statement's line."""

from __future__ import annotations

from seqcirc.language import ast, parse

INDENT = "  "


def _num(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) + ".0"
    return repr(value)


def _threshold(t: ast.Threshold) -> str:
    if t.percent:
        text = _num(t.value)
        return (text[:-2] if text.endswith(".0") else text) + "%"
    return _num(t.value)


def _arg(a: ast.Arg) -> str:
    if a.value is True and not a.quoted:
        return a.name
    if a.quoted:
        return f'{a.name}="{a.value}"'
    if isinstance(a.value, int | float) and not isinstance(a.value, bool):
        return f"{a.name}={_num(a.value)}"
    return f"{a.name}={a.value}"


def _args(args: tuple[ast.Arg, ...], force: bool = False) -> str:
    if not args and not force:
        return ""
    return "(" + ", ".join(_arg(a) for a in args) + ")"


def _member(m: ast.Member) -> str:
    if isinstance(m, ast.HeadRef):
        return f"{m.layer}.{m.head}"
    if isinstance(m, ast.MlpRange):
        return "mlp " + _range(m)
    return m.name


def _endpoint(m: ast.Member) -> str:
    return _member(m)


def _range(r: ast.MlpRange) -> str:
    return str(r.lo) if r.hi is None else f"{r.lo}..{r.hi}"


def _model(m: ast.ModelName) -> str:
    return f'"{m.name}"' if m.quoted else m.name


def _claim(c: ast.ClaimExpr) -> str:
    head = c.name.name + _args(c.args)
    if c.measure is not None and c.target is not None:
        head += f" {c.measure.name}({c.target.name})"
    tail = f"{c.op} {_threshold(c.threshold)}"
    if c.form == "value":
        return f"{head} {tail}"
    stat = c.stat.name if c.stat else "p"
    prefix = "beats " if c.form == "beats" else ""
    return f"{prefix}{head} at {stat} {tail}"


_PREC = {"&": 2, "|": 1, "-": 1}


def _set(e: ast.SetExpr, parent: int = 0, right: bool = False) -> str:
    """The expression with the parentheses its precedence needs. A loop down the left
    operands (a chain `a & b & c ...` may be thousands long), recursion only into right
    ones, whose nesting the parser bounds."""
    opens, tails = 0, []
    while isinstance(e, ast.SetOp):
        prec = _PREC[e.op]
        paren = prec < parent or (right and prec == parent)
        opens += paren
        tails.append(f" {e.op} {_set(e.right, prec, right=True)}" + (")" if paren else ""))
        e, parent, right = e.left, prec, False
    return "(" * opens + e.name.name + "".join(reversed(tails))


def _ablate(s: ast.AblateStmt) -> str:
    parts = []
    for o in s.options:
        if o.kind == "value":
            parts.append(o.value + (f"({o.arg})" if o.arg else ""))
        elif o.kind == "positions":
            parts.append("at " + ", ".join(p.name for p in o.positions))
        elif o.kind == "direction":
            parts.append("direction " + o.value)
        else:
            parts.append(o.value)
    return "ablate " + " ".join(parts)


def _stmt(s: ast.Stmt) -> str:
    if isinstance(s, ast.TaskRef):
        return f"task {s.name.name}"
    if isinstance(s, ast.AblateStmt):
        return _ablate(s)
    if isinstance(s, ast.GroupDef):
        return f"group {s.name.name} = " + ", ".join(_member(m) for m in s.members)
    if isinstance(s, ast.UseStmt):
        return "use " + ", ".join(n.name for n in s.names)
    if isinstance(s, ast.MlpStmt):
        return "mlp " + ", ".join(_range(r) for r in s.ranges)
    if isinstance(s, ast.HeadsStmt):
        return "heads " + ", ".join(_member(m) for m in s.members)
    if isinstance(s, ast.EdgeStmt):
        inputs = " (" + ", ".join(i.name for i in s.inputs) + ")" if s.inputs else ""
        return f"edge {_endpoint(s.sender)} -> {_endpoint(s.receiver)}{inputs}"
    if isinstance(s, ast.RoleStmt):
        head = _member(s.head)
        return f"role {head} {s.role.name}{_args(s.args)} {s.op} {_threshold(s.threshold)}"
    return "expect " + _claim(s.claim)


class _Writer:
    def __init__(self, program: ast.Program) -> None:
        lines = program.text.splitlines()
        self.lines = lines
        self.own: list[tuple[int, str]] = []
        self.trailing: dict[int, str] = {}
        for line_no, text in program.comments:
            source = lines[line_no - 1] if line_no <= len(lines) else ""
            if source.strip().startswith("#"):
                self.own.append((line_no, text))
            else:
                self.trailing[line_no] = text
        self.out: list[str] = []

    def blank_before(self, line: int) -> None:
        """Keep one blank line where the source had one (never two, never after `{`)."""
        blank = 2 <= line <= len(self.lines) + 1 and not self.lines[line - 2].strip()
        if blank and self.out and self.out[-1] != "" and not self.out[-1].endswith("{"):
            self.out.append("")

    def comments_before(self, line: int, indent: str) -> None:
        while self.own and self.own[0][0] < line:
            self.blank_before(self.own[0][0])
            self.out.append(indent + self.own.pop(0)[1])

    def emit(self, text: str, span: ast.Span, indent: str = "") -> None:
        self.comments_before(span.line, indent)
        self.blank_before(span.line)
        end = span.end_line or span.line
        notes = [self.trailing.pop(n) for n in range(span.line, end + 1) if n in self.trailing]
        self.out.append(indent + text + ("  " + " ".join(notes) if notes else ""))


def format_program(program: ast.Program) -> str:
    w = _Writer(program)
    prev: type | None = None
    for item in program.items:
        # a blank line between items, except within runs of seeds/imports/groups
        runs = (ast.ImportStmt, ast.GroupDef, ast.ExpectOn)
        if w.out and w.out[-1] != "" and not (type(item) is prev and prev in runs):
            w.out.append("")
        prev = type(item)
        if isinstance(item, ast.SeedStmt):
            w.emit(f"seed {item.value}", item.span)
        elif isinstance(item, ast.ImportStmt):
            w.emit(f'import "{item.path}"', item.span)
        elif isinstance(item, ast.TaskDef):
            _task(w, item)
        elif isinstance(item, ast.GroupDef):
            w.emit(_stmt(item), item.span)
        elif isinstance(item, ast.CircuitDef):
            header = f"circuit {item.name.name} on {_model(item.model)} {{"
            w.emit(header, ast.Span(item.span.path, item.span.line, 1))
            for s in item.body:
                w.emit(_stmt(s), s.span, INDENT)
            w.comments_before(item.span.end_line or item.span.line, INDENT)
            if w.out[-1] == "":
                w.out.pop()
            close = w.trailing.pop(item.span.end_line or -1, None)
            w.out.append("}" + (f"  {close}" if close else ""))
        elif isinstance(item, ast.DerivedDef):
            on = f" on {_model(item.model)}" if item.model else ""
            w.emit(f"circuit {item.name.name}{on} = {_set(item.expr)}", item.span)
        else:
            text = f"expect {item.circuit.name} on {item.task.name}: {_claim(item.claim)}"
            w.emit(text, item.span)
    w.comments_before(10**9, "")
    for note in w.trailing.values():  # trailing comments whose statement moved lines
        w.out.append(note)
    return "\n".join(w.out).rstrip() + "\n" if w.out else ""


def _task(w: _Writer, t: ast.TaskDef) -> None:
    if isinstance(t.source, ast.FileSource):
        source = f'file("{t.source.path}")'
    else:
        args = [t.source.set_name.name, *(_arg(a) for a in t.source.args)]
        source = "sequence(" + ", ".join(args) + ")"
    w.emit(f"task {t.name.name} = {source}", t.source.span)
    for c in t.clauses:
        w.emit(f"{c.kind} {c.name.name}{_args(c.args)}", c.span, INDENT)


def format_text(text: str, path: str = "<string>") -> str:
    """Parse and re-print `text` in the canonical layout (InputError on bad syntax)."""
    return format_program(parse(text, path))


__all__ = ["format_program", "format_text"]
