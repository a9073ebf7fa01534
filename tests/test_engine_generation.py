"""The generating metric (`metric accuracy(generate, max_new_tokens=N)`) against the
independent reference of tests/generate_reference.py (plain hooks on the Hugging Face
modules, one prompt at a time, no KV cache): the same tokens and the same accuracy, on
the tiny digit-split Llama (both engines) and on seqcirc-mini."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from seqcirc.engine.generation import Decoding, answer_patterns, generate_scores
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, node_mask, run_circuits
from seqcirc.errors import SeqcircError
from seqcirc.forward.generate import extend_values, greedy
from seqcirc.plan import AblationSpec, Node, TaskSpec, params
from seqcirc.tasks.build import build_task
from tests.digits_tiny import numerals_spec, trained_digit_llama
from tests.families import bridge_of as _bridge_of
from tests.generate_reference import GenerationReference
from tests.mini_circuits import needs_bundled

STEPS = 3


def bridge_of(model):  # type: ignore[no-untyped-def]
    """A bridge around a copy: wrapping replaces the modules the reference hooks."""
    return _bridge_of(copy.deepcopy(model))


def _engine_ids(state, keep: set[Node]) -> np.ndarray:  # type: ignore[no-untyped-def]
    w = state.weights
    mask = torch.as_tensor(node_mask(state, keep), device=w.device)
    n = state.n_prompts
    replace = (~mask)[None, None].expand(n, 1, -1)
    values = extend_values(state.values, STEPS - 1).rows(torch.arange(n))
    with torch.inference_mode():
        return greedy(w, state.clean, STEPS, replace=replace, values=values).cpu().numpy()


def _circuits(n_layers: int, n_heads: int) -> list[set[Node]]:
    every = {Node(i, h) for i in range(n_layers) for h in range(n_heads)}
    every |= {Node(i) for i in range(n_layers)}
    return [
        every - {Node(0, 0)},
        every - {Node(n_layers - 1, h) for h in range(n_heads)},
        {Node(0, 1), Node(n_layers - 1, 0), Node(0)},
        set(),
    ]


def _scores(state, keep: torch.Tensor, rows: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    assert state.generation is not None
    prompts = torch.arange(state.n_prompts)
    with torch.inference_mode():
        return generate_scores(
            state.weights, state.generation, state.clean, prompts, rows, keep=keep,
            keep_pos=state.keep_pos, values=state.values,
        )  # fmt: skip


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    model, tok = trained_digit_llama()
    task = build_task(numerals_spec(6, 1, prompts=12, seed=7), tok, prepend_bos=True)
    return model, tok, task


@pytest.mark.parametrize(
    ("engine", "value"),
    [("fast", "mean"), ("fast", "resample"), ("fast", "zero"), ("generic", "mean"),
     ("generic", "resample")],
)  # fmt: skip
def test_digit_llama_generates_as_the_reference(digits, engine: str, value: str) -> None:  # type: ignore[no-untyped-def]
    model, tok, task = digits
    assert task.decode is not None and any(len(a) == 3 for a in task.meta["correct_text"])  # " 10"
    ref = GenerationReference(model, task, value)
    state = prepare(bridge_of(model), task, AblationSpec(value=value), "accuracy", engine=engine)
    assert state.engine == engine and state.generation is not None
    circuits = _circuits(2, 4)
    full = ref.accuracy(ref.generate(_circuits(2, 4)[0] | {Node(0, 0)}, STEPS), tok.decode)
    np.testing.assert_array_equal(state.m_model, full)
    assert state.m_model.mean() > 0.5  # the trained model writes " 10" as "▁" + "1" + "0"
    masks = np.stack([node_mask(state, c) for c in circuits])
    scores = run_circuits(state, masks)
    seen = set()
    for keep, got in zip(circuits, scores, strict=True):
        want_ids = ref.generate(keep, STEPS)
        np.testing.assert_array_equal(_engine_ids(state, keep), want_ids)
        np.testing.assert_array_equal(got, ref.accuracy(want_ids, tok.decode))
        seen.add(want_ids.tobytes())
    assert len(seen) >= 3 and scores[-1].mean() < state.m_model.mean()  # ablation matters
    np.testing.assert_array_equal(empty_metric(state), scores[-1])


def test_named_positions_ablate_the_circuit_at_generated_positions(digits) -> None:  # type: ignore[no-untyped-def]
    """`ablate ... at END`: circuit nodes clean at END only; every generated position is
    off the named positions, so each step after the first runs like the empty circuit
    there (checked against the generic engine running the same mask by hand)."""
    model, _, task = digits
    bridge = bridge_of(model)
    at_end = AblationSpec(value="mean", positions=("END",))
    fast = prepare(bridge, task, at_end, "accuracy", engine="fast")
    generic = prepare(bridge, task, at_end, "accuracy", engine="generic")
    keep = torch.as_tensor(node_mask(fast, _circuits(2, 4)[0]))[None].expand(task.n_prompts, -1)
    a, b = (_scores(state, keep, rows) for state, rows in ((fast, 5), (generic, 64)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(run_circuits(fast, keep[:1].numpy())[0], a)


def test_generation_refuses_patching_edges_and_the_context(digits) -> None:  # type: ignore[no-untyped-def]
    model, tok, task = digits
    bridge = bridge_of(model)
    for ablation in (AblationSpec(value="resample", direction="patch_circuit"),
                     AblationSpec(granularity="edge")):  # fmt: skip
        with pytest.raises(SeqcircError) as info:
            prepare(bridge, task, ablation, "accuracy")
        assert info.value.code == "E328"
    spec = replace(numerals_spec(6, 1, 3), metric_params=params(generate=True, max_new_tokens=64))
    long = build_task(spec, tok, prepend_bos=True)
    with pytest.raises(SeqcircError) as info:
        prepare(bridge, long, AblationSpec(), "accuracy")
    assert info.value.code == "E328" and "context" in str(info.value)


@needs_bundled
def test_seqcirc_mini_generates_as_the_reference() -> None:
    from seqcirc.models.load import load_model

    loaded = load_model("seqcirc-mini")
    spec = TaskSpec(
        name="numerals", generator="numerals", params=params(prompts=9, seed=3, members=4,
        template="all"), metric="accuracy", metric_params=params(generate=True, max_new_tokens=2),
    )  # fmt: skip
    task = build_task(spec, loaded.tokenizer, prepend_bos=loaded.identity.prepend_bos)
    hf = loaded.bridge.original_model
    ref = GenerationReference(hf, task, "mean")
    state = prepare(loaded.bridge, task, AblationSpec(value="mean"), "accuracy")
    shape = (hf.config.n_layer, hf.config.n_head)
    circuits = _circuits(*shape)
    np.testing.assert_array_equal(
        state.m_model, ref.accuracy(ref.generate(circuits[0] | {Node(0, 0)}, 2), task.decode)
    )
    assert state.m_model.mean() > 0.5
    masks = np.stack([node_mask(state, c) for c in circuits])
    for keep, got in zip(circuits, run_circuits(state, masks), strict=True):
        want = ref.generate(keep, 2)
        np.testing.assert_array_equal(got, ref.accuracy(want, task.decode))


def test_matching_hand_worked() -> None:
    """The default: the answer as a whole word after optional whitespace; `match` with
    {answer} escaped ("1.5" is no pattern of any digit)."""
    texts = {0: " 12.", 1: " 123", 2: "12 Mary", 3: " 1", 4: "x 12", 5: " 1.5", 6: " 1x5"}
    decode = lambda ids: texts[ids[0]]  # noqa: E731
    ids = torch.arange(7)[:, None]
    default = Decoding(1, answer_patterns(None, [" 12"] * 5 + [" 1.5"] * 2), decode)
    assert default.score(ids, torch.arange(7)).tolist() == [1, 0, 1, 0, 0, 1, 0]
    dot = Decoding(1, answer_patterns(r"\s*{answer}\.", [" 12"] * 7), decode)
    assert dot.score(ids, torch.arange(7)).tolist() == [1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("engine", ["fast", "generic"])
def test_ragged_prompts_generate_as_each_prompt_alone(digits, engine: str) -> None:  # type: ignore[no-untyped-def]
    """Right-padded prompts of different lengths: each row's tokens are written after its
    own last token and its values after END are END's, so a padded batch decodes what
    each prompt decodes alone (pads and values past a prompt's END hold garbage here)."""
    model, _, task = digits
    state = prepare(bridge_of(model), task, AblationSpec(value="resample"), "accuracy",
                    engine=engine)  # fmt: skip
    w, n, seq = state.weights, 6, task.seq_len
    lengths = torch.tensor([seq, seq - 1, seq - 3, seq, seq - 2, seq - 1])
    tokens = state.clean[:n].clone()
    gen = torch.Generator().manual_seed(0)
    for i, length in enumerate(lengths.tolist()):
        tokens[i, length:] = torch.randint(3, 20, (seq - length,), generator=gen)
    values = state.values.rows(torch.arange(n))
    noisy = type(values)(
        tuple(z + (torch.arange(seq)[None, :, None, None] >= lengths[:, None, None, None]) * 9.0
              for z in values.z),
        tuple(m + (torch.arange(seq)[None, :, None] >= lengths[:, None, None]) * 9.0
              for m in values.mlp),
    )  # fmt: skip
    keep = torch.as_tensor(node_mask(state, _circuits(2, 4)[2]))
    replace = (~keep)[None, None].expand(n, 1, -1)
    with torch.inference_mode():
        padded = greedy(
            w,
            tokens,
            STEPS,
            replace=replace,
            values=extend_values(noisy, STEPS - 1, lengths - 1),
            lengths=lengths,
        )
        for i, length in enumerate(lengths.tolist()):
            alone = type(values)(
                tuple(z[i : i + 1, :length] for z in values.z),
                tuple(m[i : i + 1, :length] for m in values.mlp),
            )
            want = greedy(w, tokens[i : i + 1, :length], STEPS, replace=replace[i : i + 1],
                          values=extend_values(alone, STEPS - 1))  # fmt: skip
            np.testing.assert_array_equal(padded[i : i + 1].numpy(), want.numpy())
