"""Names inside a file: groups expanded to nodes (this circuit's groups first, then the
file's), and the task and position names a section or claim refers to."""

from __future__ import annotations

from seqcirc.checks.components import check_head, mlp_nodes
from seqcirc.checks.context import CheckContext
from seqcirc.checks.diagnostics import suggest
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.language.names import HEAD_SPELLINGS, MLP_SPELLINGS, canonical, parse_component
from seqcirc.models import shapes
from seqcirc.plan import Node
from seqcirc.source import Span


def expand(
    ck: CheckContext,
    members: tuple[ast.Member, ...],
    shape: shapes.ModelShape | None,
    local: dict[str, tuple[Node, ...]],
    span: Span,
) -> tuple[Node, ...]:
    """Members -> nodes; names are groups (this circuit's first, then the file's)."""
    out: list[Node] = []
    for m in members:
        if isinstance(m, ast.HeadRef):
            if check_head(ck, m, shape):
                out.append(Node(m.layer, m.head))
        elif isinstance(m, ast.MlpRange):
            out.extend(mlp_nodes(ck, m, shape))
        elif m.name in local:
            out.extend(local[m.name])
        elif m.name in ck.groups:
            out.extend(file_group(ck, m.name, shape))
        else:
            unknown_name(ck, m)
    return tuple(dict.fromkeys(out))


def file_group(ck: CheckContext, name: str, shape: shapes.ModelShape | None) -> tuple[Node, ...]:
    """A file-level group's nodes, checked against `shape` (reported at its definition)."""
    return expand(ck, flat_members(ck, name), shape, {}, ck.groups[name].span)


def flat_members(ck: CheckContext, name: str) -> tuple[ast.Member, ...]:
    """A file-level group's heads and MLP ranges, the groups it names replaced by theirs.

    Worked out once per group, when the checker reaches its definition (a group names
    only groups defined before it, so this goes one level deep), then looked up: a chain
    of thousands of groups never recurses, and a group named twice in the next is not
    expanded twice at every level."""
    if name in ck.flat:
        return ck.flat[name]
    group = ck.groups[name]
    if name in ck.resolving:
        ck.error(
            "E200",
            f"group `{name}` contains itself",
            group.name.span,
            "a group may include other groups, but not in a cycle",
        )
        return ()
    ck.resolving.add(name)
    try:
        out: list[ast.Member] = []
        for m in group.members:
            if not isinstance(m, ast.NameRef):
                out.append(m)
            elif m.name in ck.groups:
                out.extend(flat_members(ck, m.name))
            else:
                unknown_name(ck, m)
    finally:
        ck.resolving.discard(name)
    ck.flat[name] = tuple(dict.fromkeys(out))
    return ck.flat[name]


def unknown_name(ck: CheckContext, ref: ast.NameRef, extra: tuple[str, ...] = ()) -> None:
    names = [*ck.local_names, *ck.groups, *extra]
    ck.error(
        "E200",
        f"unknown name `{ref.name}`",
        ref.span,
        suggest(ref.name, names)
        or "a name here is a group defined earlier in this circuit, in this file "
        f"or in an imported file; heads are written {HEAD_SPELLINGS}, MLPs {MLP_SPELLINGS}",
    )


def unknown_task(ck: CheckContext, ref: ast.NameRef) -> None:
    ck.error(
        "E201",
        f"unknown task `{ref.name}`",
        ref.span,
        suggest(ref.name, ck.tasks)
        or (
            "tasks here: " + ", ".join(ck.tasks)
            if ck.tasks
            else "define one: task months = sequence(months)"
        ),
    )


def positions_of(task: ast.TaskDef | None) -> tuple[str, ...] | None:
    """Named positions of a task's prompts; None when only the file knows them."""
    if task is None or isinstance(task.source, ast.FileSource):
        return None
    members = V.TASK_DEFAULTS["members"]
    for arg in task.source.args:
        if arg.name == "members" and isinstance(arg.value, int):
            members = arg.value
    return V.position_names(min(int(members), 9999))  # type: ignore[call-overload]


def check_position(ck: CheckContext, name: ast.NameRef, task: ast.TaskDef | None) -> None:
    known = positions_of(task)
    ok = V.POSITION.fullmatch(name.name) is not None if known is None else name.name in known
    if not ok:
        listed = ", ".join(known) if known else "S1.., N1.., END"
        ck.error(
            "E208",
            f"unknown position `{name.name}`",
            name.span,
            suggest(name.name, known or ("END",)) or f"positions of this task: {listed}",
        )


def check_group_name(ck: CheckContext, name: ast.NameRef) -> None:
    """A group may not take a name that reads as a component (`m0`, `mlp3`, `L9H1`):
    wherever a head or MLP stands, that word means the component, never the group."""
    found = parse_component(name.name)
    if found is not None:
        ck.error(
            "E211",
            f"group name `{name.name}` spells a component ({canonical(*found)})",
            name.span,
            "name the group by its role (`detect`, `successor`); component spellings "
            "(9.1, L9H1, a9.h1, mlp9, m9) always mean the component",
        )
