"""The evaluator on Llama-architecture models (seqcirc/forward/llama.py), against
independent references on a tiny random LlamaForCausalLM (tests/llama_tiny.py):

- the clean forward against Hugging Face's own logits (GQA, biases, rope scaling, ties);
- node ablation (mean, zero, resample; heads and MLPs; all and named positions) against
  hand-written TransformerLens hooks on the bridge (hook_z, hook_mlp_out);
- the empty circuit computed without a forward against a forward with every node ablated;
- `seqcirc test` of a .circ on the tiny Llama saved as a folder, end to end, its reported
  value recomputed with hooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import EvaluationError
from seqcirc.forward.gpt2 import extract_weights, forward_nodes
from seqcirc.forward.llama import LlamaWeights
from seqcirc.plan import AblationSpec, Node
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, llama_tokenizer, save_tiny_llama, tiny_llama
from tests.tasks_fixtures import random_task
from tests.test_forward_reference import _ref_nodes, run_nodes

VOCAB, SEQ, N = 40, 7, 5


@pytest.fixture(scope="module")
def hf():  # type: ignore[no-untyped-def]
    return tiny_llama(VOCAB)


@pytest.fixture(scope="module")
def bridge(hf):  # type: ignore[no-untyped-def]
    return bridge_of_llama(hf)


@pytest.fixture(scope="module")
def task() -> TokenizedTask:
    return random_task(2, VOCAB, SEQ, END=[6, 6, 5, 6, 4], S2=[2, 1, 2, 3, 1])


VARIANTS = {
    "gqa": {},
    "bias-linear-rope-tied": dict(
        attention_bias=True, mlp_bias=True, num_key_value_heads=4, tie_word_embeddings=True,
        rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0},
    ),
    "one-kv-head-theta-1e4": dict(num_key_value_heads=1, rope_theta=10000.0),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_clean_forward_equals_hugging_face_logits(variant: str) -> None:
    model = tiny_llama(VOCAB, seed=1, **VARIANTS[variant])
    tokens = torch.tensor(np.random.default_rng(3).integers(0, VOCAB, (4, 11)))
    answer_pos = torch.tensor([10, 3, 7, 0])
    with torch.no_grad():  # Hugging Face's own forward, before any bridge wraps the model
        ref = model(tokens).logits[torch.arange(4), answer_pos]
    w = extract_weights(bridge_of_llama(model))
    assert isinstance(w, LlamaWeights) and not w.supports_edges
    with torch.no_grad():
        ours = forward_nodes(w, tokens, answer_pos).logits
    assert ours is not None
    # 1e-5 of the logits' scale: float32 attention through SDPA vs transformers' kernel
    # differs by rounding only (a wrong rope, norm or head layout is off by O(1))
    scale = float(ref.abs().max())
    torch.testing.assert_close(ours, ref, atol=1e-5 * scale, rtol=0)
    assert float(ref.std()) > 0.5  # the logits are far from uniform: equality means something


def test_rope_theta_is_read_from_the_config(bridge) -> None:  # type: ignore[no-untyped-def]
    # a forward with the default theta (10000) would give other logits at later positions
    w = extract_weights(bridge)
    assert isinstance(w, LlamaWeights)
    torch.testing.assert_close(w.inv_freq, 500.0 ** -(torch.arange(0, 16, 2) / 16.0))


CIRCUITS = [
    (Node(0, 1), Node(1, 0), Node(2, 3), Node(0), Node(2)),
    (Node(1, 2),),
    (Node(0, 0), Node(0, 3), Node(1, 1), Node(1)),
]


@pytest.mark.parametrize("value", ["mean", "resample", "zero"])
@pytest.mark.parametrize("positions", [None, ("S2", "END")], ids=["all-pos", "named-pos"])
@pytest.mark.parametrize("circuit", CIRCUITS, ids=["mixed", "one-head", "heads+mlp"])
def test_node_ablation_matches_hand_written_hooks(bridge, task, value, positions, circuit):  # type: ignore[no-untyped-def]
    state = prepare(bridge, task, AblationSpec(value=value, positions=positions))
    assert state.bridge_max_abs_diff < 1e-4  # the E304 check ran and passed
    ours = run_nodes(state, circuit)
    ref = _ref_nodes(bridge, task, set(circuit), value, positions)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.abs(ours - state.m_model).max() > 0.05  # the ablation really did something


@pytest.mark.parametrize("value", ["mean", "resample", "zero"])
def test_empty_circuit_without_a_forward_equals_every_node_ablated(bridge, task, value):  # type: ignore[no-untyped-def]
    state = prepare(bridge, task, AblationSpec(value=value))
    everything_ablated = run_circuits(state, np.zeros((1, state.weights.n_nodes), dtype=bool))[0]
    np.testing.assert_allclose(empty_metric(state), everything_ablated, atol=1e-5, rtol=0)
    assert np.abs(everything_ablated - state.m_model).max() > 0.05


def test_edge_circuits_are_e302_on_the_fast_engine_and_generic_by_default(bridge, task) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EvaluationError) as info:
        prepare(bridge, task, AblationSpec(granularity="edge"), engine="fast")
    assert info.value.code == "E302"
    assert "LlamaForCausalLM" in info.value.message and "generic" in (info.value.hint or "")
    state = prepare(bridge, task, AblationSpec())
    assert state.engine == "fast"  # node circuits: the hand-written Llama forward
    with pytest.raises(EvaluationError) as info:
        _ = state.graph
    assert info.value.code == "E302"
    edges = prepare(bridge, task, AblationSpec(granularity="edge"))
    assert edges.engine == "generic" and edges.graph.n_edges > 0


LLAMA3_ROPE = {
    "rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
}  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(rope_parameters=LLAMA3_ROPE), "rope_scaling type 'llama3'"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
    ],
    ids=["llama3-rope", "gelu"],
)
def test_unsupported_configs_are_refused_with_e302(overrides, words) -> None:  # type: ignore[no-untyped-def]
    bridge = bridge_of_llama(tiny_llama(VOCAB, **overrides))
    with pytest.raises(EvaluationError) as info:
        extract_weights(bridge)
    assert info.value.code == "E302" and words in info.value.message


# ------------------------------------------------------------------ end to end

CIRC = """
task months = sequence(months, template=all, members=3, prompts=12, seed=0)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)

circuit most on "./tiny-llama" {
  heads 0.0, 0.2, 1.1, 1.3, 2.0, 2.1
  mlp 0..2
  expect faithfulness(bound=point) >= -1
}
"""


def test_seqcirc_test_runs_a_circuit_on_a_llama_folder(tmp_path: Path) -> None:
    from seqcirc.claims.faithfulness import performance_ratio
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks.build import build_task

    save_tiny_llama(tmp_path / "tiny-llama")
    (tmp_path / "most.circ").write_text(CIRC)
    seqcirc = shutil.which("seqcirc", path=str(Path(sys.executable).parent)) or "seqcirc"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [seqcirc, "test", "most.circ", "--json", "out.json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    (claim,) = result["circuits"][0]["claims"]
    reported = claim["value"]
    # the same number from the bridge with hand-written hooks, on the same prompts
    model = load_model(str(tmp_path / "tiny-llama"))
    spec = TaskSpec(name="months", generator="months", params=params(members=3, prompts=12, seed=0))
    task = build_task(spec, model.tokenizer, prepend_bos=model.identity.prepend_bos, seed=0)
    circuit = {Node(0, 0), Node(0, 2), Node(1, 1), Node(1, 3), Node(2, 0), Node(2, 1)}
    circuit |= {Node(0), Node(1), Node(2)}
    m_circuit = _ref_nodes(model.bridge, task, circuit, "mean", None)
    m_model = _ref_nodes(model.bridge, task, set(prepare(model.bridge, task).nodes), "mean", None)
    expected = performance_ratio(m_circuit, m_model)
    assert reported == pytest.approx(expected, abs=1e-4)
    assert proc.returncode == (0 if expected >= -1 else 1), proc.stdout + proc.stderr
    # Llama-2-style pieces: a month is one "▁January" token, a numeral splits off its "▁"
    tok = llama_tokenizer()
    assert tok.tokenize(" January") == ["▁January"]
    assert tok.tokenize(" 5") == ["▁", "5"]


def test_ov_logits_read_each_query_heads_kv_head(bridge) -> None:  # type: ignore[no-untyped-def]
    """Role OV scores on a GQA Llama without biases: head h's value comes from kv head
    h // 2, computed here by hand from the modules of a fresh, unwrapped copy of the model
    (the bridge wraps the modules of the model it is built on)."""
    from seqcirc.roles.ov import head_ov_logits, resid_after_block0

    hf = tiny_llama(VOCAB)  # the same seed: the fixture's weights

    tokens = np.array([[1, 5, 9, 13, 17, 21]])
    resid = resid_after_block0(bridge, tokens)[0]  # [6, d]
    heads = [0, 1, 3]
    with torch.no_grad():
        ours = head_ov_logits(bridge, 1, heads, resid)
        block = hf.model.layers[1]
        v = block.self_attn.v_proj(block.input_layernorm(resid)).unflatten(-1, (2, 16))
        W_O = block.self_attn.o_proj.weight.T.unflatten(0, (4, 16))  # [H, dh, d]
        outs = [v[:, h // 2] @ W_O[h] for h in heads]
        ref = torch.stack([hf.lm_head(hf.model.norm(o)) for o in outs], dim=1)
    torch.testing.assert_close(ours, ref, atol=1e-5 * float(ref.abs().max()), rtol=0)
    assert not torch.allclose(ours[:, 0], ours[:, 1])  # heads 0 and 1 share v but not W_O


def test_other_architectures_are_refused_with_e302_naming_the_supported_ones() -> None:
    from types import SimpleNamespace

    class GPTNeoXForCausalLM(torch.nn.Module):
        pass

    bridge = SimpleNamespace(original_model=GPTNeoXForCausalLM(), compatibility_mode=False)
    with pytest.raises(EvaluationError) as info:
        extract_weights(bridge)  # type: ignore[arg-type]
    assert info.value.code == "E302"
    assert "GPT2LMHeadModel and LlamaForCausalLM models, not GPTNeoXForCausalLM" in str(info.value)
