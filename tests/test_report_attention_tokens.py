"""The report's token-level attention figure (an `attends` claim's recorded pattern),
the heatmap grid of `seqcirc attention` and the lens plot, drawn from recorded data."""

from __future__ import annotations

import dataclasses

from seqcirc.report.attention_heatmap import heatmaps
from seqcirc.report.attention_tokens import token_attention_figures
from seqcirc.report.html_report import html_report
from seqcirc.report.lens_plot import lens_figure
from seqcirc.results import EvaluationResult
from tests.report_fixtures import full_result

PATTERN = [[1, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0.2, 0.5, 0.3, 0, 0],
           [0.1, 0.1, 0.61, 0.19, 0], [0.1, 0.2, 0.2, 0.2, 0.3]]  # fmt: skip
TOKENS = {
    "head": "0.1",
    "labels": ["'<bos>'", "S1 ' 1'", "S2 ' 2'", "S3 ' 3'", "END ' in'"],
    "pattern": PATTERN,
    "attends": {"from": "S3", "to": "S2", "mean": 0.61, "cell": [3, 2]},
    "caption": "head 0.1's attention pattern averaged over 4 clean prompts",
}


def _with_tokens(result: EvaluationResult) -> EvaluationResult:
    circuit = result.circuits[0]
    claims = tuple(
        dataclasses.replace(c, detail={**c.detail, "attention_tokens": TOKENS})
        if c.kind == "role" and (c.detail or {}).get("role") == "attends"
        else c
        for c in circuit.claims
    )
    return dataclasses.replace(
        result, circuits=(dataclasses.replace(circuit, claims=claims), *result.circuits[1:])
    )


def test_an_attends_claims_pattern_is_a_report_figure() -> None:
    result = _with_tokens(full_result())
    (fig,) = token_attention_figures(result.circuits[0])
    assert fig.title == "Attention pattern of head 0.1" and not fig.ablated
    assert fig.png[:4] == b"\x89PNG" and "0.610" in fig.caption
    assert token_attention_figures(full_result().circuits[0]) == []  # nothing recorded
    text = html_report(result)
    assert text.count("<b>Attention pattern of head 0.1.</b>") == 1
    assert "<b>Attention of head 0.1.</b>" in text  # the named-position figure stays


def test_heatmap_grid_and_lens_plot_formats() -> None:
    panel = {"title": "t", "pattern": TOKENS["pattern"], "labels": TOKENS["labels"],
             "cell": [3, 2]}  # fmt: skip
    assert heatmaps([panel, panel, panel, panel], "grid", "png")[:4] == b"\x89PNG"
    assert b"<svg" in heatmaps([panel], "one", "svg")
    row = {"median_rank": 2.0, "mean_logit": 1.5, "mean_prob": 0.1, "top1_share": 0.2}
    table = {"rows": [{"row": name, "layer": i - 1, "correct": row, "last": row}
                      for i, name in enumerate(["embed", "0", "1"])]}  # fmt: skip
    assert lens_figure(table, "lens", "pdf")[:4] == b"%PDF"
