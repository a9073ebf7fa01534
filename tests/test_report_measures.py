"""Reports say what they measured: the rank of a circuit among the random circuits of a
`beats random` claim (checked against the p-value the stats module computed), a role
claim's own measure without the ablation set-up, figures that draw the claim's
threshold, and a caption on every figure saying what to look for."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from report_fixtures import full_result

from seqcirc.report import failure_text, plots, view
from seqcirc.report.figures import circuit_figures
from seqcirc.results import ClaimResult, EvaluationResult
from seqcirc.stats.baseline import random_baseline_test

ROOT = Path(__file__).resolve().parent


def _months() -> EvaluationResult:
    return EvaluationResult.from_json((ROOT / "data" / "months_mini_result.json").read_text())


def _claim(result: EvaluationResult, kind: str) -> ClaimResult:
    return next(c for _, c in result.claims() if c.kind == kind)


def test_rank_agrees_with_the_p_value_of_the_stats_module() -> None:
    """p = rank / (random circuits + 1): the rank the report prints is the one p counts."""
    months = _claim(_months(), "random_baseline")
    rank = view.baseline_rank(months)
    assert rank is not None and (rank.rank, rank.of) == (1, 280)
    assert rank.rank / rank.of == pytest.approx(months.detail["p_value"])
    assert view.measured(months) == "F(C)/F(M) = 0.975, rank 1 of 280"
    fixture = _claim(full_result(), "random_baseline")  # one random circuit (0.9) beats it
    assert view.measured(fixture) == "F(C)/F(M) = 0.812, rank 2 of 201"
    # ties count against the circuit and a loss flips the order, as in the test itself
    values = [0.5, 0.7, 0.7, 0.9]
    for higher, observed, want in ((True, 0.7, 4), (True, 0.95, 1), (False, 0.6, 2)):
        test = random_baseline_test(observed, values, seed=0, higher_is_better=higher)
        claim = dataclasses.replace(
            fixture, detail={**test.to_json(), "random_values": values},
        )  # fmt: skip
        got = view.baseline_rank(claim)
        assert got is not None and (got.rank, got.of) == (want, 5)
        assert got.rank / got.of == pytest.approx(test.p_value)
    # another p-value claim still shows the p-value that decided it
    assert view.measured(_claim(full_result(), "equivalence")) == "0.43"


def test_a_failed_role_claim_says_what_it_measured_and_no_ablation() -> None:
    months = _months()
    circuit = months.circuits[0]
    role = dataclasses.replace(circuit.claims[0], verdict="fail", threshold=0.5)
    text = failure_text(role, circuit, "hypotheses/months.circ")
    assert text.splitlines() == [
        "hypotheses/months.circ:59: months_mini: role 2.0 successor(top=5) >= 0.3: FAIL",
        "  measured: 0.344 (successor score of head 2.0: the share of 32 member positions of "
        "months where the next member is in the top 5 of the vocabulary through the head's "
        "OV map)",
        "  threshold: >= 0.5; compared 0.344 >= 0.5 does not hold",
    ]
    # a measure of the circuit keeps its set-up
    faith = dataclasses.replace(circuit.claims[1], verdict="fail")
    assert "  ablation: node ablation" in failure_text(faith, circuit, "m.circ")


def test_faithfulness_figure_draws_the_claims_threshold_on_its_row() -> None:
    months = _months()
    circuit = months.circuits[0]
    fig = plots.faithfulness_fig(
        circuit.faithfulness, "set-up", thresholds=[("performance_ratio", 0.8, "line 60: >= 0.8")]
    )
    ax = fig.axes[0]
    row = [t.get_text() for t in ax.get_yticklabels()].index("performance ratio")
    drawn = [ln for ln in ax.get_lines() if ln.get_label() == "claim line 60: >= 0.8"]
    assert len(drawn) == 1
    assert list(drawn[0].get_xdata()) == [0.8, 0.8]
    low, high = drawn[0].get_ydata()
    assert low < row < high  # on the variant's own row
    (figure,) = [f for f in circuit_figures(months, circuit) if f.title == "Faithfulness"]
    assert "the red dashed line is the claim's threshold" in figure.caption
    assert "(F(C)/F(M) = 0.975, rank 1 of 280, p = 0.0036 (floor 1/280))" in figure.caption


def test_completeness_figure_draws_the_band_of_the_threshold() -> None:
    result = full_result()
    circuit = result.circuits[0]
    (figure,) = [f for f in circuit_figures(result, circuit) if f.title == "Completeness"]
    assert "the dotted lines bound |F(C \\ K) - F(M \\ K)| <= 0.3 |F(M)|" in figure.caption
    points = circuit.claims[2].detail["points"]
    png = plots.completeness_png(points, "set-up", (3.25, 2.64), band=0.3 * 3.25)
    assert png[:4] == b"\x89PNG"


def test_every_figure_has_a_caption_saying_what_to_look_for() -> None:
    for result in (full_result(), _months()):
        for circuit in result.circuits:
            for figure in circuit_figures(result, circuit):
                assert "Look for" in figure.caption, (figure.title, figure.caption)
