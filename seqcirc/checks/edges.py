"""Edges of a circuit section: endpoints resolved to nodes, the receiving inputs
(q, k, v of a head), and the order of computation no edge may run against."""

from __future__ import annotations

from seqcirc.checks.context import CheckContext
from seqcirc.checks.scope import expand
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.models import shapes
from seqcirc.plan import EMBED, LOGITS, Edge, Node


def depth(endpoint: str, architecture: str) -> float:
    """Order of computation: embed < heads of layer L < MLP L < heads of L+1 < logits.

    GPT-NeoX (Pythia), GPT-J and Phi-2 run attention and MLP of a layer in parallel: there
    the MLP of layer L does not see that layer's heads (seqcirc.forward.hooked_graph).
    """
    if endpoint == EMBED:
        return -1
    if endpoint == LOGITS:
        return float("inf")
    node = Node.parse(endpoint)
    parallel = architecture.startswith(("GPTNeoX", "GPTJ", "PhiForCausalLM"))
    if node.head is not None:
        return 2 * node.layer
    return 2 * node.layer + (0 if parallel else 1)


def check_edges(
    ck: CheckContext,
    stmts: list[ast.EdgeStmt],
    shape: shapes.ModelShape | None,
    local: dict[str, tuple[Node, ...]],
) -> list[Edge]:
    """Every edge the statements name, one per sender, receiver and receiving input."""
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


def _endpoints(
    ck: CheckContext,
    m: ast.Member,
    shape: shapes.ModelShape | None,
    local: dict[str, tuple[Node, ...]],
    role: str,
) -> list[str]:
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
    return [str(n) for n in expand(ck, (m,), shape, local, m.span)]


_INPUT_ORDER = ("q", "k", "v", "mlp", "resid")


def _endpoint_order(endpoint: str) -> tuple[float, bool, int]:
    if endpoint == EMBED:
        return (-1, False, 0)
    if endpoint == LOGITS:
        return (float("inf"), False, 0)
    return Node.parse(endpoint).sort_key


def edge_order(e: Edge) -> tuple:
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
