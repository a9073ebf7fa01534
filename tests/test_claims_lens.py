"""Logit-lens claims (`expect lens(layer=0) rank(correct) <= 1`) evaluated on the planted
GPT-2, whose decoded logits are known in closed form (tests/planted.py): the value is
the median rank / mean logit / mean probability over the prompts, on the unablated
model, whatever the circuit; one lens run serves a circuit's lens claims."""

# ruff: noqa: F811 (the planted fixtures are imported from tests/planted_state.py)

from __future__ import annotations

import math

import numpy as np
import pytest

import seqcirc.claims.lens as lens_claims
from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.errors import InputError
from seqcirc.plan import Claim, Plan
from seqcirc.plan.compile import compile_text, require_fit
from tests.planted import expected_logits
from tests.planted_state import CLEAN_S4, SUCC, SUPP, _plan, bridge, task  # noqa: F401

FULL = {0: "clean", 1: "clean", 2: "clean"}


def _lens(cid: str, measure: str, target: str, op: str, t: float, layer: int = 0) -> Claim:
    params = (("layer", layer), ("measure", measure), ("target", target))
    return Claim(cid, "lens", op, t, params=params, text=f"lens {measure}({target})")  # type: ignore[arg-type]


def _closed_form(target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per prompt: logit, rank and probability of the target at END of the full model."""
    logits, ranks, probs = [], [], []
    for m4 in CLEAN_S4:
        z = expected_logits(m4, FULL, CLEAN_S4)
        tok = m4 + 1 if target == "correct" else m4
        logits.append(z[tok])
        ranks.append(1 + int((z > z[tok]).sum()))
        probs.append(math.exp(z[tok]) / np.exp(z).sum())
    return np.array(logits), np.array(ranks), np.array(probs)


def test_lens_claims_equal_the_closed_form(bridge, task):  # type: ignore[no-untyped-def]
    logit_c, rank_c, _ = _closed_form("correct")
    _, rank_l, prob_l = _closed_form("last")
    claims = (
        _lens("a", "rank", "correct", "<=", 1),
        _lens("b", "logit", "correct", ">=", 5.0),
        _lens("c", "prob", "last", "<", 0.01),
        _lens("d", "rank", "last", "<=", 1),
    )
    res = evaluate_plan(bridge, _plan({SUCC, SUPP}, claims=claims), {"planted": task}, n_boot=50)
    got = {c.id: c for c in res.circuits[0].claims}
    assert got["a"].value == np.median(rank_c) == 1.0 and got["a"].verdict == "pass"
    assert got["b"].value == pytest.approx(logit_c.mean(), abs=1e-5)
    assert got["b"].value == pytest.approx(math.sqrt(76) * 4 / math.sqrt(2 + 16 + 4 + 1), abs=1e-5)
    assert got["c"].value == pytest.approx(prob_l.mean(), rel=1e-5)
    assert got["d"].value == np.median(rank_l) == 12.0 and got["d"].verdict == "fail"
    np.testing.assert_allclose(got["b"].per_prompt, logit_c, atol=1e-5)
    assert got["d"].detail["statistic"] == "median" and got["d"].detail["model"] == "unablated"
    assert got["a"].detail["top1_share"] == 1.0 and got["a"].lower is None


def test_the_lens_reads_the_unablated_model_once(bridge, task, monkeypatch):  # type: ignore[no-untyped-def]
    calls = []
    real = lens_claims.logit_lens

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lens_claims, "logit_lens", counted)
    monkeypatch.setattr(lens_claims, "_LAST", [])
    claims = (_lens("a", "logit", "correct", ">=", 0), _lens("b", "logit", "last", "<=", 0))
    values = []
    for circuit in ({SUCC}, {SUCC, SUPP}):  # different circuits, one task: the same lens
        res = evaluate_plan(bridge, _plan(circuit, claims=claims), {"planted": task}, n_boot=50)
        values.append([c.value for c in res.circuits[0].claims])
    assert values[0] == values[1]
    assert len(calls) == 1


def test_a_layer_beyond_the_model_is_an_error(bridge, task):  # type: ignore[no-untyped-def]
    res = evaluate_plan(
        bridge, _plan({SUCC}, claims=(_lens("a", "rank", "correct", "<=", 1, layer=3),)),
        {"planted": task}, n_boot=50,
    )  # fmt: skip
    claim = res.circuits[0].claims[0]
    assert claim.verdict == "error" and "[E361]" in (claim.message or "")


def test_require_fit_bounds_the_layer_by_the_loaded_model() -> None:
    plan: Plan = compile_text(
        "task months = sequence(months, prompts=6)\n"
        "circuit c on seqcirc-mini {\n  heads 1.0\n  expect lens(layer=3) rank(correct) <= 1\n}\n",
        "x.circ",
    )
    require_fit(plan, 226, 64, n_layers=4)
    with pytest.raises(InputError) as info:
        require_fit(plan, 226, 64, n_layers=2)
    assert info.value.code == "E221" and info.value.span is not None
    assert info.value.span.line == 4


def test_a_lens_claim_in_a_file_through_the_session(tmp_path):  # type: ignore[no-untyped-def]
    # `seqcirc test`'s path: the file's task built for seqcirc-mini, the lens on it
    from seqcirc.lens import logit_lens
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks import build_task
    from seqcirc.usecases.session import Options, Session

    circ = tmp_path / "lens.circ"
    circ.write_text(
        "task months = sequence(months, prompts=6)\n"
        "circuit c on seqcirc-mini {\n  heads 1.0, 2.1\n  mlp 0..3\n"
        "  expect lens(layer=3) rank(correct) <= 1\n"
        "  expect lens(layer=0) logit(last) < 100\n}\n"
    )
    result = Session(Options(device="cpu", n_boot=100)).evaluate_file(circ)
    claims = {c.line: c for c in result.circuits[0].claims}
    assert claims[5].verdict == "pass" and claims[5].value == 1.0
    lm = load_model("seqcirc-mini", device="cpu")
    spec = TaskSpec(name="months", generator="months", params=params(prompts=6, seed=0))
    task = build_task(spec, lm.tokenizer, prepend_bos=True, seed=0)
    want = logit_lens(lm.bridge, task).per_prompt("0", "logit", "last")
    np.testing.assert_allclose(claims[6].per_prompt, want, atol=1e-6)
