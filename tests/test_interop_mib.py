"""The EAP-IG/MIB graph JSON (issue 18): the graph's nodes and edges named and ordered as
EAP-IG's `Graph.from_model` makes them (checked against hand-written lists), EAP-IG's
prune, a node circuit's edges, the round trips circ -> graph -> circ and graph -> circ ->
graph, and every bad input a coded error."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from seqcirc.errors import SeqcircError
from seqcirc.interop.graph import (
    GraphShape,
    all_edges,
    implied_edges,
    mib_edge_name,
    node_names,
    parse_edge_name,
    prune,
)
from seqcirc.interop.mib import to_mib
from seqcirc.models.shapes import KNOWN_SHAPES, shape_of
from seqcirc.plan import Node
from seqcirc.plan.compile import compile_file
from seqcirc.usecases.import_graph import import_graph
from seqcirc.usecases.interop import export_circuit

TOY = GraphShape(n_layers=2, n_heads=1, d_model=8)
# EAP-IG's Graph.from_model on 2 layers of 1 head, written out by hand from its loops.
TOY_EDGES = [
    "input->a0.h0<q>",
    "input->a0.h0<k>",
    "input->a0.h0<v>",
    "input->m0",
    "a0.h0->m0",
    "input->a1.h0<q>",
    "input->a1.h0<k>",
    "input->a1.h0<v>",
    "a0.h0->a1.h0<q>",
    "a0.h0->a1.h0<k>",
    "a0.h0->a1.h0<v>",
    "m0->a1.h0<q>",
    "m0->a1.h0<k>",
    "m0->a1.h0<v>",
    "input->m1",
    "a0.h0->m1",
    "m0->m1",
    "a1.h0->m1",
    "input->logits",
    "a0.h0->logits",
    "m0->logits",
    "a1.h0->logits",
    "m1->logits",
]
# The same with attention and MLP in parallel (GPT-NeoX): no a{L}.h{H}->m{L}.
TOY_PARALLEL = [
    "input->a0.h0<q>",
    "input->a0.h0<k>",
    "input->a0.h0<v>",
    "input->m0",
    "input->a1.h0<q>",
    "input->a1.h0<k>",
    "input->a1.h0<v>",
    "input->m1",
    "a0.h0->a1.h0<q>",
    "a0.h0->a1.h0<k>",
    "a0.h0->a1.h0<v>",
    "a0.h0->m1",
    "m0->a1.h0<q>",
    "m0->a1.h0<k>",
    "m0->a1.h0<v>",
    "m0->m1",
    "input->logits",
    "a0.h0->logits",
    "m0->logits",
    "a1.h0->logits",
    "m1->logits",
]
GPT2 = GraphShape.of(KNOWN_SHAPES["gpt2"])
MINI = GraphShape.of(shape_of("seqcirc-mini"))
TASK = "task months = sequence(months, prompts=48)\n"


def test_the_graph_is_eap_igs_names_and_order() -> None:
    assert [mib_edge_name(e) for e in all_edges(TOY)] == TOY_EDGES
    parallel = GraphShape(2, 1, 8, parallel_attn_mlp=True)
    assert [mib_edge_name(e) for e in all_edges(parallel)] == TOY_PARALLEL
    assert node_names(TOY) == ["input", "a0.h0", "m0", "a1.h0", "m1", "logits"]
    assert len(all_edges(GPT2)) == 32491  # as MIB's GPT-2 graphs list, and auto-circuit counts
    assert len(all_edges(MINI)) == 175  # 4 layers of 2 heads: 132 + 30 + 13, counted by hand
    assert GPT2.cfg() == {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": False, "d_model": 768}
    assert GraphShape.of(KNOWN_SHAPES["EleutherAI/pythia-70m"]).parallel_attn_mlp


def test_the_graph_is_the_edge_graph_the_evaluator_runs() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from seqcirc.forward.gpt2 import extract_weights
    from seqcirc.forward.gpt2_edges import edge_graph

    cfg = GPT2Config(n_layer=3, n_head=2, n_embd=16, vocab_size=20, n_positions=8)
    w = extract_weights(SimpleNamespace(original_model=GPT2LMHeadModel(cfg).eval()))
    assert set(edge_graph(w).edges) == set(all_edges(GraphShape(3, 2, 16)))


def test_edge_names_both_ways() -> None:
    for e in all_edges(TOY):
        assert parse_edge_name(mib_edge_name(e)) == e
        assert parse_edge_name(str(e)) == e  # seqcirc's own `4.4->9.1[q]`
    assert parse_edge_name("a0.h0->a1.h0") is None  # a head's input must be named
    assert parse_edge_name("logits->m0") is None
    assert parse_edge_name("a0.h0->m1<q>") is None


def test_prune_keeps_what_eap_ig_keeps() -> None:
    e = {n: parse_edge_name(n) for n in TOY_EDGES}
    chain = {e["input->a0.h0<q>"], e["a0.h0->m1"], e["m1->logits"]}
    assert prune(chain) == chain
    # m0 is entered but leaves nowhere; a1.h0 leaves but is never entered: both go,
    # and with a1.h0 gone, m1 (entered only from a1.h0) goes next round
    dangling = {e["input->m0"], e["a1.h0->m1"], e["m1->logits"]}
    assert prune(chain | dangling) == chain
    assert prune({e["a1.h0->logits"]}) == set()


def test_a_node_circuit_keeps_every_edge_among_its_nodes() -> None:
    got = [mib_edge_name(x) for x in implied_edges([Node(0, 0), Node(1)], TOY)]
    assert got == [
        "input->a0.h0<q>",
        "input->a0.h0<k>",
        "input->a0.h0<v>",
        "input->m1",
        "a0.h0->m1",
        "input->logits",
        "a0.h0->logits",
        "m1->logits",
    ]


def _write(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text, encoding="utf-8")
    return str(tmp / name)


EDGE_CIRCUIT = (
    TASK + "circuit c on seqcirc-mini {\n  ablate edges resample\n"
    "  edge embed -> 1.1 (q)\n  edge 1.1 -> 3.0 (k, v)\n  edge embed -> mlp0\n"
    "  edge mlp0 -> 3.0 (q)\n  edge 3.0 -> logits\n  edge mlp0 -> logits\n}\n"
)


def test_circ_to_graph_to_circ_is_the_identity(tmp_path: Path) -> None:
    src = _write(tmp_path, "c.circ", EDGE_CIRCUIT)
    data = export_circuit(src).data
    assert list(data["cfg"]) == ["n_layers", "n_heads", "parallel_attn_mlp", "d_model"]
    assert len(data["edges"]) == 175 and len(data["nodes"]) == 4 * 3 + 2
    kept = {k for k, v in data["edges"].items() if v["in_graph"]}
    assert kept == {
        "input->a1.h1<q>",
        "a1.h1->a3.h0<k>",
        "a1.h1->a3.h0<v>",
        "input->m0",
        "m0->a3.h0<q>",
        "a3.h0->logits",
        "m0->logits",
    }
    assert {k for k, v in data["nodes"].items() if v["in_graph"]} == {
        "input",
        "a1.h1",
        "m0",
        "a3.h0",
        "logits",
    }
    graph = _write(tmp_path, "g.json", json.dumps(data))
    back = import_graph(graph, model="seqcirc-mini", task="months", output=str(tmp_path / "b.circ"))
    assert not back.selection.node_circuit and "ablate edges resample" in back.text
    out = _write(tmp_path, "b.circ", back.text)
    before, after = compile_file(src).circuits[0], compile_file(out).circuits[0]
    assert set(after.edges) == set(before.edges) and after.nodes == before.nodes


def test_a_node_circuit_comes_back_as_a_node_circuit(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        "n.circ",
        TASK + "circuit c on seqcirc-mini {\n  group detect = "
        "1.0\n  heads 3.1, 2.1\n  mlp 0..1, 3\n  edge detect -> 3.1\n}\n",
    )
    data = export_circuit(src).data
    nodes = [Node(0), Node(1, 0), Node(1), Node(2, 1), Node(3, 1), Node(3)]
    kept = [k for k, v in data["edges"].items() if v["in_graph"]]
    assert kept == [mib_edge_name(e) for e in implied_edges(nodes, MINI)]
    back = import_graph(
        _write(tmp_path, "g.json", json.dumps(data)), model="seqcirc-mini", task="months"
    )
    assert back.selection.node_circuit
    assert "ablate nodes resample" in back.text and "heads 1.0, 2.1, 3.1" in back.text
    assert "mlp 0..1, 3" in back.text
    out = _write(tmp_path, "b.circ", back.text)
    assert compile_file(out).circuits[0].nodes == compile_file(src).circuits[0].nodes
    edges = import_graph(
        str(tmp_path / "g.json"), model="seqcirc-mini", task="months", as_edges=True
    )
    assert edges.text.count("  edge ") == len(kept)


def _random_graph(shape: GraphShape, seed: int, top: int) -> dict[str, Any]:
    rng = random.Random(seed)
    edges = all_edges(shape)
    scores = {e: rng.gauss(0, 1) for e in edges}
    ranked = sorted(edges, key=lambda e: -abs(scores[e]))
    kept = sorted(prune(ranked[:top]), key=edges.index)
    assert kept  # a circuit to carry
    return to_mib(shape, kept, scores)


def test_graph_to_circ_to_graph_is_the_identity(tmp_path: Path) -> None:
    """An EAP-IG graph (in_graph edges pruned, a score on every edge) -> .circ -> graph:
    with --scores the file comes back equal; from the .circ alone, every in_graph flag and
    the score of every edge in the graph (the `# score` comments)."""
    data = _random_graph(MINI, seed=1, top=40)
    graph = _write(tmp_path, "g.json", json.dumps(data))
    back = import_graph(graph, model="seqcirc-mini", task="months", as_edges=True)
    circ = _write(tmp_path, "c.circ", back.text)
    assert export_circuit(circ, scores=graph).data == data
    alone = export_circuit(circ).data
    assert alone["nodes"] == data["nodes"]
    for name, edge in data["edges"].items():
        assert alone["edges"][name]["in_graph"] == edge["in_graph"]
        if edge["in_graph"]:
            assert alone["edges"][name]["score"] == edge["score"]  # exact: repr in the comment


def test_top_n_ranks_by_absolute_score_then_prunes(tmp_path: Path) -> None:
    scores = {
        "input->a0.h0<q>": 5.0,
        "a0.h0->logits": -4.0,
        "a1.h1->m3": 3.0,
        "input->m0": 0.5,
        "m0->logits": 0.25,
    }
    path = _write(tmp_path, "a.json", json.dumps({"edges": scores}))
    got = import_graph(path, model="seqcirc-mini", task="months", top=3, as_edges=True)
    # a1.h1->m3 is chosen but lies on no path from the input to the logits: pruned
    assert got.selection.chosen == 3 and got.selection.pruned == 1
    assert "edge embed -> 0.0 (q)  # score 5.0" in got.text
    assert "edge 0.0 -> logits  # score -4.0" in got.text and "1.1 -> mlp3" not in got.text
    signed = import_graph(path, model="seqcirc-mini", task="months", top=4, signed=True)
    assert signed.selection.edges == (parse_edge_name("input->m0"), parse_edge_name("m0->logits"))
    own = _write(
        tmp_path,
        "own.json",
        json.dumps({"edges": {"embed->0.0[q]": 1.0, "0.0->logits[resid]": 2.0}}),
    )
    assert len(import_graph(own, model="seqcirc-mini", task="months", top=2).selection.edges) == 2


def test_real_mib_names_and_node_flags_are_read(tmp_path: Path) -> None:
    """MIB's files give every node `in_graph` and no node score; node names as EAP-IG's."""
    data = _random_graph(MINI, seed=2, top=60)
    data["nodes"]["a0.h1"]["in_graph"] = not data["nodes"]["a0.h1"]["in_graph"]  # ignored
    path = _write(tmp_path, "g.json", json.dumps(data))
    got = import_graph(path, model="seqcirc-mini", task="months")
    assert "node in_graph flags disagree with its edges for a0.h1;" in got.text
    assert set(got.selection.edges) == prune(
        {parse_edge_name(k) for k, v in data["edges"].items() if v["in_graph"]}
    )


def _code(**kw: Any) -> str:
    with pytest.raises(SeqcircError) as info:
        kw.setdefault("model", "seqcirc-mini")
        kw.setdefault("task", "months")
        import_graph(**kw)
    assert info.value.exit_code == 2
    return f"{info.value.code}: {info.value.render()}"


def test_bad_graph_files_are_coded_errors(tmp_path: Path) -> None:
    ok = _random_graph(MINI, seed=3, top=20)
    bad_json = _write(tmp_path, "bad.json", '{"edges": {\n  "input->m0": 1,,\n}}')
    assert _code(path=bad_json).startswith("E610") and "bad.json:2:" in _code(path=bad_json)
    assert _code(path=str(tmp_path / "none.json")).startswith("E610")
    assert _code(path=_write(tmp_path, "l.json", "[1, 2]")).startswith("E611")
    cfg = dict(ok, cfg={"n_layers": 4, "n_heads": 2})
    assert "cfg lacks parallel_attn_mlp, d_model" in _code(
        path=_write(tmp_path, "c.json", json.dumps(cfg))
    )
    wrong = dict(ok, cfg=GPT2.cfg())  # mini's nodes and edges are GPT-2 small's too
    assert "n_layers 12 (model 4)" in _code(path=_write(tmp_path, "w.json", json.dumps(wrong)))
    small = dict(ok, cfg=dict(MINI.cfg(), n_layers=3))  # a3.h0 is not a node of 3 layers
    assert _code(path=_write(tmp_path, "3.json", json.dumps(small))).startswith("E612")
    shape = dict(ok, cfg=dict(MINI.cfg(), d_model=64))
    message = _code(path=_write(tmp_path, "s.json", json.dumps(shape)))
    assert message.startswith("E613") and "match `seqcirc-mini`: d_model 64 (model 128)" in message
    for edges, code in [
        ({"a0.h0->a1.h9<q>": 1.0}, "E612"),
        ({"a3.h0->a1.h0<q>": 1.0}, "E612"),
        ({"nonsense": 1.0}, "E612"),
        ({"input->m0": "high"}, "E611"),
        ({"input->m0": {"score": 1, "in_graph": "yes"}}, "E611"),
    ]:
        assert _code(
            path=_write(tmp_path, "e.json", json.dumps({"edges": edges})), top=1
        ).startswith(code), edges
    neurons = dict(ok, nodes={"m0": {"in_graph": True, "neurons": [True] * 128}})
    assert "neuron-level" in _code(path=_write(tmp_path, "n.json", json.dumps(neurons)))


def test_bad_choices_are_coded_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "g.json", json.dumps(_random_graph(MINI, seed=4, top=20)))
    scores_only = _write(tmp_path, "s.json", json.dumps({"edges": {"input->m0": 1.0}}))
    assert "--top 176: the file lists 175 edges" in _code(path=path, top=176)
    assert _code(path=path, top=0).startswith("E614")
    assert _code(path=path, top=3, in_graph=True).startswith("E614")
    assert "choose the circuit by score: --top N" in _code(path=scores_only)
    assert "no edge is left" in _code(path=scores_only, top=1)
    assert _code(path=path, task="no such task!").startswith("E615")
    assert _code(path=path, name="1bad").startswith("E615")
    assert _code(path=path, ablation="patch").startswith("E615")
    assert _code(path=path, model="gpt2-smal").startswith("E202")
    with pytest.raises(SeqcircError) as info:
        export_circuit(_write(tmp_path, "c.circ", EDGE_CIRCUIT), fmt="acdc")
    assert info.value.code == "E615"
    two = EDGE_CIRCUIT + "circuit d on seqcirc-mini {\n  heads 1.1\n}\n"
    with pytest.raises(SeqcircError) as info:
        export_circuit(_write(tmp_path, "two.circ", two))
    assert info.value.code == "E615" and "sections: c on seqcirc-mini, d on seqcirc-mini" in (
        info.value.render()
    )
    assert export_circuit(str(tmp_path / "two.circ"), circuit="d").data["nodes"]["a1.h1"][
        "in_graph"
    ]
