"""A .circ file, compiled by the language, evaluated on the bundled model end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"
pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model is not built")

CIRC = """\
seed 3
task numerals = sequence(numerals, prompts=24)

circuit mini on seqcirc-mini {
  ablate nodes mean
  group early = 0.0, 0.1
  heads 1.1, 2.0
  mlp 0..2
  expect faithfulness >= 0.5
  expect faithfulness(variant=normalized, bound=point) >= 0.5
  expect minimality >= 0.01
  expect completeness(random=4, groups) <= 0.9
  expect beats random(n=20) at p < 0.05
}
"""


def _evaluate(text: str = CIRC):  # type: ignore[no-untyped-def]
    from seqcirc.claims.evaluate import evaluate_plan
    from seqcirc.claims.registry import HANDLERS
    from seqcirc.models.load import load_model
    from seqcirc.plan.compile import compile_text
    from seqcirc.tasks.build import build_task

    plan = compile_text(text, "mini.circ")
    model = load_model("seqcirc-mini")

    def task_for(cp):  # type: ignore[no-untyped-def]
        return build_task(
            cp.task, model.tokenizer, prepend_bos=model.identity.prepend_bos, seed=plan.seed
        )

    return evaluate_plan(model, plan, task_for, n_boot=500, handlers=HANDLERS)


def test_circ_file_on_the_bundled_model() -> None:
    res = _evaluate()
    c = res.circuits[0]
    m_c, m_m, m_e = (np.array(c.per_prompt[k]) for k in ("circuit", "model", "empty"))
    assert len(m_c) == len(m_m) == len(m_e) == 24
    by_kind = {cl.kind: cl for cl in c.claims}
    ratio = by_kind["faithfulness"]
    assert ratio.value == pytest.approx(m_c.mean() / m_m.mean(), rel=1e-12)
    assert ratio.bound == "lower" and ratio.compared == ratio.lower
    assert ratio.verdict == ("pass" if ratio.lower >= 0.5 else "fail")
    norm = by_kind["normalized_faithfulness"]
    want = (m_c.mean() - m_e.mean()) / (m_m.mean() - m_e.mean())
    assert norm.value == pytest.approx(want, rel=1e-12) and norm.compared == norm.value
    mini = by_kind["minimality"]
    assert set(mini.detail["per_node"]) == set(c.nodes)
    assert mini.value == min(v["score"] for v in mini.detail["per_node"].values())
    comp = by_kind["completeness"]
    assert len(comp.detail["points"]) == 4 + 1  # 4 random subsets + the role group
    rb = by_kind["random_baseline"]  # its p-value: (1 + #{random >= observed}) / 21
    assert (
        rb.value == (1 + sum(v >= rb.detail["observed"] for v in rb.detail["random_values"])) / 21
    )
    assert rb.verdict == ("pass" if rb.value < 0.05 else "fail") and rb.seed is not None
    assert res.model["name"] == "seqcirc-mini" and res.model["compatibility_mode"] is False
    assert c.checks["bridge_max_abs_diff"] < 1e-4
    assert res.seed == 3 and "torch" in res.versions


def test_same_file_same_numbers() -> None:
    def strip(res):  # type: ignore[no-untyped-def]
        d = res.to_dict()
        d.pop("timings")
        for c in d["circuits"]:
            c.pop("timings")
        return d

    assert strip(_evaluate()) == strip(_evaluate())


def test_a_claims_draws_do_not_follow_its_line_or_threshold() -> None:
    """Seeds come from what a claim measures: a comment above it or another threshold
    must not move its p-value (the claim id, which holds the line, changes)."""
    moved = CIRC.replace(
        "  expect beats random(n=20) at p < 0.05",
        "  # a comment that shifts the claim down a line\n  expect beats random(n=20) at p < 0.1",
    )
    a, b = (
        {cl.kind: cl for cl in _evaluate(t).circuits[0].claims}["random_baseline"]
        for t in (CIRC, moved)
    )
    assert a.id != b.id and a.threshold != b.threshold
    assert a.seed == b.seed and a.value == b.value
    assert a.detail["random_values"] == b.detail["random_values"]
