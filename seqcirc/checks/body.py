"""Checks of one `circuit NAME on MODEL { ... }` section: its task, ablation set-up,
groups, components, edges and claims, resolved to nodes and edges of the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqcirc.checks.claims import ClaimChecker
from seqcirc.checks.components import check_head, mlp_nodes
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.plan import EMBED, LOGITS, Edge, Node

if TYPE_CHECKING:
    from seqcirc.checks.checker import Checker, Circuit
    from seqcirc.checks.components import ResolvedModel


def check_body(ck: Checker, c: ast.CircuitDef, model: ResolvedModel | None) -> Circuit | None:
    from seqcirc.checks.checker import Circuit

    shape = model.shape if model else None
    task = _task(ck, c)
    claims = ClaimChecker(ck.error)
    local: dict[str, tuple[Node, ...]] = {}
    nodes: list[Node] = []
    groups: list[tuple[str, tuple[Node, ...]]] = []
    edge_stmts: list[ast.EdgeStmt] = []
    ablation: ast.AblateStmt | None = None
    kept: list[ast.RoleStmt | ast.ExpectStmt] = []
    ck.local_names = ()

    def add_group(name: ast.NameRef, members: tuple[Node, ...]) -> None:
        if name.name in local:
            ck.error(
                "E210",
                f"group `{name.name}` is defined twice in circuit `{c.name.name}`",
                name.span,
                "merge the two groups or rename one",
            )
        local[name.name] = members
        ck.local_names = tuple(local)
        groups.append((name.name, members))
        nodes.extend(members)

    for stmt in c.body:
        if isinstance(stmt, ast.TaskRef):
            continue
        if isinstance(stmt, ast.AblateStmt):
            if ablation is not None:
                ck.error("E210", "`ablate` is given twice", stmt.span, "keep one `ablate` line")
            ablation = stmt
            _ablation(ck, stmt, task)
        elif isinstance(stmt, ast.GroupDef):
            add_group(stmt.name, ck.expand(stmt.members, shape, local, stmt.span))
        elif isinstance(stmt, ast.UseStmt):
            for ref in stmt.names:
                if ref.name in ck.mod.groups:
                    add_group(ref, ck.file_group(ref.name, shape))
                else:
                    ck.unknown_name(ref)
        elif isinstance(stmt, ast.MlpStmt):
            for rng in stmt.ranges:
                nodes.extend(mlp_nodes(ck, rng, shape))
        elif isinstance(stmt, ast.HeadsStmt):
            nodes.extend(ck.expand(stmt.members, shape, local, stmt.span))
        elif isinstance(stmt, ast.EdgeStmt):
            edge_stmts.append(stmt)
        elif isinstance(stmt, ast.RoleStmt):
            if isinstance(stmt.head, ast.NameRef):
                ck.error(
                    "E200",
                    f"`{stmt.head.name}` is not a head",
                    stmt.head.span,
                    "role claims are about one head, written 9.1 or L9H1",
                )
            else:
                check_head(ck, stmt.head, shape)
            claims.role(stmt, lambda ref: ck.check_position(ref, task))
            kept.append(stmt)
        elif isinstance(stmt, ast.ExpectStmt):
            claims.claim(stmt.claim)
            kept.append(stmt)
    edges = _edges(ck, edge_stmts, shape, local)
    granularity = _granularity(ablation)
    all_nodes = set(nodes)
    if granularity == "edge":
        for e in edges:
            for end in (e.sender, e.receiver):
                if end not in (EMBED, LOGITS):
                    all_nodes.add(Node.parse(end))
    components = (ast.GroupDef, ast.UseStmt, ast.MlpStmt, ast.HeadsStmt, ast.EdgeStmt)
    if not any(isinstance(s, components) for s in c.body):
        ck.error(
            "E240",
            f"circuit `{c.name.name}` is empty",
            c.name.span,
            "list its heads and MLPs: `group successor = 9.1`, `mlp 0..4`",
        )
    ck.local_names = ()
    if model is None:
        return None
    return Circuit(
        name=c.name.name,
        model=model,
        nodes=frozenset(all_nodes),
        groups=tuple(groups),
        edges=tuple(sorted(set(edges), key=_edge_order)),
        task=task,
        ablation=ablation,
        claims=tuple(kept),
        path=ck.program.path,
        span=c.span,
    )


def _task(ck: Checker, c: ast.CircuitDef) -> ast.TaskDef | None:
    refs = [s for s in c.body if isinstance(s, ast.TaskRef)]
    for extra in refs[1:]:
        ck.error("E210", "`task` is given twice", extra.span, "a circuit section has one task")
    if refs:
        task = ck.mod.tasks.get(refs[0].name.name)
        if task is None:
            ck.unknown_task(refs[0].name)
        return task
    if c.name.name in ck.mod.tasks:
        return ck.mod.tasks[c.name.name]
    if len(ck.mod.tasks) == 1:
        return next(iter(ck.mod.tasks.values()))
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


def _ablation(ck: Checker, stmt: ast.AblateStmt, task: ast.TaskDef | None) -> None:
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
                ck.check_position(ref, task)
    for kind, words in (("per_position", "per position"), ("pooled", "pooled")):
        if kind in seen and value != "mean":
            span = next(o.span for o in stmt.options if o.kind == kind)
            ck.error(
                "E251",
                f"`{words}` applies only to `mean`",
                span,
                "resample and zero ablations need no per-position statistics",
            )
    if {"per_position", "pooled"} <= seen:
        span = next(o.span for o in stmt.options if o.kind == "pooled")
        ck.error(
            "E251",
            "`pooled` and `per position` contradict each other",
            span,
            "a mean is per position (the default) or pooled over all positions, not both",
        )


def _endpoints(ck: Checker, m: ast.Member, shape: object, local: dict, role: str) -> list[str]:
    if isinstance(m, ast.NameRef) and m.name == (EMBED if role == "sender" else LOGITS):
        return [m.name]
    if isinstance(m, ast.NameRef) and m.name in (EMBED, LOGITS):
        ck.error(
            "E230",
            f"`{m.name}` cannot be the {role} of an edge",
            m.span,
            "edges run from `embed` and towards `logits`",
        )
        return []
    return [str(n) for n in ck.expand((m,), shape, local, m.span)]  # type: ignore[arg-type]


def _edges(ck: Checker, stmts: list[ast.EdgeStmt], shape: object, local: dict) -> list[Edge]:
    from seqcirc.checks.checker import depth

    arch = getattr(shape, "architecture", "")
    out: list[Edge] = []
    for stmt in stmts:
        senders = _endpoints(ck, stmt.sender, shape, local, "sender")
        receivers = _endpoints(ck, stmt.receiver, shape, local, "receiver")
        names = [i.name for i in stmt.inputs]
        for i in stmt.inputs:
            if i.name not in V.HEAD_INPUTS:
                ck.error(
                    "E231",
                    f"unknown receiving input `{i.name}`",
                    i.span,
                    "a head receives through q, k or v",
                )
        if names and any(not _is_head(r) for r in receivers):
            ck.error(
                "E231",
                "q, k, v apply only when every receiver is a head",
                stmt.span,
                "MLPs and logits have one input; split the edge",
            )
            continue
        backwards = False
        for s in senders:
            for r in receivers:
                if depth(s, arch) >= depth(r, arch):
                    backwards = True
                    continue
                for inp in _inputs(r, names):
                    out.append(Edge(s, r, inp))  # type: ignore[arg-type]
        if backwards:
            ck.error(
                "E230",
                "edge goes backwards in depth",
                stmt.span,
                "a sender must come before its receiver: heads of layer L feed MLP L "
                "and later layers",
            )
    return out


_INPUT_ORDER = ("q", "k", "v", "mlp", "resid")


def _endpoint_order(endpoint: str) -> tuple[float, bool, int]:
    if endpoint == EMBED:
        return (-1, False, 0)
    if endpoint == LOGITS:
        return (float("inf"), False, 0)
    return Node.parse(endpoint).sort_key


def _edge_order(e: Edge) -> tuple:
    """Edges in computation order: by sender, then receiver, then q, k, v."""
    return (_endpoint_order(e.sender), _endpoint_order(e.receiver), _INPUT_ORDER.index(e.input))


def _is_head(endpoint: str) -> bool:
    return endpoint not in (EMBED, LOGITS) and Node.parse(endpoint).head is not None


def _inputs(receiver: str, names: list[str]) -> list[str]:
    if receiver == LOGITS:
        return ["resid"]
    if not _is_head(receiver):
        return ["mlp"]
    return [n for n in V.HEAD_INPUTS if not names or n in names]
