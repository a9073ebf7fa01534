"""OV scores against a slow reference (the paper's recipe, head by head, with
torch.topk) on a random GPT-2 whose layer norms and biases are not the identity, for
every ordered set the tasks know."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqcirc.roles import ov as ov_module
from seqcirc.roles import ov_scores, scan_roles
from seqcirc.roles.members import bos_id, member_contexts, member_tokens
from seqcirc.tasks.sets import DEFAULT_RANGE, ORDERED_SETS

SETS = list(ORDERED_SETS)


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", "<unk>"]
    for name in SETS:
        words += [w for w in ORDERED_SETS[name][: DEFAULT_RANGE[name]] if w not in words]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", unk_token="<unk>")


@pytest.fixture(scope="module")
def bridge(tokenizer):
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=len(tokenizer), n_positions=48)
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                p.add_(0.3 * torch.randn_like(p))  # layer norms that are not the identity
            elif name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.mul_(8.0)  # larger weights: OV maps with clear preferences
    return build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf.config)


def _reference(bridge, tokenizer, set_name, target, k):
    """The paper's get_next_scores/get_copy_scores, one head at a time, with topk."""
    toks = member_tokens(tokenizer, set_name)
    ctx = member_contexts(toks, "prompts", bos_id(bridge, tokenizer))
    _, cache = bridge.run_with_cache(torch.as_tensor(ctx.tokens))
    resid = cache["blocks.0.hook_resid_post"]
    shape = (bridge.cfg.n_layers, bridge.cfg.n_heads)
    topk, first = np.zeros(shape), np.zeros(shape)
    for layer in range(shape[0]):
        z0 = bridge.blocks[layer].ln1(resid)
        for head in range(shape[1]):
            v = z0 @ bridge.W_V[layer, head] + bridge.b_V[layer, head]
            logits = bridge.unembed(bridge.ln_final(v @ bridge.W_O[layer, head]))
            hits = firsts = 0
            for p, pos, m in zip(ctx.prompt, ctx.pos, ctx.member, strict=True):
                t = m + 1 if target == "next" else m
                row = logits[p, pos]
                top = set(torch.topk(row, k).indices.tolist())
                hits += bool(top & toks.spellings[t])
                firsts += int(torch.tensor(toks.ids)[row[list(toks.ids)].argmax()]) == toks.ids[t]
            topk[layer, head] = hits / len(ctx.member)
            first[layer, head] = firsts / len(ctx.member)
    return topk, first


@pytest.mark.parametrize("set_name", SETS)
def test_ov_scores_match_the_reference(bridge, tokenizer, set_name, monkeypatch):
    monkeypatch.setattr(ov_module, "_CHUNK_ELEMENTS", 3 * 4 * len(tokenizer))  # chunks of 3
    for target in ("next", "self"):
        got = ov_module.ov_scores(bridge, tokenizer, set_name, target=target, top_k=5)
        ref_topk, ref_first = _reference(bridge, tokenizer, set_name, target, 5)
        np.testing.assert_allclose(got.topk, ref_topk)
        np.testing.assert_allclose(got.first_in_set, ref_first)
        n = DEFAULT_RANGE[set_name]
        assert got.n_scored == 4 * (n - 4)  # the paper's prompts: runs of 4, n - 4 of them


def test_random_heads_are_not_all_or_nothing(bridge, tokenizer):
    """Guards the reference test against vacuity: the random model's scores vary."""
    s = ov_scores(bridge, tokenizer, "letters", target="next", top_k=5)
    assert 0.0 < s.topk.mean() < 1.0 and len(np.unique(s.topk)) > 2


def test_scan_runs_on_every_set(bridge, tokenizer):
    for name in SETS:
        table = scan_roles(bridge, tokenizer, set_name=name, half_len=10, n_seqs=2)
        assert table.values.shape == (7, 2, 4)
        assert np.isfinite(table.values).all()
        assert (table.values >= 0).all() and (table.values <= 1 + 1e-6).all()
