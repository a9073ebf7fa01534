"""Set algebra on circuits of one model: `circuit shared on gpt2-small = a & b & c`.

Union `|`, intersection `&`, difference `-` act on node sets; a group survives with the
nodes it still has. The result keeps the first operand's task and ablation set-up.
"""

from __future__ import annotations

from dataclasses import replace

from seqcirc.checks.context import CheckContext
from seqcirc.checks.diagnostics import suggest
from seqcirc.checks.resolved import Circuit
from seqcirc.language import ast
from seqcirc.plan import Node


def lookup_circuit(ck: CheckContext, ref: ast.NameRef, model: str | None) -> Circuit | None:
    """The circuit a name refers to; with several model sections, `model` picks one."""
    sections = ck.circuits.get(ref.name)
    if not sections and ref.name in ck.failed:
        return None  # its own errors are reported already
    if not sections:
        ck.error(
            "E200",
            f"unknown circuit `{ref.name}`",
            ref.span,
            suggest(ref.name, ck.circuits) or "define it above, or import the file that defines it",
        )
        return None
    if model is not None:
        for c in sections:
            if c.model.ref.name == model:
                return c
        ck.error(
            "E260",
            f"circuit `{ref.name}` has no section on `{model}`",
            ref.span,
            "sections: " + ", ".join(c.model.ref.name for c in sections),
        )
        return None
    if len(sections) > 1:
        ck.error(
            "E261",
            f"circuit `{ref.name}` has sections on several models",
            ref.span,
            "name the model: `circuit shared on gpt2-small = a & b`",
        )
        return None
    return sections[0]


def evaluate_derived(ck: CheckContext, d: ast.DerivedDef) -> Circuit | None:
    model = d.model.name if d.model else None
    result = _eval(ck, d.expr, model)
    if result is None:
        return None
    if not result.nodes:
        ck.error(
            "E240", f"circuit `{d.name.name}` is empty", d.span, "the operands share no component"
        )  # still defined, so claims about it do not add "unknown circuit"
    return replace(
        result,
        name=d.name.name,
        path=ck.path,
        span=d.span,
        derived=True,
        claims=(),
        edges=(),
    )


def _eval(ck: CheckContext, expr: ast.SetExpr, model: str | None) -> Circuit | None:
    """Left to right, as written: a loop down the left operands (a chain `a & b & c ...`
    may be thousands long), recursion into right ones (their nesting is bounded, E103).
    After a failed operand the rest are still looked up, so their errors show too."""
    spine: list[ast.SetOp] = []
    while isinstance(expr, ast.SetOp):
        spine.append(expr)
        expr = expr.left
    acc = lookup_circuit(ck, expr.name, model)
    for op in reversed(spine):
        acc = _apply(ck, op, acc, _eval(ck, op.right, model))
    return acc


def _apply(
    ck: CheckContext, expr: ast.SetOp, left: Circuit | None, right: Circuit | None
) -> Circuit | None:
    if left is None or right is None:
        return None
    if left.model.ref.name != right.model.ref.name:
        ck.error(
            "E260",
            "set algebra across different models",
            expr.span,
            f"`{left.name}` is on {left.model.ref.name}, `{right.name}` on "
            f"{right.model.ref.name}; name the model: `circuit shared on gpt2-small = a & b`",
        )
        return None
    if expr.op == "|":
        nodes = left.nodes | right.nodes
    elif expr.op == "&":
        nodes = left.nodes & right.nodes
    else:
        nodes = left.nodes - right.nodes
    return replace(left, nodes=nodes, groups=_groups(left, right, nodes))


def _groups(left: Circuit, right: Circuit, nodes: frozenset[Node]) -> tuple:
    merged: dict[str, list[Node]] = {}
    for name, members in (*left.groups, *right.groups):
        merged.setdefault(name, []).extend(n for n in members if n in nodes)
    return tuple((name, tuple(sorted(set(members)))) for name, members in merged.items() if members)
