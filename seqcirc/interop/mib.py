"""The EAP-IG / MIB graph JSON: written from a circuit, read and checked, and a circuit
chosen from it.

The format (EAP-IG eap/graph.py, `Graph.to_json` and `Graph.from_json`):

    {"cfg": {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
     "nodes": {"input": {"in_graph": true}, "a0.h0": {"in_graph": false}, ...,
               "logits": {"in_graph": true}},
     "edges": {"input->a0.h0<q>": {"score": -0.0003, "in_graph": false}, ...}}

Every node and every edge of the model is listed; a node carries `score` only when node
scores exist. `from_json` sets each listed node and edge and leaves the rest at 0 / out.
Which edges are in the circuit is what counts: EAP-IG's `evaluate_graph` prunes first
(interop.graph.prune), which recomputes the nodes from the edges. seqcirc's own
attribution JSON may give only `{"edges": {NAME: score}}` (NAME as above or seqcirc's
`4.4->9.1[q]`), optionally `{"nodes": {NAME: score}}` and `cfg`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.interop.graph import (
    GraphShape,
    all_edges,
    mib_edge_name,
    mib_node,
    node_names,
    parse_edge_name,
    plan_endpoint,
    touched_nodes,
)
from seqcirc.language.names import MIB_INPUT, MIB_LOGITS, mib_name
from seqcirc.plan import EMBED, Edge, Node
from seqcirc.source import Span

CFG_KEYS = ("n_layers", "n_heads", "parallel_attn_mlp", "d_model")


def to_mib(
    shape: GraphShape,
    kept: list[Edge],
    scores: Mapping[Edge, float] | None = None,
    node_scores: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The graph JSON of a circuit that keeps `kept` (a node circuit: its implied_edges).
    A node is in the graph when a kept edge touches it (after pruning, what EAP-IG writes);
    the logits always are. Scores default to 0.0, as in a fresh EAP-IG graph."""
    scores = scores or {}
    inside = {mib_name(n.layer, n.head) for n in touched_nodes(kept)}
    if any(e.sender == EMBED for e in kept):
        inside.add(MIB_INPUT)
    nodes: dict[str, dict[str, Any]] = {}
    for name in node_names(shape):
        nodes[name] = {"in_graph": name in inside or name == MIB_LOGITS}
        if node_scores is not None:
            nodes[name]["score"] = float(node_scores.get(name, 0.0))
    keep = set(kept)
    edges = {
        mib_edge_name(e): {"score": float(scores.get(e, 0.0)), "in_graph": e in keep}
        for e in all_edges(shape)
    }
    return {"cfg": shape.cfg(), "nodes": nodes, "edges": edges}


@dataclass(frozen=True)
class GraphFile:
    """A graph JSON (or seqcirc attribution JSON) as read: edges in file order."""

    path: str
    shape: GraphShape | None  # None: the file has no cfg
    scores: dict[Edge, float]  # every listed edge (0.0 where a file gives no score)
    in_graph: frozenset[Edge] | None  # None: the file says nothing of membership
    node_scores: dict[str, float]  # EAP-IG node name -> score, where given
    node_flags: dict[str, bool]  # EAP-IG node name -> in_graph, where given


def _fail(path: str, message: str, code: str, hint: str) -> InputError:
    return InputError(f"{path}: {message}", code=code, hint=hint)


def load_json(path: str | Path) -> Any:
    """The file's JSON; E610 (with its line) when it is unreadable or not JSON."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(
            name,
            f"cannot read the graph file: {getattr(err, 'strerror', None) or err}",
            "E610",
            "give the path of an EAP-IG/MIB graph .json",
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"not JSON: {err.msg}",
            code="E610",
            span=Span(name, err.lineno, err.colno),
            hint="an EAP-IG/MIB graph is the JSON Graph.to_json writes (a .pt file is not read)",
        ) from None
    except RecursionError:
        raise _fail(name, "JSON nested too deeply to read", "E610", "give a graph JSON") from None


def read_graph(path: str | Path) -> GraphFile:
    """Read and check a graph JSON (E610-E612)."""
    name = str(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("edges"), dict):
        raise _fail(
            name,
            "no `edges` object",
            "E611",
            'a graph JSON has "cfg", "nodes" and "edges"; an attribution JSON at '
            'least {"edges": {"a0.h1->m2": 0.5, ...}}',
        )
    shape = _cfg(name, data["cfg"]) if "cfg" in data else None
    scores: dict[Edge, float] = {}
    member: dict[Edge, bool] = {}
    for key, value in data["edges"].items():
        edge = _edge(name, key, shape)
        if edge in scores:
            raise _fail(name, f"edge `{key}` is listed twice", "E612", "list each edge once")
        score, flag = _edge_value(name, key, value)
        scores[edge] = 0.0 if score is None else score
        if flag is not None:
            member[edge] = flag
    if member and len(member) != len(scores):
        raise _fail(
            name,
            "`in_graph` is given for some edges and not others",
            "E611",
            "give in_graph for every edge, or for none (then choose with --top N)",
        )
    node_scores, node_flags = _nodes(name, data.get("nodes", {}), shape)
    return GraphFile(
        path=name,
        shape=shape,
        scores=scores,
        in_graph=frozenset(e for e, f in member.items() if f) if member else None,
        node_scores=node_scores,
        node_flags=node_flags,
    )


def _cfg(path: str, cfg: Any) -> GraphShape:
    hint = (
        'cfg is {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, '
        '"d_model": 768}, as EAP-IG writes it'
    )
    if not isinstance(cfg, dict) or any(k not in cfg for k in CFG_KEYS):
        missing = [k for k in CFG_KEYS if not isinstance(cfg, dict) or k not in cfg]
        raise _fail(path, f"cfg lacks {', '.join(missing)}", "E611", hint)
    for key in ("n_layers", "n_heads", "d_model"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**6:
            raise _fail(
                path, f"cfg.{key} must be a positive whole number, not {value!r}", "E611", hint
            )
    if not isinstance(cfg["parallel_attn_mlp"], bool):
        raise _fail(path, "cfg.parallel_attn_mlp must be true or false", "E611", hint)
    return GraphShape(cfg["n_layers"], cfg["n_heads"], cfg["d_model"], cfg["parallel_attn_mlp"])


def _edge(path: str, key: str, shape: GraphShape | None) -> Edge:
    edge = parse_edge_name(key)
    if edge is None:
        raise _fail(
            path,
            f"`{key}` is not an edge name",
            "E612",
            "edges are named PARENT->CHILD, with <q>, <k> or <v> after a head: "
            "input->a0.h1<q>, a0.h1->m0, m11->logits",
        )
    if shape is not None and edge not in edge_set(shape):
        raise _fail(
            path,
            f"edge `{key}` does not exist in the graph of its cfg "
            f"({shape.n_layers} layers, {shape.n_heads} heads)",
            "E612",
            "an edge runs forward: to a head of a later layer, to the MLP of its "
            "own layer or a later one, or to the logits",
        )
    return edge


_EDGE_SETS: dict[GraphShape, frozenset[Edge]] = {}


def edge_set(shape: GraphShape) -> frozenset[Edge]:
    """Every edge of the graph of `shape`, as a set (cached)."""
    if shape not in _EDGE_SETS:
        _EDGE_SETS[shape] = frozenset(all_edges(shape))
    return _EDGE_SETS[shape]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _edge_value(path: str, key: str, value: Any) -> tuple[float | None, bool | None]:
    """(score, in_graph) of one edge: a bare score, or {"score", "in_graph"}."""
    hint = 'an edge maps to {"score": 0.12, "in_graph": true} or to a bare score'
    if not isinstance(value, dict):
        score = _number(value)
        if score is None:
            raise _fail(path, f"edge `{key}`: {value!r} is not a finite score", "E611", hint)
        return score, None
    score = None
    if value.get("score") is not None:
        score = _number(value["score"])
        if score is None:
            raise _fail(
                path, f"edge `{key}`: score {value['score']!r} is not a finite number", "E611", hint
            )
    flag = value.get("in_graph")
    if flag is not None and not isinstance(flag, bool):
        raise _fail(path, f"edge `{key}`: in_graph must be true or false", "E611", hint)
    return score, flag


def _nodes(
    path: str, nodes: Any, shape: GraphShape | None
) -> tuple[dict[str, float], dict[str, bool]]:
    """Node scores and in_graph flags where given, every name checked (E612). Neuron-level
    graphs (`neurons` per node) are refused: seqcirc's circuits are of whole components."""
    if not isinstance(nodes, dict):
        raise _fail(path, "`nodes` is not an object", "E611", 'nodes map "a0.h1" to {...}')
    scores: dict[str, float] = {}
    flags: dict[str, bool] = {}
    for key, value in nodes.items():
        end = plan_endpoint(key)
        node = Node.parse(end) if end not in (None, EMBED, "logits") else None
        if end is None or (node is not None and shape is not None and not shape.has(node)):
            raise _fail(
                path,
                f"`{key}` is not a node of this graph",
                "E612",
                "nodes are input, a{L}.h{H}, m{L} and logits, within cfg's sizes",
            )
        name = mib_node(end)
        if isinstance(value, bool):  # from_json's docstring: nodes map a name to a bool
            flags[name] = value
            continue
        if isinstance(value, dict) and ("neurons" in value or "neurons_scores" in value):
            raise _fail(
                path,
                f"node `{key}` lists neurons: a neuron-level circuit",
                "E611",
                "seqcirc keeps or ablates whole heads and MLPs; export the circuit "
                "at node or edge level",
            )
        score = value.get("score") if isinstance(value, dict) else value
        if score is not None:
            number = _number(score)
            if number is None:
                raise _fail(
                    path,
                    f"node `{key}`: score {score!r} is not a finite number",
                    "E611",
                    'a node maps to {"in_graph": true, "score": 0.1}',
                )
            scores[name] = number
        if isinstance(value, dict) and isinstance(value.get("in_graph"), bool):
            flags[name] = value["in_graph"]
    return scores, flags
