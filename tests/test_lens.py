"""The logit lens (seqcirc.lens) against independent references:

- after the last block it is the model's own logits (GPT-2, Llama, seqcirc-mini);
- on the planted GPT-2 (tests/planted.py) every row, per head and MLP, equals the closed
  form of expected_logits with the heads written so far clean and the others zero;
- on a random 2-layer GPT-2 every row equals a slow forward written here in plain torch
  from the Hugging Face weights (embeddings, layer norms, attention per head, MLP);
- on the tiny Llama every block's row equals Hugging Face's hidden states decoded by
  its final RMSNorm and lm_head.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from seqcirc.lens import lens_rows, lens_table, lens_text, logit_lens
from seqcirc.tasks.types import TokenizedTask
from tests.llama_tiny import bridge_of_llama, tiny_llama
from tests.planted import bridge_of, expected_logits, planted_hf, planted_task

CLEAN_S4 = (1, 2, 3, 4, 5, 6, 7, 8)


def _ranks(logits: np.ndarray, token: int) -> int:
    return 1 + int((logits > logits[token]).sum())


def _random_task(vocab: int, n: int = 5, seq: int = 6, seed: int = 1) -> TokenizedTask:
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, vocab, (n, seq))
    return TokenizedTask(
        name="random", clean=clean, corrupted=clean.copy(),
        correct=rng.integers(0, vocab, n), incorrect=rng.integers(0, vocab, n),
        positions={"END": np.full(n, seq - 1)},
    )  # fmt: skip


def _model_logits(bridge, task):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        logits = bridge(torch.as_tensor(task.clean))
    return logits[torch.arange(task.n_prompts), torch.as_tensor(task.answer_pos)].double().numpy()


def _check_last_row(bridge, task) -> float:  # type: ignore[no-untyped-def]
    """The last row against the model's own logits: each target's logit and rank."""
    res = logit_lens(bridge, task, batch_size=3)  # batches of 3: the seams are covered
    want = _model_logits(bridge, task)
    for target, ids in (("correct", task.correct), ("last", task.incorrect)):
        got = res.values["logit"][target][-1]
        np.testing.assert_allclose(got, want[np.arange(len(ids)), ids], atol=1e-5, rtol=0)
        ranks = [_ranks(want[i], int(t)) for i, t in enumerate(ids)]
        np.testing.assert_array_equal(res.values["rank"][target][-1], ranks)
    assert res.final_max_abs_diff < 1e-5
    return res.final_max_abs_diff


# ---- the planted GPT-2: a closed form per head -------------------------------------


def test_planted_rows_follow_the_closed_form() -> None:
    bridge, task = bridge_of(planted_hf()), planted_task(CLEAN_S4)
    res = logit_lens(bridge, task, components=True)
    names = [r.name for r in res.rows]
    assert names == ["embed", "0.0", "0.1", "0.2", "0.3", "mlp0"]
    # after head 0.H: heads up to H written (clean), the later ones not yet (zero)
    written = {"embed": -1, "0.0": 0, "0.1": 1, "0.2": 2, "0.3": 3, "mlp0": 3}
    for r, name in enumerate(names):
        for i, m4 in enumerate(CLEAN_S4):
            heads = {h: ("clean" if h <= written[name] else "zero") for h in range(3)}
            want = expected_logits(m4, heads, CLEAN_S4)
            for target, tok in (("correct", m4 + 1), ("last", m4)):
                assert res.values["logit"][target][r, i] == pytest.approx(want[tok], abs=1e-5)
                assert res.values["rank"][target][r, i] == _ranks(want, tok)
                prob = math.exp(want[tok]) / np.exp(want).sum()
                assert res.values["prob"][target][r, i] == pytest.approx(prob, rel=1e-5)
    # the successor head alone lifts the answer: logit sqrt(d) c / sqrt(2 + c^2)
    assert res.values["logit"]["correct"][1, 0] == pytest.approx(math.sqrt(76) * 4 / math.sqrt(18))
    assert res.values["rank"]["last"][2].tolist() == [12] * 8  # suppressed below every token
    assert res.final_max_abs_diff < 1e-5


def test_block_rows_are_the_last_component_rows() -> None:
    bridge, task = bridge_of(planted_hf()), planted_task(CLEAN_S4)
    blocks = logit_lens(bridge, task)
    parts = logit_lens(bridge, task, components=True)
    assert [r.name for r in blocks.rows] == ["embed", "0"]
    np.testing.assert_allclose(
        blocks.values["logit"]["correct"][1], parts.values["logit"]["correct"][-1], atol=1e-6
    )


# ---- a random GPT-2 against a plain-torch forward -----------------------------------


@pytest.fixture(scope="module")
def gpt2():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_head=3, n_embd=12, n_positions=16, vocab_size=20, n_inner=24)
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # large weights, so every layer moves the logits visibly
        for name, p in hf.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.5)
    return hf


def _ln(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _slow_rows(hf: GPT2LMHeadModel, tokens: torch.Tensor) -> list[torch.Tensor]:
    """The residual stream at the last position after the embeddings, each head (b_O
    first) and each MLP: a GPT-2 forward written out from the weights (of a model no
    bridge has wrapped)."""
    tr, n_heads = hf.transformer, hf.config.n_head
    seq = tokens.shape[1]
    x = tr.wte.weight[tokens] + tr.wpe.weight[:seq]
    rows = [x[:, -1]]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    for blk in tr.h:
        qkv = _ln(x, blk.ln_1) @ blk.attn.c_attn.weight + blk.attn.c_attn.bias
        q, k, v = (t.unflatten(-1, (n_heads, -1)) for t in qkv.chunk(3, dim=-1))
        d_head = q.shape[-1]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d_head)
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        w_o, b_o = blk.attn.c_proj.weight, blk.attn.c_proj.bias
        y = x[:, -1] + b_o
        for h in range(n_heads):
            y = y + z[:, -1, h] @ w_o[h * d_head : (h + 1) * d_head]
            rows.append(y)
        x = x + z.flatten(-2) @ w_o + b_o
        pre = _ln(x, blk.ln_2) @ blk.mlp.c_fc.weight + blk.mlp.c_fc.bias
        x = x + F.gelu(pre, approximate="tanh") @ blk.mlp.c_proj.weight + blk.mlp.c_proj.bias
        rows.append(x[:, -1])
    return rows


def test_random_gpt2_rows_equal_a_plain_torch_forward(gpt2) -> None:  # type: ignore[no-untyped-def]
    task = _random_task(20)
    res = logit_lens(bridge_of(copy.deepcopy(gpt2)), task, components=True, batch_size=2)
    assert len(res.rows) == len(lens_rows(2, 3, components=True)) == 1 + 2 * (3 + 1)
    with torch.no_grad():
        rows = _slow_rows(gpt2, torch.as_tensor(task.clean))
        decoded = [(_ln(r, gpt2.transformer.ln_f) @ gpt2.lm_head.weight.T).numpy() for r in rows]
    worst = 0.0
    for r, logits in enumerate(decoded):
        for target, ids in (("correct", task.correct), ("last", task.incorrect)):
            want = logits[np.arange(len(ids)), ids]
            worst = max(worst, float(np.abs(res.values["logit"][target][r] - want).max()))
            ranks = [_ranks(logits[i], int(t)) for i, t in enumerate(ids)]
            np.testing.assert_array_equal(res.values["rank"][target][r], ranks)
    assert worst < 1e-5, worst
    # the rows differ from one another: equality above is not a constant's
    assert np.ptp(res.values["logit"]["correct"][:, 0]) > 1.0


def test_last_row_is_the_model_logits_on_gpt2(gpt2) -> None:  # type: ignore[no-untyped-def]
    _check_last_row(bridge_of(copy.deepcopy(gpt2)), _random_task(20))


# ---- Llama: RMSNorm, rope, GQA -------------------------------------------------------


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return tiny_llama(40)


def test_llama_blocks_equal_hugging_face_hidden_states(llama) -> None:  # type: ignore[no-untyped-def]
    task = _random_task(40, n=4, seq=7, seed=3)
    bridge = bridge_of_llama(copy.deepcopy(llama))  # the bridge wraps its modules in place
    res = logit_lens(bridge, task)
    with torch.no_grad():
        out = llama(torch.as_tensor(task.clean), output_hidden_states=True)
        hidden = out.hidden_states  # embeddings, then after each block (the last one normed)
        assert len(hidden) == 4
        for r in range(len(hidden) - 1):  # embeddings and every block but the last
            logits = llama.lm_head(llama.model.norm(hidden[r][:, -1])).numpy()
            for target, ids in (("correct", task.correct), ("last", task.incorrect)):
                want = logits[np.arange(4), ids]
                np.testing.assert_allclose(res.values["logit"][target][r], want, atol=1e-5, rtol=0)
    _check_last_row(bridge, task)


def test_llama_heads_sum_to_the_attention_output(llama) -> None:  # type: ignore[no-untyped-def]
    # the per-head split is checked against resid_pre + hook_attn_out inside the lens
    # (E360 otherwise); with grouped kv heads it must still hold
    res = logit_lens(bridge_of_llama(copy.deepcopy(llama)), _random_task(40, n=3), components=True)
    assert [r.name for r in res.rows][:6] == ["embed", "0.0", "0.1", "0.2", "0.3", "mlp0"]


def test_last_row_is_the_model_logits_on_seqcirc_mini() -> None:
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks import build_task

    lm = load_model("seqcirc-mini", device="cpu")
    spec = TaskSpec(name="months", generator="months", params=params(prompts=6, seed=0))
    task = build_task(spec, lm.tokenizer, prepend_bos=True, seed=0)
    _check_last_row(lm.bridge, task)
    table = lens_table(logit_lens(lm.bridge, task), lm.tokenizer)
    assert [r["row"] for r in table["rows"]] == ["embed", "0", "1", "2", "3"]
    last = table["rows"][-1]
    assert last["correct"]["median_rank"] == 1.0 and last["correct"]["top1_share"] == 1.0
    text = lens_text(table)
    assert text.splitlines()[0].startswith("after") and "block 3" in text


def test_target_ids_outside_the_vocabulary_are_refused() -> None:
    from seqcirc.errors import InputError

    task = _random_task(12)
    bad = TokenizedTask(**{**task.__dict__, "correct": np.full(task.n_prompts, 99)})
    with pytest.raises(InputError) as info:
        logit_lens(bridge_of(planted_hf()), bad)
    assert info.value.code == "E361"
