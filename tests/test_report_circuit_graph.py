"""The circuit diagram (issue 18): the networkx graph it draws holds exactly the circuit's
nodes and edges, the SVG names every node and has one element per edge, widths follow
|score| (the HTML report embeds it: tests/test_report_html.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqcirc.errors import SeqcircError
from seqcirc.report.circuit_graph import build_graph, layout, render
from seqcirc.usecases.interop import draw_circuit

TASK = "task months = sequence(months, prompts=48)\n"
EDGES = (
    TASK + "circuit c on seqcirc-mini {\n  ablate edges resample\n  group prev = 1.1\n"
    "  edge embed -> 1.1 (q)  # score 2.0\n  edge 1.1 -> 3.0 (k, v)\n"
    "  edge embed -> m0  # score -0.5\n  edge mlp0 -> 3.0 (q)\n  edge 3.0 -> logits\n}\n"
)


def _svg_ids(svg: bytes) -> set[str]:
    text = svg.decode("utf-8").replace("&gt;", ">")
    return set(re.findall(r'id="([^"]+)"', text))


def test_an_edge_circuit_draws_exactly_its_edges(tmp_path: Path) -> None:
    path = tmp_path / "c.circ"
    path.write_text(EDGES, encoding="utf-8")
    drawn = draw_circuit(str(path), str(tmp_path / "c.svg"))
    g = drawn.graph
    want = {
        ("embed", "1.1", "q"),
        ("1.1", "3.0", "k"),
        ("1.1", "3.0", "v"),
        ("embed", "mlp0", "mlp"),
        ("mlp0", "3.0", "q"),
        ("3.0", "logits", "resid"),
    }
    assert set(g.edges(keys=True)) == want
    assert set(g.nodes) == {"embed", "1.1", "mlp0", "3.0", "logits"}
    assert g.nodes["1.1"]["group"] == "prev" and g.nodes["mlp0"]["kind"] == "mlp"
    assert g.edges["embed", "1.1", "q"]["score"] == 2.0
    assert g.edges["1.1", "3.0", "k"]["score"] is None  # (k, v) on one line: no one score
    ids = _svg_ids(drawn.data)
    assert {f"node {n}" for n in g.nodes} <= ids and {f"label {n}" for n in g.nodes} <= ids
    assert {f"edge {s}->{r}[{k}]" for s, r, k in want} <= ids
    assert {i for i in ids if i.startswith("edge ")} == {f"edge {s}->{r}[{k}]" for s, r, k in want}
    text = drawn.data.decode("utf-8")
    assert all(f">{name}</text>" in text for name in g.nodes)  # labels stay text


def test_layout_runs_left_to_right_in_computation_order() -> None:
    g = build_graph(["0.0", "0.1", "mlp0", "2.1", "mlp3"], [("0.0", "mlp0", "mlp")])
    pos = layout(g)
    xs = [pos[n][0] for n in ("embed", "0.0", "mlp0", "2.1", "mlp3", "logits")]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert pos["0.0"][0] == pos["0.1"][0] and pos["0.0"][1] > pos["0.1"][1]  # head 0 on top


def test_a_node_circuit_draws_its_nodes_and_highlighted_edges(tmp_path: Path) -> None:
    path = tmp_path / "n.circ"
    path.write_text(
        TASK + "circuit n on seqcirc-mini {\n  heads 1.0, 3.1\n  mlp 0..1\n"
        "  edge 1.0 -> 3.1 (v)\n}\n",
        encoding="utf-8",
    )
    drawn = draw_circuit(str(path), str(tmp_path / "n.png"))
    assert drawn.graph.graph["highlighted"]
    assert set(drawn.graph.edges(keys=True)) == {("1.0", "3.1", "v")}
    assert set(drawn.graph.nodes) == {"embed", "mlp0", "1.0", "mlp1", "3.1", "logits"}
    assert drawn.data.startswith(b"\x89PNG")
    with pytest.raises(SeqcircError) as info:
        draw_circuit(str(path), str(tmp_path / "n.jpg"))
    assert info.value.code == "E615" and "end the file name in .svg" in info.value.render()


def test_widths_follow_absolute_scores() -> None:
    from seqcirc.report.circuit_graph import _widths

    edges = [("embed", "0.0", "q"), ("0.0", "logits", "resid"), ("embed", "mlp0", "mlp")]
    g = build_graph([], edges, scores={edges[0]: -2.0, edges[1]: 1.0})
    w = _widths(g)
    assert w[("embed", "0.0", "q")] > w[("0.0", "logits", "resid")] > w[("embed", "mlp0", "mlp")]
    assert render(g, "t", "svg").startswith(b"<?xml")
