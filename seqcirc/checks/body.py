"""Checks of one `circuit NAME on MODEL { ... }` section: its task, ablation set-up,
groups, components, edges and claims, resolved to nodes and edges of the model."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqcirc.checks.claims import ClaimChecker
from seqcirc.checks.components import check_head, mlp_nodes
from seqcirc.checks.context import CheckContext
from seqcirc.checks.edges import check_edges, edge_order
from seqcirc.checks.generation import check_generation_ablation
from seqcirc.checks.resolved import Circuit, ResolvedModel
from seqcirc.checks.roles import check_role
from seqcirc.checks.scope import (
    check_group_name,
    check_position,
    expand,
    file_group,
    unknown_name,
    unknown_task,
)
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.language.names import HEAD_SPELLINGS
from seqcirc.models import shapes
from seqcirc.plan import EMBED, LOGITS, Edge, Node

_COMPONENTS = (ast.GroupDef, ast.UseStmt, ast.MlpStmt, ast.HeadsStmt, ast.EdgeStmt)


@dataclass
class _Section:
    """What one section's statements add up to, in the order they come."""

    c: ast.CircuitDef
    shape: shapes.ModelShape | None
    task: ast.TaskDef | None
    claims: ClaimChecker
    local: dict[str, tuple[Node, ...]] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    groups: list[tuple[str, tuple[Node, ...]]] = field(default_factory=list)
    edge_stmts: list[ast.EdgeStmt] = field(default_factory=list)
    ablation: ast.AblateStmt | None = None
    kept: list[ast.RoleStmt | ast.ExpectStmt] = field(default_factory=list)


def check_body(ck: CheckContext, c: ast.CircuitDef, model: ResolvedModel | None) -> Circuit | None:
    sec = _Section(c, model.shape if model else None, _task(ck, c), ClaimChecker(ck.error))
    ck.local_names = ()
    for stmt in c.body:
        if isinstance(stmt, ast.RoleStmt | ast.ExpectStmt):
            _claim(ck, sec, stmt)
        else:
            _component(ck, sec, stmt)
    edges = check_edges(ck, sec.edge_stmts, sec.shape, sec.local)
    all_nodes = set(sec.nodes)
    if _granularity(sec.ablation) == "edge":
        for e in edges:
            for end in (e.sender, e.receiver):
                if end not in (EMBED, LOGITS):
                    all_nodes.add(Node.parse(end))
    if not any(isinstance(s, _COMPONENTS) for s in c.body):
        ck.error(
            "E240",
            f"circuit `{c.name.name}` is empty",
            c.name.span,
            "list its heads and MLPs: `group successor = 9.1`, `mlp 0..4`",
        )
    ck.local_names = ()
    if model is None:
        return None
    return _circuit(ck, sec, model, frozenset(all_nodes), edges)


def _circuit(
    ck: CheckContext,
    sec: _Section,
    model: ResolvedModel,
    nodes: frozenset[Node],
    edges: list[Edge],
) -> Circuit:
    return Circuit(
        name=sec.c.name.name,
        model=model,
        nodes=nodes,
        groups=tuple(sec.groups),
        edges=tuple(sorted(set(edges), key=edge_order)),
        task=sec.task,
        ablation=sec.ablation,
        claims=tuple(sec.kept),
        path=ck.path,
        span=sec.c.span,
    )


def _component(ck: CheckContext, sec: _Section, stmt: ast.Stmt) -> None:
    """A task, ablation, group, use, mlp, heads or edge statement."""
    if isinstance(stmt, ast.AblateStmt):
        if sec.ablation is not None:
            ck.error("E210", "`ablate` is given twice", stmt.span, "keep one `ablate` line")
        sec.ablation = stmt
        _ablation(ck, stmt, sec.task)
    elif isinstance(stmt, ast.GroupDef):
        check_group_name(ck, stmt.name)
        _add_group(ck, sec, stmt.name, expand(ck, stmt.members, sec.shape, sec.local, stmt.span))
    elif isinstance(stmt, ast.UseStmt):
        for ref in stmt.names:
            if ref.name in ck.groups:
                _add_group(ck, sec, ref, file_group(ck, ref.name, sec.shape))
            else:
                unknown_name(ck, ref)
    elif isinstance(stmt, ast.MlpStmt):
        for rng in stmt.ranges:
            sec.nodes.extend(mlp_nodes(ck, rng, sec.shape))
    elif isinstance(stmt, ast.HeadsStmt):
        sec.nodes.extend(expand(ck, stmt.members, sec.shape, sec.local, stmt.span))
    elif isinstance(stmt, ast.EdgeStmt):
        sec.edge_stmts.append(stmt)


def _add_group(
    ck: CheckContext, sec: _Section, name: ast.NameRef, members: tuple[Node, ...]
) -> None:
    if name.name in sec.local:
        ck.error(
            "E210",
            f"group `{name.name}` is defined twice in circuit `{sec.c.name.name}`",
            name.span,
            "merge the two groups or rename one",
        )
    sec.local[name.name] = members
    ck.local_names = tuple(sec.local)
    sec.groups.append((name.name, members))
    sec.nodes.extend(members)


def _claim(ck: CheckContext, sec: _Section, stmt: ast.RoleStmt | ast.ExpectStmt) -> None:
    if isinstance(stmt, ast.ExpectStmt):
        sec.claims.claim(stmt.claim, sec.shape)
        sec.kept.append(stmt)
        return
    if not isinstance(stmt.head, ast.HeadRef):
        what = stmt.head.name if isinstance(stmt.head, ast.NameRef) else f"mlp{stmt.head.lo}"
        ck.error(
            "E200",
            f"`{what}` is not a head",
            stmt.head.span,
            f"role claims are about one head, written {HEAD_SPELLINGS}",
        )
    else:
        check_head(ck, stmt.head, sec.shape)
    task = sec.task
    check_role(sec.claims, stmt, lambda ref: check_position(ck, ref, task), sec.shape, task)
    sec.kept.append(stmt)


def _task(ck: CheckContext, c: ast.CircuitDef) -> ast.TaskDef | None:
    refs = [s for s in c.body if isinstance(s, ast.TaskRef)]
    for extra in refs[1:]:
        ck.error("E210", "`task` is given twice", extra.span, "a circuit section has one task")
    if refs:
        task = ck.tasks.get(refs[0].name.name)
        if task is None:
            unknown_task(ck, refs[0].name)
        return task
    if c.name.name in ck.tasks:
        return ck.tasks[c.name.name]
    if len(ck.tasks) == 1:
        return next(iter(ck.tasks.values()))
    ck.error(
        "E201",
        f"circuit `{c.name.name}` names no task",
        c.name.span,
        "add `task months` (the task's name) inside the circuit, or name it after its task",
    )
    return None


def _granularity(ablation: ast.AblateStmt | None) -> str:
    if ablation is None:
        return "node"
    for opt in ablation.options:
        if opt.kind == "granularity":
            return V.GRANULARITIES[opt.value]
    return "node"


def _ablation(ck: CheckContext, stmt: ast.AblateStmt, task: ast.TaskDef | None) -> None:
    seen: set[str] = set()
    value = "mean"
    for opt in stmt.options:
        if opt.kind in seen:
            ck.error(
                "E210",
                f"the {opt.kind.replace('_', ' ')} of `ablate` is given twice",
                opt.span,
                None,
            )
        seen.add(opt.kind)
        if opt.kind == "value":
            value = opt.value
            if opt.arg is not None and (opt.value != "mean" or opt.arg != "corrupted"):
                ck.error(
                    "E251",
                    f"`{opt.value}({opt.arg})` is not an ablation value",
                    opt.span,
                    "write `mean(corrupted)`, `mean`, `resample` or `zero`",
                )
        elif opt.kind == "direction" and opt.value not in V.DIRECTIONS:
            ck.error(
                "E251",
                f"unknown direction `{opt.value}`",
                opt.span,
                "direction may be `complement` (clean run, complement ablated) or "
                "`patch` (corrupted run, circuit patched in)",
            )
        elif opt.kind == "positions":
            for ref in opt.positions:
                check_position(ck, ref, task)
    for kind, words in (("per_position", "per position"), ("pooled", "pooled")):
        if kind in seen and value != "mean":
            span = next(o.span for o in stmt.options if o.kind == kind)
            ck.error(
                "E251",
                f"`{words}` applies only to `mean`",
                span,
                "resample and zero ablations need no per-position statistics",
            )
    check_generation_ablation(ck.error, stmt, task)
    if {"per_position", "pooled"} <= seen:
        span = next(o.span for o in stmt.options if o.kind == "pooled")
        ck.error(
            "E251",
            "`pooled` and `per position` contradict each other",
            span,
            "a mean is per position (the default) or pooled over all positions, not both",
        )
