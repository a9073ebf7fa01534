"""The runner's shared, trimmed forward (seqcirc.forward.nodes with Sharing; the last layer
at the answer position only; steps whose output is replaced everywhere skipped) against a
slow reference written out here: one circuit at a time, every layer at every position,
every node computed, nothing shared.

On the planted GPT-2 (tests/planted.py), the tiny Llama (tests/llama_tiny.py, answer
positions that differ between prompts) and the bundled seqcirc-mini; for every ablation
value (mean, pooled mean, resample, zero), both directions, all and named positions; with
masks that share prefixes, masks that share nothing and duplicates, in chunks that split
the groups of shared prefixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqcirc.engine.metric import per_prompt
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import EvalState, circuit_chunks, clean_logits_at, run_circuits
from seqcirc.forward.common import gather_pos
from seqcirc.forward.nodes import Groups
from seqcirc.plan import AblationSpec
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, tiny_llama
from tests.planted import bridge_of, planted_hf, planted_task

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"

COMPLEMENT, PATCH = "ablate_complement", "patch_circuit"
# (value, pooled, direction, named positions?)
SETUPS = {
    "mean": ("mean", False, COMPLEMENT, False),
    "pooled-mean": ("mean", True, COMPLEMENT, False),
    "resample": ("resample", False, COMPLEMENT, False),
    "zero": ("zero", False, COMPLEMENT, False),
    "patch": ("resample", False, PATCH, False),
    "mean-named-positions": ("mean", False, COMPLEMENT, True),
    "patch-named-positions": ("resample", False, PATCH, True),
}


def spec(setup: str, positions: tuple[str, ...]) -> AblationSpec:
    value, pooled, direction, named = SETUPS[setup]
    return AblationSpec(
        value=value, per_position=not pooled, direction=direction,  # type: ignore[arg-type]
        positions=positions if named else None,
    )  # fmt: skip


def reference(state: EvalState, keep: np.ndarray) -> np.ndarray:
    """Per-prompt metric [n] of one circuit: the plain forward, every position, no sharing."""
    w, patch = state.weights, state.ablation.patches_circuit
    tokens = state.corrupted if patch else state.clean
    kept = torch.as_tensor(keep)[None, None, :]
    if state.keep_pos is not None:
        kept = kept & state.keep_pos[:, :, None]
    replace = kept if patch else ~kept  # [n, S or 1, n_nodes]
    values, n_h = state.values, w.n_heads
    with torch.inference_mode():
        resid = w.embed(tokens)
        for layer in range(w.n_layers):
            z = w.attention(layer, resid)
            heads = replace[..., layer * n_h : (layer + 1) * n_h, None]
            resid = w.add_heads(layer, resid, torch.where(heads, values.z[layer], z))
            mlp = replace[..., w.n_layers * n_h + layer, None]
            resid = resid + torch.where(mlp, values.mlp[layer], w.mlp(layer, resid))
        logits = w.unembed(gather_pos(resid, state.answer_pos))
    return per_prompt(
        state.metric, logits, state.correct, state.incorrect, clean_logits_at(state, None)
    )


def shared_and_unshared_masks(n_layers: int, n_heads: int, seed: int) -> np.ndarray:
    """Masks that share prefixes (a few bases, each varied in its later layers only),
    random masks that share nothing in particular, the empty and full circuits and
    duplicates; shuffled, so the runner's sort has work to do."""
    rng = np.random.default_rng(seed)
    n_nodes = n_layers * (n_heads + 1)
    later = np.zeros(n_nodes, dtype=bool)  # the last layer's heads and MLP
    later[(n_layers - 1) * n_heads : n_layers * n_heads] = True
    later[-1] = True
    bases = rng.random((3, n_nodes)) < 0.5
    varied = [np.where(later, rng.random(n_nodes) < 0.5, b) for b in bases for _ in range(5)]
    random = rng.random((12, n_nodes)) < 0.5
    edge = np.stack([np.zeros(n_nodes, dtype=bool), np.ones(n_nodes, dtype=bool)])
    masks = np.concatenate([np.stack(varied), random, edge, random[:3]])
    return masks[rng.permutation(len(masks))]


def check(state: EvalState, masks: np.ndarray) -> None:
    want = np.stack([reference(state, m) for m in masks])
    scale = max(1.0, float(np.abs(want).max()))
    for rows in (state.batch_rows, 7, 3):  # the default chunks and chunks that split groups
        state.batch_rows = rows
        got = run_circuits(state, masks)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=str(rows))
    assert np.abs(want - state.m_model).max() > 0.05 * scale  # the ablations did something


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    return bridge_of(planted_hf())


@pytest.mark.parametrize("setup", list(SETUPS))
def test_planted_gpt2_every_mask(planted, setup: str) -> None:  # type: ignore[no-untyped-def]
    state = prepare(planted, planted_task(), spec(setup, ("S4", "END")))
    n = state.weights.n_nodes
    every = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1  # all 32 circuits
    check(state, np.concatenate([every, every[::7]]).astype(bool))


LLAMA_VOCAB, LLAMA_N = 40, 6


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return bridge_of_llama(tiny_llama(LLAMA_VOCAB))


@pytest.fixture(scope="module")
def llama_task() -> TokenizedTask:
    rng = np.random.default_rng(5)
    n, v = LLAMA_N, LLAMA_VOCAB
    return TokenizedTask(
        name="random",
        clean=rng.integers(0, v, (n, 8)),
        corrupted=rng.integers(0, v, (n, 8)),
        correct=rng.integers(0, v, n),
        incorrect=rng.integers(0, v, n),
        positions={"END": np.array([7, 5, 7, 3, 6, 7]), "S2": np.array([2, 1, 2, 3, 1, 0])},
    )


@pytest.mark.parametrize("setup", list(SETUPS))
def test_tiny_llama(llama, llama_task, setup: str) -> None:  # type: ignore[no-untyped-def]
    state = prepare(llama, llama_task, spec(setup, ("S2", "END")))
    w = state.weights
    check(state, shared_and_unshared_masks(w.n_layers, w.n_heads, seed=1))


@pytest.fixture(scope="module")
def mini():  # type: ignore[no-untyped-def]
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks.build import build_task

    model = load_model("seqcirc-mini")
    task_spec = TaskSpec(name="numerals", generator="numerals", params=params(prompts=12))
    task = build_task(task_spec, model.tokenizer, prepend_bos=model.identity.prepend_bos, seed=0)
    return model.bridge, task


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model's weights are not built")
@pytest.mark.parametrize("setup", list(SETUPS))
def test_seqcirc_mini(mini, setup: str) -> None:  # type: ignore[no-untyped-def]
    bridge, task = mini
    state = prepare(bridge, task, spec(setup, ("S4", "END")))
    w = state.weights
    masks = shared_and_unshared_masks(w.n_layers, w.n_heads, seed=2)
    # and a baseline's size class: 5 of the 8 heads, 3 of the 4 MLPs (a sample of them)
    rng = np.random.default_rng(3)
    size_class = np.zeros((24, w.n_nodes), dtype=bool)
    for row in size_class:
        row[rng.choice(8, 5, replace=False)] = True
        row[8 + rng.choice(4, 3, replace=False)] = True
    check(state, np.concatenate([masks, size_class]))


def test_chunks_cover_every_row_once_within_the_budget() -> None:
    for r_count, n, rows in [(40, 8, 5), (40, 8, 400), (223, 384, 411), (3, 10, 4), (7, 2, 3)]:
        seen = np.zeros((r_count, n), dtype=int)
        for circuits, prompt_blocks in circuit_chunks(r_count, n, rows):
            for prompts in prompt_blocks:
                size = (circuits.stop - circuits.start) * (prompts.stop - prompts.start)
                assert size <= rows
                seen[circuits, prompts] += 1
        assert (seen == 1).all()


def test_groups_number_by_first_row_and_repeat_per_prompt() -> None:
    g = Groups.of(torch.tensor([7, 3, 7, 5, 3]))
    assert g.inv.tolist() == [0, 1, 0, 2, 1] and g.rep.tolist() == [0, 1, 3]
    per_prompt_rows = g.times(2)  # row i * 2 + j: circuit i on prompt j
    assert per_prompt_rows.inv.tolist() == [0, 1, 2, 3, 0, 1, 4, 5, 2, 3]
    assert per_prompt_rows.rep.tolist() == [0, 1, 2, 3, 6, 7]
