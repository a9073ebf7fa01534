"""The HTML report is one self-contained file, and every plot renders a real PNG."""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import re
import struct
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from report_fixtures import full_result, minimal_result

from seqcirc.report import circuit_graph, plots, write_reports
from seqcirc.report.figures import circuit_figures
from seqcirc.report.html_report import html_report
from seqcirc.results import CircuitResult

SETUP = "node ablation; value: zero; all positions; clean input, complement ablated"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(data: bytes, min_bytes: int = 5000) -> tuple[int, int]:
    """A real PNG: magic bytes, non-trivial size, and pixels that are not all one colour.
    Returns (width, height)."""
    import matplotlib.image

    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    width, height = struct.unpack(">II", data[16:24])
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.05  # something was drawn
    return width, height


@dataclasses.dataclass(frozen=True)
class _WithComponentAblation(CircuitResult):
    """The optional field the report reads when the evaluator records it."""

    component_ablation: dict[str, float] = field(default_factory=dict)


def test_html_is_self_contained_with_embedded_pngs() -> None:
    text = html_report(full_result())
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "url(" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 5 + 1  # months: 5 figures; the edge circuit: its graph
    assert text.count("<b>The circuit.</b>") == 2  # the diagram (report.circuit_graph)
    assert "the 3 edges the circuit keeps" in text
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        _check_png(base64.b64decode(src.split(",", 1)[1]))
    # escaped text, every number's set-up, provenance
    assert "expect beats random(n=200) at p &lt; 0.01" in text
    # per circuit, and under each figure drawn from ablated runs (not attention, graph)
    assert text.count("Ablation set-up") == 2 + 3
    assert "seed 7" in text and "torch 2.13.0" in text
    assert '<td class="fail">FAIL</td>' in text and '<td class="skipped">SKIP</td>' in text


def test_html_of_minimal_result_has_only_the_graph(tmp_path: Path) -> None:
    (path,) = write_reports(minimal_result(), html_path=tmp_path / "r.html")
    text = path.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 1
    assert "model tiny; seed 0" in text


def test_figures_read_optional_data() -> None:
    result = full_result()
    figs = circuit_figures(result, result.circuits[0])
    assert [f.title for f in figs] == [
        "Faithfulness", "Completeness", "Per-component ablation", "Attention of head 0.1",
        "The circuit",
    ]  # fmt: skip
    assert (
        "the random-circuit baseline, 200 circuits of the same size (F(C)/F(M) = 0.812, "
        "rank 2 of 201, p = 0.00995)" in figs[0].caption
    )
    assert figs[1].caption.startswith("4 knocked-out subsets K; worst incompleteness 0.200")
    assert figs[2].caption.startswith("each circuit component removed alone from the circuit")
    with_abl = _WithComponentAblation(
        **{f.name: getattr(result.circuits[0], f.name) for f in dataclasses.fields(CircuitResult)},
        component_ablation={"0.1": 0.9, "mlp1": 0.5},
    )
    abl = [f for f in circuit_figures(result, with_abl) if f.title == "Per-component ablation"]
    assert abl[0].caption.startswith("each component ablated alone from the full model")


def test_ablation_grid_places_heads_and_mlps() -> None:
    grid = plots.ablation_grid({"9.1": 0.55, "mlp0": 0.2, "0.11": 1.1}, 12, 12)
    assert grid.shape == (12, 13)
    assert grid[9, 1] == 0.55 and grid[0, 12] == 0.2 and grid[0, 11] == 1.1
    assert int(np.isfinite(grid).sum()) == 3
    assert plots.component_cell("mlp10", 12) == (10, 12)
    assert plots.component_cell("embed", 12) == (-1, -1)


def test_parse_edge() -> None:
    assert plots.parse_edge("4.4->9.1[q]") == ("4.4", "9.1", "q")
    assert plots.parse_edge("embed->mlp0[mlp]") == ("embed", "mlp0", "mlp")
    assert plots.parse_edge("9.1->logits[resid]") == ("9.1", "logits", "resid")
    assert plots.parse_edge("nonsense") is None


FAITH = {
    "performance_ratio": {"value": 0.81, "lower": 0.74, "upper": 0.89, "level": 0.95},
    "normalized_faithfulness": {"value": 0.85, "lower": -math.inf, "upper": math.inf},
    "broken": {"error": "[E312] F(M) is 0"},
}
POINTS: list[dict[str, Any]] = [
    {"knocked_out": ["0.1"], "source": "random", "f_model_minus": 2.9, "f_circuit_minus": 2.4},
    {"knocked_out": ["1.0"], "source": "group:s", "f_model_minus": 3.2, "f_circuit_minus": 3.0},
    {"knocked_out": ["1.0", "mlp0"], "source": "greedy", "f_model_minus": 1.0,
     "f_circuit_minus": 0.2},
]  # fmt: skip
GPT2_NODES = ["0.1", "4.4", "7.11", "9.1", "mlp0", "mlp9"]


@pytest.mark.parametrize(
    "render",
    [
        lambda: plots.faithfulness_png(FAITH, SETUP),
        lambda: plots.faithfulness_png(FAITH, SETUP, [0.1 * i for i in range(50)], 0.81),
        lambda: plots.completeness_png(POINTS, SETUP, (3.25, 2.64)),
        lambda: plots.ablation_heatmap_png(
            {f"{layer}.{h}": 1 - 0.01 * h for layer in range(12) for h in range(12)},
            12, 12, SETUP, "F(M \\ v) / F(M)", GPT2_NODES, centre=1.0,
        ),
        lambda: plots.attention_png(np.tril(np.ones((5, 5))) / np.arange(1, 6)[:, None],
                                    ["<bos>", "S1", "S2", "S3", "END"], "head 4.4"),
        lambda: circuit_graph.render(circuit_graph.build_graph(
            GPT2_NODES, [("4.4", "7.11", "q"), ("7.11", "9.1", "q"), ("embed", "0.1", "v"),
                         ("9.1", "logits", "resid")],
            groups={"detect": ["4.4"], "successor": ["9.1"]}), "circuit months"),
    ],
    ids=["faithfulness", "faithfulness+baseline", "completeness", "heatmap", "attention", "graph"],
)  # fmt: skip
def test_every_plot_renders_a_real_png(render: Any) -> None:
    width, height = _check_png(render())
    assert width >= 300 and height >= 200


def test_named_attention_averages_at_each_prompts_own_indices() -> None:
    from seqcirc.errors import EvaluationError
    from seqcirc.report.attention import named_attention

    # two prompts of length 4; S2 sits at index 1 in the first, 2 in the second
    p = np.zeros((2, 4, 4))
    p[0, 3, 1] = 1.0  # prompt 0: END(3) -> S2(1)
    p[1, 3, 2] = 0.5  # prompt 1: END(3) -> S2(2) half, the rest to BOS
    p[1, 3, 0] = 0.5
    out = named_attention(p, {"END": [3, 3], "S2": [1, 2], "BOS": [0, 0]})
    assert out["labels"] == ["BOS", "S2", "END"]
    end, s2, bos = 2, 1, 0
    assert out["pattern"][end][s2] == pytest.approx(0.75)
    assert out["pattern"][end][bos] == pytest.approx(0.25)
    assert out["pattern"][s2][end] == 0.0
    with pytest.raises(EvaluationError):
        named_attention(p, {"END": [3, 4]})
    with pytest.raises(EvaluationError):
        named_attention(np.zeros((2, 4)), {})
