"""Checked .circ module -> Plan. Pure: no files read, no models, no randomness.

Only circuit sections defined in the file itself become CircuitPlans (imported ones are
evaluated where they are defined), plus one per `expect CIRCUIT on TASK` pair.
`require_circuits` and `require_fit` are what evaluating a plan asks of it beyond the
checks: a circuit to run, and role sizes the loaded model can meet.
"""

from __future__ import annotations

from pathlib import Path

from seqcirc.checks import Module, check_file, check_text
from seqcirc.checks.claims import claim_meaning, role_meaning
from seqcirc.checks.resolved import Circuit
from seqcirc.errors import InputError
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, Plan, TaskSpec, params
from seqcirc.source import Span


def task_spec(task: ast.TaskDef, task_dir: str, file_dir: str) -> TaskSpec:
    """A task as the plan records it. A prompt file's path is made relative to the
    directory of the .circ file the plan is compiled from (Plan.source)."""
    clauses = {c.kind: c for c in task.clauses}
    corrupt = clauses.get("corrupt")
    metric = clauses.get("metric")
    metric_args = {a.name: a.value for a in metric.args} if metric else {}
    common = {
        "name": task.name.name,
        "corruption": corrupt.name.name if corrupt else "random_members",
        "corruption_params": params(**{a.name: a.value for a in corrupt.args}) if corrupt else (),
        "metric": metric.name.name if metric else "logit_diff",
        "correct": str(metric_args.get("correct", "next")),
        "incorrect": str(metric_args.get("incorrect", "last")),
        "filter_correct": "filter" in clauses,
        "bos": clauses["bos"].name.name if "bos" in clauses else "auto",
        "metric_params": params(**{k: v for k, v in metric_args.items() if k in _GENERATION}),
    }
    if isinstance(task.source, ast.FileSource):
        file = Path(task_dir, task.source.path)
        rel = Path(_relpath(str(file), file_dir)).as_posix()
        return TaskSpec(file=rel, **common)  # type: ignore[arg-type]
    values = dict(V.TASK_DEFAULTS)
    values.update({a.name: a.value for a in task.source.args})
    return TaskSpec(generator=task.source.set_name.name, params=params(**values), **common)  # type: ignore[arg-type]


_GENERATION = ("generate", "max_new_tokens", "match")


def _relpath(path: str, start: str) -> str:
    import os

    return os.path.relpath(path, start or ".")


def ablation_spec(stmt: ast.AblateStmt | None) -> AblationSpec:
    if stmt is None:
        return AblationSpec()
    fields: dict[str, object] = {}
    for opt in stmt.options:
        if opt.kind == "granularity":
            fields["granularity"] = V.GRANULARITIES[opt.value]
        elif opt.kind == "value":
            fields["value"] = opt.value
        elif opt.kind == "positions":
            fields["positions"] = tuple(p.name for p in opt.positions)
        elif opt.kind == "direction":
            fields["direction"] = V.DIRECTIONS[opt.value]
        elif opt.kind == "pooled":
            fields["per_position"] = False
    return AblationSpec(**fields)  # type: ignore[arg-type]


def _claim(circuit: str, node: ast.RoleStmt | ast.ClaimExpr, text: str, span: Span) -> Claim:
    if isinstance(node, ast.RoleStmt):
        kind, values, bound = "role", role_meaning(node), "point"
    else:
        kind, values, bound = claim_meaning(node)
    return Claim(
        id=f"{circuit}:{span.line}:{kind}",
        kind=kind,
        op=node.op,  # type: ignore[arg-type]
        threshold=node.threshold.fraction,
        params=params(**values),
        bound=bound,  # type: ignore[arg-type]
        path=span.path,
        line=span.line,
        col=span.col,
        text=text,
    )


def _source_text(text: str, span: Span) -> str:
    """The claim as written (its first line), for reports."""
    lines = text.splitlines()
    if not 1 <= span.line <= len(lines):
        return ""
    line = lines[span.line - 1]
    end = span.end_col if span.end_line == span.line and span.end_col else len(line)
    return line[span.col - 1 : end].strip()


def _circuit_plan(
    c: Circuit, name: str, task: TaskSpec, claims: tuple[Claim, ...], from_: tuple[str, ...]
) -> CircuitPlan:
    ablation = ablation_spec(c.ablation)
    edge_circuit = ablation.is_edge
    return CircuitPlan(
        name=name,
        model=c.model.ref,
        task=task,
        ablation=ablation,
        nodes=tuple(sorted(c.nodes)),
        edges=c.edges if edge_circuit else (),
        groups=tuple((g, tuple(sorted(nodes))) for g, nodes in c.groups),
        claims=claims,
        line=c.span.line,
        highlighted_edges=() if edge_circuit else c.edges,
        derived_from=from_,
    )


def compile_module(mod: Module) -> Plan:
    text = mod.program.text
    file_dir = str(Path(mod.path).parent) if mod.path != "<string>" else ""
    out: list[CircuitPlan] = []
    for c in mod.own:
        if c.path != mod.path or c.task is None:
            continue
        claims = tuple(
            _claim(
                c.name,
                s if isinstance(s, ast.RoleStmt) else s.claim,
                _source_text(text, s.span),
                s.span,
            )
            for s in c.claims
        )
        task = task_spec(c.task, mod.task_dirs.get(c.task.name.name, file_dir), file_dir)
        out.append(_circuit_plan(c, c.name, task, claims, ()))
    grouped: dict[tuple[str, str], list] = {}
    for e, circuit, task_def in mod.expect_on:
        grouped.setdefault((circuit.name, task_def.name.name), []).append((e, circuit, task_def))
    for (cname, tname), entries in grouped.items():
        circuit, task_def = entries[0][1], entries[0][2]
        claims = tuple(
            _claim(f"{cname} on {tname}", e.claim, _source_text(text, e.span), e.span)
            for e, _, _ in entries
        )
        task = task_spec(task_def, mod.task_dirs.get(tname, file_dir), file_dir)
        plan = _circuit_plan(circuit, f"{cname} on {tname}", task, claims, _operands(mod, cname))
        out.append(plan)
    return Plan(source=mod.path, circuits=tuple(out), seed=mod.seed)


def _operands(mod: Module, name: str) -> tuple[str, ...]:
    for d in mod.program.of_type(ast.DerivedDef):
        if d.name.name == name:
            return tuple(dict.fromkeys(_refs(d.expr)))
    return ()


def _refs(expr: ast.SetExpr) -> list[str]:
    """Operand names left to right: a loop down the left operands (a chain may be
    thousands long), recursion into right ones (their nesting is bounded, E103)."""
    rights: list[ast.SetExpr] = []
    while isinstance(expr, ast.SetOp):
        rights.append(expr.right)
        expr = expr.left
    return [expr.name.name, *(name for r in reversed(rights) for name in _refs(r))]


def require_circuits(plan: Plan) -> Plan:
    """A plan to evaluate states a circuit. (`seqcirc check` and `plan` accept a file of
    tasks and groups alone, or one whose derived circuits no `expect` uses.)"""
    if not plan.circuits:
        raise InputError(
            f"{plan.source} states no circuit to test",
            code="E404",
            hint="add `circuit NAME on MODEL { ... }` with its claims, or "
            "`expect CIRCUIT on TASK: ...` for an imported or derived circuit",
        )
    return plan


def require_fit(plan: Plan, d_vocab: int, n_ctx: int, n_layers: int | None = None) -> None:
    """Role sizes the loaded model cannot meet, as input errors (exit 2) before any claim
    runs: successor/copy `top` beyond the vocabulary (E806), pattern roles' sequences
    beyond the context (E807), a lens layer beyond the model's layers (E221, when
    `n_layers` is given). `seqcirc check` finds these wherever it knows the model's
    shape; this covers `--model` and models whose shape is known only once loaded."""
    for circuit in plan.circuits:
        for claim in circuit.claims:
            p = claim.params_dict()
            span = Span(claim.path, claim.line, claim.col) if claim.path and claim.line else None
            if claim.kind == "lens" and n_layers is not None:
                _require_layer(p.get("layer"), n_layers, circuit.model.name, span)
            if claim.kind != "role":
                continue
            top = p.get("top")
            if isinstance(top, int) and not 1 <= top <= d_vocab:
                raise InputError(
                    f"top={top} is beyond the {d_vocab:,} tokens of the vocabulary of "
                    f"{circuit.model.name}",
                    code="E806",
                    span=span,
                    hint=f"give top=1..{d_vocab}",
                )
            half = p.get("half_len", V.PATTERN_DEFAULTS["half_len"])
            if p.get("role") in ("previous_token", "duplicate", "induction") and (
                isinstance(half, int) and 2 * half + 1 > n_ctx
            ):
                raise InputError(
                    f"repeated sequences of 2 x {half} tokens (and a BOS) do not fit the "
                    f"context of {circuit.model.name}, {n_ctx} tokens",
                    code="E807",
                    span=span,
                    hint=f"give half_len=2..{(n_ctx - 1) // 2}",
                )


def _require_layer(layer: object, n_layers: int, model: str, span: Span | None) -> None:
    if isinstance(layer, int) and not 0 <= layer < n_layers:
        raise InputError(
            f"lens layer {layer} is out of range: {model} has {n_layers} layers",
            code="E221",
            span=span,
            hint=f"give layer=0..{n_layers - 1}",
        )


def compile_text(text: str, path: str = "<string>") -> Plan:
    """Parse, check and compile .circ source (DiagnosticsError/InputError if it is wrong)."""
    return compile_module(check_text(text, path))


def compile_file(path: str | Path) -> Plan:
    return compile_module(check_file(path))


__all__ = [
    "ablation_spec",
    "compile_file",
    "compile_module",
    "compile_text",
    "require_circuits",
    "require_fit",
    "task_spec",
]
