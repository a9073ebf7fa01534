"""Signed minimality and harmful components (issue 23) on the planted GPT-2, whose junk
head 0.2 writes off the unembedding: it only grows the residual's norm, so the layer norm
shrinks the logit difference and taking 0.2 out of a circuit *raises* F(C) on every
prompt (tests/planted.py, closed form). The successor head 0.0 is the helpful one."""

# ruff: noqa: F811 (the planted fixtures are imported from tests/planted_state.py)

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from rich.console import Console

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.claims.measures import minimality
from seqcirc.claims.removals import removals
from seqcirc.engine.runner import node_mask, run_circuits
from seqcirc.errors import DiagnosticsError
from seqcirc.plan import Claim
from seqcirc.plan.compile import compile_text
from seqcirc.report import print_terminal
from seqcirc.report.html_report import html_report
from seqcirc.report.markdown import markdown
from seqcirc.results import EvaluationResult
from tests.planted_state import (  # noqa: F401 (fixtures)
    F_M,
    JUNK,
    SUCC,
    SUPP,
    F,
    _plan,
    bridge,
    expected,
    state,
    task,
)

CIRCUIT = [SUCC, SUPP, JUNK]
FC = F(set(CIRCUIT))


def test_signed_drop_is_negative_for_the_harmful_head_and_positive_for_the_helpful(state):  # type: ignore[no-untyped-def]
    got = {e.node: e for e in minimality(state, CIRCUIT)}
    junk = (FC - F({SUCC, SUPP})) / F_M
    succ = (FC - F({SUPP, JUNK})) / F_M
    assert junk < -0.01 and succ > 0.3  # the closed form itself: harm and help
    assert got["0.2"].signed == pytest.approx(junk, abs=1e-6)
    assert got["0.0"].signed == pytest.approx(succ, abs=1e-6)
    # the absolute form is unchanged: |drop|, so the harmful head looks as necessary
    assert got["0.2"].score == pytest.approx(abs(junk), abs=1e-6)
    # with a role group, signed is the larger of the two signed drops (K = {} and K = rest)
    grouped = {e.node: e for e in minimality(state, CIRCUIT, {"writers": [SUCC, SUPP]})}
    in_group = (F({SUCC, JUNK}) - F({JUNK})) / F_M  # K = {0.1}
    assert grouped["0.0"].signed == pytest.approx(max(succ, in_group), abs=1e-6)


def test_removal_table_flags_the_harmful_node_and_group_only(state):  # type: ignore[no-untyped-def]
    m_c = run_circuits(state, node_mask(state, CIRCUIT)[None])[0]
    groups = {"writers": [SUCC, SUPP], "junk": [JUNK]}
    table = removals(state, CIRCUIT, groups, m_c, seed=3, n_boot=500, level=0.95)
    nodes = {e["removed"]: e for e in table["nodes"]}
    assert nodes["0.2"]["f_circuit"] == pytest.approx(FC / F_M, abs=1e-6)
    assert nodes["0.2"]["f_without"] == pytest.approx(F({SUCC, SUPP}) / F_M, abs=1e-6)
    assert nodes["0.2"]["signed_drop"] == pytest.approx((FC - F({SUCC, SUPP})) / F_M, abs=1e-6)
    # every prompt rises without 0.2, so the whole bootstrap distribution is above 0
    per_prompt_rise = expected({SUCC, SUPP}) - expected(set(CIRCUIT))
    assert (per_prompt_rise > 0).all()
    assert 0 < nodes["0.2"]["rise_lower"] <= -nodes["0.2"]["signed_drop"]
    assert nodes["0.2"]["harmful"] and not nodes["0.0"]["harmful"]
    assert not nodes["0.1"]["harmful"] and nodes["0.0"]["rise_upper"] < 0
    assert [(e["kind"], e["removed"]) for e in table["harmful"]] == [
        ("node", "0.2"),
        ("group", "junk"),
    ]
    assert table["forward_rows"] == 5 * state.n_prompts  # one row per node or group, per prompt


def test_no_flag_when_nothing_hurts(state):  # type: ignore[no-untyped-def]
    m_c = run_circuits(state, node_mask(state, [SUCC, SUPP])[None])[0]
    table = removals(state, [SUCC, SUPP], {"writers": [SUCC, SUPP]}, m_c, seed=0, n_boot=300,
                     level=0.95)  # fmt: skip
    assert table["harmful"] == [] and all(e["signed_drop"] > 0 for e in table["nodes"])


@pytest.fixture(scope="module")
def evaluated(bridge, task):  # type: ignore[no-untyped-def]
    claims = (
        Claim("abs", "minimality", ">=", 0.01, text="expect minimality >= 0.01"),
        Claim("sig", "minimality", ">=", 0.01, params=(("signed", True),),
              text="expect minimality(signed) >= 0.01"),
        Claim("f", "faithfulness", ">=", 0.5, bound="lower", text="expect faithfulness >= 0.5"),
    )  # fmt: skip
    # 0.1 stays outside: a circuit of every live node would fail the liveness check (E305)
    plan = _plan([SUCC, JUNK], claims=claims)
    return evaluate_plan(bridge, plan, {"planted": task}, n_boot=300)


def test_signed_claim_fails_where_the_absolute_one_passes(evaluated):  # type: ignore[no-untyped-def]
    c = evaluated.circuits[0]
    absolute, signed = c.claim("abs"), c.claim("sig")
    junk = (F({SUCC, JUNK}) - F({SUCC})) / F_M
    assert junk < -0.01 < 0.01 < -junk  # absolute 0.01 passes, signed fails
    assert absolute.verdict == "pass" and signed.verdict == "fail"
    assert signed.value == pytest.approx(junk, abs=1e-6)
    assert signed.detail["form"] == "signed" and absolute.detail["form"] == "absolute"
    row = signed.detail["per_node"]["0.2"]
    assert row["signed"] == pytest.approx(junk, abs=1e-6)
    assert row["score"] == pytest.approx(-junk, abs=1e-6)


def test_circuit_result_carries_the_table_and_json_round_trips(evaluated):  # type: ignore[no-untyped-def]
    c = evaluated.circuits[0]
    assert [e["removed"] for e in c.harmful] == ["0.2"]  # the group writers (0.0) helps
    # the table's rows are counted apart: forward_rows is the claims' and circuit's alone
    assert c.removals is not None and c.removals["forward_rows"] == 3 * len(expected(set()))
    back = EvaluationResult.from_json(evaluated.to_json())
    assert back == evaluated
    # a result written before the field existed still loads
    raw = json.loads(evaluated.to_json())
    del raw["circuits"][0]["removals"]
    old = EvaluationResult.from_json(json.dumps(raw))
    assert old.circuits[0].removals is None and old.circuits[0].harmful == []


def test_every_report_flags_the_harmful_node_and_states_the_compared_bound(evaluated):  # type: ignore[no-untyped-def]
    c = evaluated.circuits[0]
    e = c.harmful[0]
    line = (
        f"removing 0.2 raises F(C)/F(M) from {e['f_circuit']:.4f} to {e['f_without']:.4f} "
        f"[95% CI of the rise {e['rise_lower']:.4f}, {e['rise_upper']:.4f}]: "
        "it works against the circuit"
    )
    buf = io.StringIO()
    print_terminal(evaluated, Console(file=buf, width=300))
    out = buf.getvalue()
    assert f"warning: {line}" in out
    basis = f"compared with the lower 95% bootstrap bound {c.claim('f').compared:.3f}"
    assert basis in out and f"point value {c.claim('f').value:.3f}" in out
    md = markdown(evaluated)
    assert f"> ⚠️ **harmful:** {line}" in md and basis in md
    html = html_report(evaluated, plots=False)
    assert '<tr class="harmful"><td>0.2</td>' in html and line in html and basis in html
    assert html.count('<tr class="harmful">') == 1
    # bound=point: the point value was compared, the interval shown beside it
    point = dataclasses.replace(c.claim("f"), bound="point", compared=c.claim("f").value)
    one = dataclasses.replace(c, claims=(point,), removals=None)
    md = markdown(dataclasses.replace(evaluated, circuits=(one,)))
    assert f">= 0.5 compared with the point value {point.value:.3f}" in md
    assert "harmful" not in md


def test_signed_is_a_flag_of_minimality_in_the_language() -> None:
    head = "task months = sequence(months)\ncircuit months on gpt2-small {\n  heads 9.1\n"
    plan = compile_text(head + "  expect minimality(signed) >= -0.01\n}\n")
    (claim,) = plan.circuits[0].claims
    assert claim.kind == "minimality" and dict(claim.params) == {"signed": True}
    for bad in ("minimality(signed=2) >= 0.01", "minimality >= -0.01"):
        with pytest.raises(DiagnosticsError) as info:
            compile_text(head + f"  expect {bad}\n}}\n")
        assert [d.code for d in info.value.diagnostics] == ["E251" if "signed=" in bad else "E250"]
