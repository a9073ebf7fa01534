"""The generic engine (seqcirc/forward/hooked.py, hooked_edges.py: the bridge's own forward
through its hook points) against the fast one (the hand-written GPT-2 and Llama forwards):
every claim kind, every ablation value and position option, equal to 1e-5, on the planted
GPT-2 (tests/planted.py), the tiny random Llama (tests/llama_tiny.py) and seqcirc-mini.
The two engines share no forward code: the fast one reads the weights and steps layer by
layer, the generic one runs the model's own modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.claims.evaluate import evaluate_plan
from seqcirc.claims.registry import HANDLERS
from seqcirc.engine.edges import run_edges
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.plan import AblationSpec, CircuitPlan, Claim, ModelRef, Node, Plan, TaskSpec
from seqcirc.tasks.types import TokenizedTask
from tests.cli_in_process import seqcirc
from tests.llama_tiny import bridge_of_llama, tiny_llama
from tests.planted import bridge_of, planted_hf, planted_task

SUCC, SUPP, JUNK = Node(0, 0), Node(0, 1), Node(0, 2)

NODE_CLAIMS = (
    Claim("f", "faithfulness", ">=", 0.5, bound="lower"),
    Claim("fp", "faithfulness", ">=", 0.5, bound="point"),
    Claim("nf", "normalized_faithfulness", ">=", 0.5),
    Claim("min", "minimality", ">=", 0.01),
    Claim("smin", "minimality", ">=", 0.01, params=(("signed", True),)),
    Claim("comp", "completeness", "<=", 0.5, params=(("greedy", True), ("random", 3))),
    Claim("rb", "random_baseline", "<", 0.5, params=(("n", 4),)),
    Claim("eq", "equivalence", "<", 0.5),
    Claim("suf", "sufficiency", "<", 0.5, params=(("n", 6),)),
    Claim("mt", "minimality_test", ">=", 0.5, params=(("n", 3),)),
)
EDGE_CLAIMS = (
    Claim("f", "faithfulness", ">=", 0.5, bound="lower"),
    Claim("nf", "normalized_faithfulness", ">=", 0.5),
)

SETUPS = {
    "mean": AblationSpec(),
    "mean-pooled": AblationSpec(per_position=False),
    "zero": AblationSpec(value="zero"),
    "resample": AblationSpec(value="resample"),
    "named-positions": AblationSpec(positions=("S4", "END")),
    "resample-named": AblationSpec(value="resample", positions=("END",)),
    "patch-circuit": AblationSpec(value="resample", direction="patch_circuit"),
}
EDGE_SETUPS = {
    "mean": AblationSpec(granularity="edge"),
    "mean-pooled": AblationSpec(granularity="edge", per_position=False),
    "zero": AblationSpec(granularity="edge", value="zero"),
    "resample": AblationSpec(granularity="edge", value="resample"),
}
SKIP = {"timings", "engine", "bridge_max_abs_diff"}


def numbers(obj: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a result's JSON by its path (timings and the engine's name left out)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k not in SKIP:
                out.update(numbers(v, f"{path}.{k}"))
        return out
    if isinstance(obj, list | tuple):
        return {k: v for i, x in enumerate(obj) for k, v in numbers(x, f"{path}[{i}]").items()}
    return {path: obj}


def assert_same_results(fast: Any, generic: Any, atol: float = 1e-5) -> int:
    """Every number of two evaluations within atol (strings and flags equal); the
    count of numbers compared."""
    a, b = numbers(fast.to_dict()), numbers(generic.to_dict())
    assert a.keys() == b.keys()
    compared = 0
    for k, x in a.items():
        y = b[k]
        if isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, abs=atol, nan_ok=True), k
            compared += 1
        elif k.endswith(".verdict") or not isinstance(x, float):
            assert x == y, k
    return compared


def _evaluate(bridge, task, nodes, ablation, claims, engine, edges=()):  # type: ignore[no-untyped-def]
    cp = CircuitPlan(
        name="c", model=ModelRef("m", "local"), task=TaskSpec(name="t"), ablation=ablation,
        nodes=tuple(nodes), edges=tuple(edges), claims=claims,
        groups=(("pair", tuple(nodes[:2])),) if nodes else (),
    )  # fmt: skip
    return evaluate_plan(
        bridge, Plan("p.circ", (cp,), seed=3), {"c": task}, n_boot=200, handlers=HANDLERS,
        engine=engine,
    )  # fmt: skip


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    return bridge_of(planted_hf()), planted_task()


@pytest.mark.parametrize("setup", list(SETUPS))
def test_every_node_claim_is_the_same_on_both_engines_planted(planted, setup):  # type: ignore[no-untyped-def]
    bridge, task = planted
    # Shi et al.'s sufficiency and minimality tests left out here: with four heads (two
    # of them dead) their random circuits often equal C or change nothing, and whether
    # such a difference is exactly 0 (a tie) is float rounding (the Llama below has them)
    claims = tuple(c for c in NODE_CLAIMS if c.kind not in ("sufficiency", "minimality_test"))
    results = [
        _evaluate(bridge, task, [SUCC, JUNK], SETUPS[setup], claims, engine)
        for engine in ("fast", "generic")
    ]
    assert [r.circuits[0].checks["engine"] for r in results] == ["fast", "generic"]
    assert assert_same_results(*results) > 50
    verdicts = {c.verdict for c in results[1].circuits[0].claims}
    assert "skipped" not in verdicts and "error" not in verdicts


@pytest.mark.parametrize("setup", list(EDGE_SETUPS))
def test_edge_claims_are_the_same_on_both_engines_planted(planted, setup):  # type: ignore[no-untyped-def]
    from seqcirc.plan import Edge

    bridge, task = planted
    edges = [Edge("embed", "0.0", "v"), Edge("embed", "0.0", "k"), Edge("embed", "0.0", "q"),
             Edge("0.0", "logits", "resid"), Edge("embed", "logits", "resid")]  # fmt: skip
    results = [
        _evaluate(bridge, task, [], EDGE_SETUPS[setup], EDGE_CLAIMS, engine, edges)
        for engine in ("fast", "generic")
    ]
    assert assert_same_results(*results) > 10
    c = results[1].circuits[0]
    assert abs(c.f_circuit - c.f_empty) > 0.1  # the edges carry the task: equality means something


def test_whole_model_is_exactly_one_and_nothing_is_the_empty_circuit(planted) -> None:  # type: ignore[no-untyped-def]
    bridge, task = planted
    for setup in ("mean", "resample", "zero"):
        state = prepare(bridge, task, SETUPS[setup], engine="generic")
        n = state.weights.n_nodes
        m = run_circuits(state, np.stack([np.ones(n, bool), np.zeros(n, bool)]))
        assert m[0].mean() / state.m_model.mean() == 1.0
        np.testing.assert_allclose(m[1], empty_metric(state), atol=1e-5, rtol=0)
        edge = prepare(bridge, task, EDGE_SETUPS[setup], engine="generic")
        none = run_edges(edge, np.zeros(edge.graph.n_edges, bool))
        np.testing.assert_allclose(none, empty_metric(edge), atol=1e-5, rtol=0)
        assert run_edges(edge, np.ones(edge.graph.n_edges, bool)).mean() == pytest.approx(
            edge.m_model.mean(), abs=1e-6
        )


def test_the_empty_circuits_shortcut_falls_back_to_the_full_forward(planted, monkeypatch):  # type: ignore[no-untyped-def]
    """Where the shortcut's check fails (forced here: no tolerance), every prompt gets the
    full forward with every node replaced: the same numbers, more passes."""
    import seqcirc.forward.hooked as hooked

    bridge, task = planted
    calls: list[int] = []
    real = hooked.HookedModel._replaced

    def counted(self, tokens, *args):  # type: ignore[no-untyped-def]
        calls.append(tokens.shape[0])
        return real(self, tokens, *args)

    for setup in (SETUPS["mean"], EDGE_SETUPS["mean"]):
        state = prepare(bridge, task, setup, engine="generic")
        shortcut = empty_metric(state)
        state._m_empty.clear()
        calls.clear()
        monkeypatch.setattr(hooked, "_tolerance", lambda dtype: -1.0)
        monkeypatch.setattr(hooked.HookedModel, "_replaced", counted)
        np.testing.assert_allclose(empty_metric(state), shortcut, atol=1e-5, rtol=0)
        assert calls == [2, task.n_prompts]  # the check, then every prompt
        monkeypatch.undo()


# ------------------------------------------------------------------ the tiny Llama

VOCAB, N = 40, 6


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    hf = tiny_llama(VOCAB)
    rng = np.random.default_rng(5)
    clean = rng.integers(0, VOCAB, (N, 7))
    answer_pos = np.array([6, 6, 5, 6, 4, 6])
    with torch.no_grad():  # the model's top and bottom answers: ratios far from 0 / 0
        logits = hf(torch.tensor(clean)).logits[np.arange(N), answer_pos]
    task = TokenizedTask(
        name="random", clean=clean, corrupted=rng.integers(0, VOCAB, (N, 7)),
        correct=logits.argmax(-1).numpy(), incorrect=logits.argmin(-1).numpy(),
        positions={"END": answer_pos, "S4": np.array([2, 1, 2, 3, 1, 2])},
    )  # fmt: skip
    return bridge_of_llama(hf), task


@pytest.mark.parametrize("setup", ["mean", "mean-pooled", "zero", "resample", "named-positions",
                                   "patch-circuit"])  # fmt: skip
def test_every_node_claim_is_the_same_on_both_engines_llama(llama, setup):  # type: ignore[no-untyped-def]
    bridge, task = llama
    nodes = [Node(0, 1), Node(1, 0), Node(2, 3), Node(0), Node(2)]
    results = [
        _evaluate(bridge, task, nodes, SETUPS[setup], NODE_CLAIMS, e) for e in ("fast", "generic")
    ]
    assert assert_same_results(*results) > 50
    assert "error" not in {c.verdict for c in results[1].circuits[0].claims}


# ------------------------------------------------------------------ seqcirc-mini

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model's weights are not built")
def test_claims_are_the_same_on_both_engines_seqcirc_mini() -> None:
    from seqcirc.models.load import load_model
    from seqcirc.plan import params
    from seqcirc.tasks.build import build_task

    model = load_model("seqcirc-mini")
    spec = TaskSpec(name="numerals", generator="numerals", params=params(prompts=12))
    task = build_task(spec, model.tokenizer, prepend_bos=model.identity.prepend_bos, seed=0)
    nodes = [Node(0, 1), Node(1, 1), Node(2, 0), Node(3, 1), Node(0), Node(2)]
    for setup in ("mean", "resample"):
        results = [
            _evaluate(model.bridge, task, nodes, SETUPS[setup], NODE_CLAIMS[:4], e)
            for e in ("fast", "generic")
        ]
        assert assert_same_results(*results) > 20
    edge = [prepare(model.bridge, task, EDGE_SETUPS["mean"], engine=e) for e in ("fast", "generic")]
    keep = np.random.default_rng(0).random(edge[0].graph.n_edges) < 0.3
    assert edge[0].graph.edges == edge[1].graph.edges
    a, b = run_edges(edge[0], keep), run_edges(edge[1], keep)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    assert np.abs(a - edge[0].m_model).max() > 0.5


# ------------------------------------------------------------------ the option


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model's weights are not built")
def test_seqcirc_test_engine_option_reaches_the_result(tmp_path: Path) -> None:
    import json
    import subprocess

    from seqcirc.usecases.session import Options, Session
    from tests.mini_circuits import TASK, heads_but_last

    (tmp_path / "c.circ").write_text(
        TASK + f"circuit most on seqcirc-mini {{\n  heads {heads_but_last()}\n"
        "  expect faithfulness(bound=point) >= 0.5\n}\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:  # in process: one model load
        return seqcirc("test", "c.circ", *args, cwd=tmp_path)

    proc = run("--engine", "generic", "--prompts", "12", "--json", "out.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generic = json.loads((tmp_path / "out.json").read_text())["circuits"][0]
    assert generic["checks"]["engine"] == "generic"
    fast = Session(Options(engine="fast", prompts=12)).evaluate_file(tmp_path / "c.circ")
    assert fast.circuits[0].checks["engine"] == "fast"
    value = fast.circuits[0].claims[0].value
    assert generic["claims"][0]["value"] == pytest.approx(value, abs=1e-5)
    bad = run("--engine", "fastest")
    assert bad.returncode == 2 and "E402" in bad.stderr and "Traceback" not in bad.stderr
