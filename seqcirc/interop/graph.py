"""The computational graph EAP-IG and MIB exchange circuits in, with seqcirc's names.

Nodes (eap/graph.py `Graph.from_model`): `input`, then per layer its heads `a{L}.h{H}`
and its MLP `m{L}`, then `logits`. Edges run from every node to every later reader of
the residual stream: a head reads through q, k and v (`PARENT->a{L}.h{H}<q>`), an MLP and
the logits through one input (`PARENT->m{L}`, `PARENT->logits`). A head of layer L feeds
MLP L unless attention and MLP run in parallel (`parallel_attn_mlp`, GPT-NeoX/Pythia).
This is the edge set seqcirc's edge circuits use (seqcirc.forward.gpt2_edges.edge_graph):
32,491 edges for GPT-2 small. Here an edge is a seqcirc `plan.Edge`; the names below
translate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from seqcirc.language.names import MIB_INPUT, MIB_LOGITS, canonical, mib_name, parse_component
from seqcirc.models.shapes import ModelShape
from seqcirc.plan import EMBED, LOGITS, Edge, Node

HEAD_INPUTS = ("q", "k", "v")


@dataclass(frozen=True)
class GraphShape:
    """What EAP-IG's `Graph.from_model` reads from a config (its `cfg`)."""

    n_layers: int
    n_heads: int
    d_model: int
    parallel_attn_mlp: bool = False

    @classmethod
    def of(cls, shape: ModelShape) -> GraphShape:
        parallel = shape.architecture.startswith("GPTNeoX")
        return cls(shape.n_layers, shape.n_heads, shape.d_model, parallel)

    def cfg(self) -> dict[str, int | bool]:
        """The graph JSON's `cfg`, in the order EAP-IG writes it from a model."""
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "parallel_attn_mlp": self.parallel_attn_mlp,
            "d_model": self.d_model,
        }

    def has(self, node: Node) -> bool:
        return 0 <= node.layer < self.n_layers and (
            node.head is None or 0 <= node.head < self.n_heads
        )


def mib_node(endpoint: str) -> str:
    """A plan endpoint ("embed", "9.1", "mlp9", "logits") as EAP-IG names it."""
    if endpoint == EMBED:
        return MIB_INPUT
    if endpoint == LOGITS:
        return MIB_LOGITS
    node = Node.parse(endpoint)
    return mib_name(node.layer, node.head)


def plan_endpoint(name: str) -> str | None:
    """An EAP-IG node name (or any spelling the language takes) as a plan endpoint."""
    if name in (MIB_INPUT, EMBED):
        return EMBED
    if name == MIB_LOGITS:
        return LOGITS
    found = parse_component(name)
    return None if found is None else canonical(*found)


def mib_edge_name(e: Edge) -> str:
    """`a4.h4->a9.h1<q>`, `input->m0`, `m11->logits` (eap/graph.py `Edge.name`)."""
    suffix = f"<{e.input}>" if e.input in HEAD_INPUTS else ""
    return f"{mib_node(e.sender)}->{mib_node(e.receiver)}{suffix}"


# EAP-IG's `PARENT->CHILD<q>`, or seqcirc's own `str(Edge)`: `4.4->9.1[q]`.
_EDGE = re.compile(r"(?P<s>[^<>\[\]]+?)->(?P<r>.+?)(?:<(?P<i>[qkv])>|\[(?P<j>\w+)\])?")


def parse_edge_name(text: str) -> Edge | None:
    """An edge named the EAP-IG way or seqcirc's; None when it is not one (whether the
    model has it is `shape`'s question: edge_set)."""
    m = _EDGE.fullmatch(text.strip())
    if m is None:
        return None
    sender, receiver = plan_endpoint(m["s"].strip()), plan_endpoint(m["r"].strip())
    if sender is None or receiver is None or sender == LOGITS or receiver == EMBED:
        return None
    given = m["i"] or m["j"]
    if receiver == LOGITS:
        expected: tuple[str, ...] = ("resid",)
    elif Node.parse(receiver).head is None:
        expected = ("mlp",)
    else:
        expected = HEAD_INPUTS
    if given is None and len(expected) == 1:
        given = expected[0]
    if given not in expected:
        return None
    return Edge(sender, receiver, given)  # type: ignore[arg-type]


def all_edges(shape: GraphShape) -> list[Edge]:
    """Every edge of the graph, in the order EAP-IG's `Graph.from_model` adds them (and
    `to_json` writes them): per layer, each earlier node to each head's q, k, v, then to
    the MLP; last, every node to the logits."""
    stream = [EMBED]
    out: list[Edge] = []
    for layer in range(shape.n_layers):
        heads = [canonical(layer, h) for h in range(shape.n_heads)]
        mlp = canonical(layer, None)
        for sender in stream:
            out.extend(Edge(sender, head, i) for head in heads for i in HEAD_INPUTS)  # type: ignore[arg-type]
            if shape.parallel_attn_mlp:
                out.append(Edge(sender, mlp, "mlp"))
        if not shape.parallel_attn_mlp:
            out.extend(Edge(sender, mlp, "mlp") for sender in [*stream, *heads])
        stream += [*heads, mlp]
    out.extend(Edge(sender, LOGITS, "resid") for sender in stream)
    return out


def node_names(shape: GraphShape) -> list[str]:
    """EAP-IG's node names in its order: input, per layer the heads and the MLP, logits."""
    out = [MIB_INPUT]
    for layer in range(shape.n_layers):
        out += [mib_name(layer, h) for h in range(shape.n_heads)] + [mib_name(layer, None)]
    return [*out, MIB_LOGITS]


def prune(edges: Iterable[Edge]) -> set[Edge]:
    """What EAP-IG's `Graph.prune` (run by `evaluate_graph` before every evaluation)
    leaves of these edges: a node stays when an edge leaves it and one enters it (the
    input needs only the first), an edge when both its ends stay (the logits always
    do); repeated until nothing changes. The nodes' own flags play no part."""
    kept = set(edges)
    while True:
        senders = {e.sender for e in kept}
        readers = {e.receiver for e in kept} | {EMBED}
        alive = (senders & readers) | {LOGITS}
        pruned = {e for e in kept if e.sender in alive and e.receiver in alive}
        if pruned == kept:
            return kept
        kept = pruned


def implied_edges(nodes: Iterable[Node], shape: GraphShape) -> list[Edge]:
    """The edges of a node circuit, in EAP-IG's order: every edge between its nodes, from
    the input and to the logits (EAP-IG's node level, `apply_topn(level="node")` then
    `prune`: "for every node in the circuit, all of its outgoing edges are also in the
    circuit"; an edge into a node outside is pruned). seqcirc's node ablation means the
    same: a node outside the circuit sends its ablated output to every reader."""
    inside = {str(n) for n in nodes} | {EMBED, LOGITS}
    return [e for e in all_edges(shape) if e.sender in inside and e.receiver in inside]


def touched_nodes(edges: Iterable[Edge]) -> set[Node]:
    """The heads and MLPs at either end of some edge."""
    ends = {end for e in edges for end in (e.sender, e.receiver)} - {EMBED, LOGITS}
    return {Node.parse(end) for end in ends}
