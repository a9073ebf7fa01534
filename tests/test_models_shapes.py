"""seqcirc.models.shapes reads every family's config.json spelling (issue 17): head_dim
where a config sets it (Gemma, Qwen3: not d_model / n_heads), key/value heads, GPT-Neo's
and Falcon's names, a multimodal config's text_config, and whether blocks run attention
and MLP in parallel, which the checks use to refuse a head -> own-layer MLP edge there.
Each family's tiny model's saved config is read to the bridge's sizes in
tests/test_forward_families.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcirc.checks.checker import check_text
from seqcirc.errors import DiagnosticsError, ModelUnavailableError
from seqcirc.models.shapes import KNOWN_SHAPES, ModelShape, shape_from_config, shape_of

# Gemma-2-2B's sizes as its config.json states them: 8 heads of 256 on a 2304-wide stream
GEMMA2 = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304,
    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
    "head_dim": 256, "intermediate_size": 9216, "vocab_size": 256000,
    "max_position_embeddings": 8192,
}  # fmt: skip


def test_head_dim_and_key_value_heads_are_read_not_derived() -> None:
    shape = shape_from_config(GEMMA2)
    assert (shape.n_heads, shape.n_kv_heads, shape.d_head, shape.d_model) == (8, 4, 256, 2304)
    assert (shape.d_mlp, shape.d_vocab, shape.n_ctx, shape.parallel) == (9216, 256000, 8192, False)
    no_head_dim = {k: v for k, v in GEMMA2.items() if k != "head_dim"}
    assert shape_from_config(no_head_dim).d_head == 288  # d_model / n_heads when unset


@pytest.mark.parametrize(
    ("config", "n_kv"),
    [
        ({"num_key_value_heads": 2}, 2),
        ({}, 8),  # no grouped-query attention: one kv head per head
        ({"multi_query": True}, 1),  # Falcon-7B, GPTBigCode
        ({"multi_query": True, "num_kv_heads": 8}, 1),  # old Falcon ignores num_kv_heads
        ({"new_decoder_architecture": True, "multi_query": True, "num_kv_heads": 4}, 4),
    ],
)
def test_key_value_heads(config: dict[str, object], n_kv: int) -> None:
    base = {"num_hidden_layers": 2, "num_attention_heads": 8, "hidden_size": 64}
    assert shape_from_config({**base, **config}).n_kv_heads == n_kv


def test_other_spellings_and_a_multimodal_text_config() -> None:
    neo = {
        "num_layers": 4,
        "num_heads": 2,
        "hidden_size": 32,
        "architectures": ["GPTNeoForCausalLM"],
    }
    assert (shape_from_config(neo).n_layers, shape_from_config(neo).n_heads) == (4, 2)
    falcon = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
              "ffn_hidden_size": 80, "architectures": ["FalconForCausalLM"]}  # fmt: skip
    assert shape_from_config(falcon).d_mlp == 80 and shape_from_config(falcon).parallel
    gemma3 = {"architectures": ["Gemma3ForConditionalGeneration"], "vision_config": {},
              "text_config": {**GEMMA2, "num_hidden_layers": 34}}  # fmt: skip
    shape = shape_from_config(gemma3)
    assert (shape.n_layers, shape.d_head, shape.architecture) == (
        34, 256, "Gemma3ForConditionalGeneration",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "flags", "parallel"),
    [
        ("GPTNeoXForCausalLM", {}, True),  # the class's default when config.json omits it
        ("GPTNeoXForCausalLM", {"use_parallel_residual": False}, False),
        ("StableLmForCausalLM", {}, False),
        ("StableLmForCausalLM", {"use_parallel_residual": True}, True),
        ("GPTJForCausalLM", {}, True),
        ("PhiForCausalLM", {}, True),
        ("CohereForCausalLM", {}, True),
        ("FalconForCausalLM", {"parallel_attn": False}, False),
        ("LlamaForCausalLM", {}, False),
    ],
)
def test_parallel_blocks(arch: str, flags: dict[str, object], parallel: bool) -> None:
    config = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
              "architectures": [arch], **flags}  # fmt: skip
    assert shape_from_config(config).parallel is parallel


def test_tables_default_to_one_kv_head_per_head_and_know_pythia_is_parallel() -> None:
    assert ModelShape(2, 4, 32, 8, 128, 10, 16, "GPT2LMHeadModel").n_kv_heads == 4
    assert KNOWN_SHAPES["EleutherAI/pythia-70m"].parallel
    assert not KNOWN_SHAPES["gpt2"].parallel


def test_heads_that_cannot_share_kv_heads_are_e503(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**GEMMA2, "num_key_value_heads": 3}))
    with pytest.raises(ModelUnavailableError) as info:
        shape_of("bad", tmp_path)
    assert info.value.code == "E503"
    assert "8 attention heads cannot share 3 key/value heads" in info.value.message


TASK = """task months = sequence(months, template=all, members=3, prompts=3)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)
"""


@pytest.mark.parametrize(
    ("arch", "flags", "refused"),
    [
        ("GPTJForCausalLM", {}, True),
        ("GPTNeoXForCausalLM", {}, True),
        ("GPTNeoXForCausalLM", {"use_parallel_residual": False}, False),
        ("LlamaForCausalLM", {}, False),
    ],
)
def test_a_head_feeds_its_own_layers_mlp_only_in_sequential_blocks(tmp_path, arch, flags, refused):  # type: ignore[no-untyped-def]
    folder = tmp_path / "m"
    folder.mkdir()
    config = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
              "architectures": [arch], **flags}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    text = f'{TASK}circuit c on "m" {{\n  ablate edges\n  edge 0.1 -> mlp 0\n}}\n'
    path = str(tmp_path / "c.circ")
    if not refused:
        check_text(text, path)
        return
    with pytest.raises(DiagnosticsError) as info:
        check_text(text, path)
    assert [d.code for d in info.value.diagnostics] == ["E230"]
