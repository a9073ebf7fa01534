"""prepare()'s sweeps with the last layer at the answer only (engine/prepare.py _trims) and
its clean run unembedding two tokens a prompt (_two_logits) against the same state
prepared the long way (every position of the last layer, the whole vocabulary).

Where trimming applies (one answer position for every prompt, per-position values), a
trimmed state scores every circuit, node or edge, and the empty circuit as the long one
does, with the same full-model metric and liveness figures; where a reader needs other
positions (answer positions that differ between prompts, pooled means) it is not taken;
its means are cached under their own key. Breaking the rule (trimming pooled means, or
prompts whose answers sit at different positions) fails the comparisons here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import seqcirc.engine.prepare as prep
from seqcirc.engine.edges import run_edges
from seqcirc.engine.means_cache import MeansCache
from seqcirc.engine.runner import EvalState, empty_metric, run_circuits
from seqcirc.plan import AblationSpec
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, tiny_llama
from tests.planted import bridge_of, planted_hf, planted_task

COMPLEMENT, PATCH = "ablate_complement", "patch_circuit"
SETUPS = {  # value, pooled, direction; trimmed on a task with one answer position?
    "mean": ("mean", False, COMPLEMENT, True),
    "pooled-mean": ("mean", True, COMPLEMENT, False),
    "resample": ("resample", False, COMPLEMENT, True),
    "zero": ("zero", False, COMPLEMENT, True),
    "patch": ("resample", False, PATCH, True),
}


def _spec(setup: str, granularity: str = "node") -> AblationSpec:
    value, pooled, direction, _ = SETUPS[setup]
    return AblationSpec(
        value=value, per_position=not pooled, direction=direction,  # type: ignore[arg-type]
        granularity=granularity,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture()
def decisions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """What _trims decided in this test, in order."""
    seen: list[bool] = []
    real = prep._trims

    def spy(*args: Any) -> bool:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(prep, "_trims", spy)
    yield seen


def _long_way(monkeypatch: pytest.MonkeyPatch, bridge: Any, task: TokenizedTask,
              spec: AblationSpec, metric: str = "logit_diff") -> EvalState:  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(prep, "_trims", lambda *args: False)
        m.setattr(prep, "_two_logits", lambda *args: False)
        return prep.prepare(bridge, task, spec, metric)


def _at_answer(t: torch.Tensor, pos: torch.Tensor, per_prompt_dims: int) -> torch.Tensor:
    if t.dim() == per_prompt_dims:
        return t[torch.arange(t.shape[0]), pos]
    return t[pos]


def _same_state(a: EvalState, b: EvalState) -> None:
    """The figures every claim reads: the full model's metric, the liveness figures, the
    replacement values where a circuit pass reads the last layer (the answer)."""
    scale = max(1.0, float(np.abs(b.m_model).max()))
    np.testing.assert_allclose(a.m_model, b.m_model, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(a.output_change, b.output_change, rtol=1e-5, atol=1e-6)
    assert (a.output_change > 0).tolist() == (b.output_change > 0).tolist()
    pos = a.answer_pos
    for za, zb in zip(a.values.z, b.values.z, strict=True):
        torch.testing.assert_close(_at_answer(za, pos, 4), _at_answer(zb, pos, 4))
    for ma, mb in zip(a.values.mlp, b.values.mlp, strict=True):
        torch.testing.assert_close(_at_answer(ma, pos, 3), _at_answer(mb, pos, 3))


def _masks(n_nodes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.random((12, n_nodes)) < 0.5
    return np.concatenate([masks, np.zeros((1, n_nodes), bool), np.ones((1, n_nodes), bool)])


def _same_circuits(a: EvalState, b: EvalState, seed: int = 0) -> None:
    masks = _masks(a.weights.n_nodes, seed)
    want = run_circuits(b, masks)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(run_circuits(a, masks), want, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(empty_metric(a), empty_metric(b), rtol=1e-5, atol=1e-5 * scale)
    assert np.abs(want - b.m_model).max() > 0.05 * scale  # the ablations did something


@pytest.fixture(scope="module")
def planted() -> Any:
    return bridge_of(planted_hf())


@pytest.mark.parametrize("setup", list(SETUPS))
def test_planted_gpt2_nodes_trimmed_as_the_long_way(planted, setup, decisions, monkeypatch):  # type: ignore[no-untyped-def]
    task = planted_task()
    trimmed = prep.prepare(planted, task, _spec(setup))
    assert decisions == [SETUPS[setup][3]]
    full = _long_way(monkeypatch, planted, task, _spec(setup))
    _same_state(trimmed, full)
    _same_circuits(trimmed, full)
    if SETUPS[setup][3] and setup != "zero":  # the last layer off the answer: not computed
        end = int(task.positions["END"][0])
        rest = torch.ones(task.seq_len, dtype=torch.bool)
        rest[end] = False
        last = trimmed.values.z[-1]
        assert bool((last[..., rest, :, :] == 0).all())
        assert bool((full.values.z[-1][..., rest, :, :] != 0).any())


@pytest.mark.parametrize("setup", ["mean", "resample"])
def test_planted_gpt2_edges_trimmed_as_the_long_way(planted, setup, decisions, monkeypatch):  # type: ignore[no-untyped-def]
    task = planted_task()
    trimmed = prep.prepare(planted, task, _spec(setup, "edge"))
    assert decisions == [True]
    full = _long_way(monkeypatch, planted, task, _spec(setup, "edge"))
    _same_state(trimmed, full)
    rng = np.random.default_rng(1)
    n_edges = trimmed.graph.n_edges
    for _ in range(6):
        keep = rng.random(n_edges) < 0.4
        want = run_edges(full, keep)
        np.testing.assert_allclose(run_edges(trimmed, keep), want, rtol=1e-5, atol=1e-5)


def test_answers_at_different_positions_are_not_trimmed(decisions, monkeypatch):  # type: ignore[no-untyped-def]
    """Per-position means of the last layer at one prompt's answer average every prompt
    there, answers elsewhere included: trimming would leave those out."""
    vocab, n = 40, 6
    rng = np.random.default_rng(5)
    task = TokenizedTask(
        name="random", clean=rng.integers(0, vocab, (n, 8)),
        corrupted=rng.integers(0, vocab, (n, 8)), correct=rng.integers(0, vocab, n),
        incorrect=rng.integers(0, vocab, n),
        positions={"END": np.array([7, 5, 7, 3, 6, 7])},
    )  # fmt: skip
    bridge = bridge_of_llama(tiny_llama(vocab))
    state = prep.prepare(bridge, task, AblationSpec())
    full = _long_way(monkeypatch, bridge, task, AblationSpec())
    _same_circuits(state, full, seed=3)
    torch.testing.assert_close(state.values.z[-1], full.values.z[-1], rtol=0, atol=0)
    assert decisions == [False]


@pytest.mark.parametrize("metric", ["logit_diff", "logprob", "kl"])
def test_clean_run_metric_equals_the_whole_vocabulary_s(planted, metric, monkeypatch):  # type: ignore[no-untyped-def]
    """logit_diff from two unembedded tokens a prompt: the very numbers of the whole
    vocabulary's logits; the bridge check on the same logits."""
    task = planted_task()
    got = prep.prepare(planted, task, AblationSpec(), metric)
    with monkeypatch.context() as m:
        m.setattr(prep, "_two_logits", lambda *args: False)
        want = prep.prepare(planted, task, AblationSpec(), metric)
    assert np.array_equal(got.m_model, want.m_model)
    assert got.bridge_max_abs_diff == want.bridge_max_abs_diff
    if metric == "kl":
        assert got.clean_logits is not None and want.clean_logits is not None
        assert torch.equal(got.clean_logits, want.clean_logits)


def test_trimmed_means_have_their_own_cache_key(planted, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """Means with the last layer at the answer only are zero elsewhere: a state that
    reads it elsewhere must not load them."""
    task, cache = planted_task(), MeansCache(tmp_path)
    prep.prepare(planted, task, AblationSpec(), means_cache=cache)
    assert cache.last_status == "stored"
    prep.prepare(planted, task, AblationSpec(), means_cache=cache)
    assert cache.last_status == "hit"
    with monkeypatch.context() as m:
        m.setattr(prep, "_trims", lambda *args: False)
        prep.prepare(planted, task, AblationSpec(), means_cache=cache)
    assert cache.last_status == "stored"
