"""The `.circ` side of the graph JSON: an imported circuit written as a section (edge
lines with their scores as comments, or heads and MLPs when the edges are exactly a node
circuit's), and those score comments read back when the file is exported again."""

from __future__ import annotations

import re
from collections.abc import Sequence

from seqcirc.interop.graph import HEAD_INPUTS
from seqcirc.interop.select import Selection
from seqcirc.language import ast
from seqcirc.language.names import canonical
from seqcirc.plan import EMBED, LOGITS, Edge

# `edge 4.4 -> 9.1 (q)  # score -0.0375`: the trailing comment import writes.
_SCORE = re.compile(r"#\s*score\s*[:=]?\s*(?P<v>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")


def edge_line(e: Edge, score: float | None) -> str:
    """One edge statement in canonical names (`edge embed -> 0.1 (q)`), its score after."""
    inputs = f" ({e.input})" if e.input in HEAD_INPUTS else ""
    note = f"  # score {score!r}" if score is not None else ""
    return f"  edge {e.sender} -> {e.receiver}{inputs}{note}"


def _ranges(layers: Sequence[int]) -> str:
    """[0, 1, 2, 4] -> "0..2, 4"."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and runs[-1][-1] == layer - 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


def section(
    sel: Selection,
    scores: dict[Edge, float] | None,
    *,
    name: str,
    model: str,
    task: str,
    ablation: str,
    as_edges: bool,
) -> list[str]:
    """`circuit NAME on MODEL { ... }`: a node circuit when the edges are one (and
    `as_edges` is false), else one edge line per edge."""
    node_form = sel.node_circuit and not as_edges
    lines = [
        f"circuit {name} on {model} {{",
        f"  task {task}",
        f"  ablate {'nodes' if node_form else 'edges'} {ablation}",
    ]
    if node_form:
        heads = [canonical(n.layer, n.head) for n in sel.nodes if n.head is not None]
        mlps = [n.layer for n in sel.nodes if n.head is None]
        if heads:
            lines.append(f"  heads {', '.join(heads)}")
        if mlps:
            lines.append(f"  mlp {_ranges(mlps)}")
    else:
        lines += [edge_line(e, None if scores is None else scores.get(e)) for e in sel.edges]
    return [*lines, "}"]


def comment_scores(program: ast.Program, circuit: ast.CircuitDef) -> dict[Edge, float]:
    """Scores written as `# score X` after an edge statement that names one edge (single
    sender, single receiver, at most one input), as `section` writes them."""
    trailing = {line: text for line, text in program.comments}
    out: dict[Edge, float] = {}
    for stmt in circuit.body:
        if not isinstance(stmt, ast.EdgeStmt) or len(stmt.inputs) > 1:
            continue
        sender, receiver = _single(stmt.sender), _single(stmt.receiver)
        m = _SCORE.search(trailing.get(stmt.span.end_line or stmt.span.line, ""))
        if sender is None or receiver is None or m is None:
            continue
        if receiver == LOGITS:
            inp = "resid"
        elif receiver.startswith("mlp"):
            inp = "mlp"
        elif stmt.inputs:
            inp = stmt.inputs[0].name
        else:
            continue  # a head's three inputs share the line: no one score
        out[Edge(sender, receiver, inp)] = float(m["v"])  # type: ignore[arg-type]
    return out


def _single(m: ast.Member) -> str | None:
    if isinstance(m, ast.HeadRef):
        return canonical(m.layer, m.head)
    if isinstance(m, ast.MlpRange) and m.hi is None:
        return canonical(m.lo, None)
    if isinstance(m, ast.NameRef) and m.name in (EMBED, LOGITS):
        return m.name
    return None
