"""The planted model of the role tests (see tests/test_roles.py for what each head does),
as a Hugging Face model, a bridge, and a word-level tokenizer that also knows the
paper's names and template words, so the task generators can build prompts for it."""

from __future__ import annotations

import torch

from seqcirc.tasks.sets import NAMES, ORDERED_SETS

MONTHS = ORDERED_SETS["months"]
D_MODEL, N_HEADS, D_HEAD, VOCAB, N_POS = 128, 4, 32, 64, 32
FILLER0 = 40  # the "neither" head writes filler word FILLER0 + j for member j


def planted_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", *MONTHS, *NAMES, "born", "done", "lost", "in", "."]
    words += [f"w{i}" for i in range(len(words), VOCAB - 1)] + ["<unk>"]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", unk_token="<unk>")


def planted_hf():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_head=N_HEADS, n_embd=D_MODEL, vocab_size=VOCAB, n_positions=N_POS)
    hf = GPT2LMHeadModel(cfg).eval()
    sd = {k: torch.zeros_like(v) for k, v in hf.state_dict().items()}
    for k in sd:
        if ".ln_" in k and k.endswith("weight"):
            sd[k] = torch.ones_like(sd[k])
    sd["transformer.wte.weight"][torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0
    sd["transformer.wpe.weight"][torch.arange(N_POS), VOCAB + torch.arange(N_POS)] = 1.0
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, as GPT-2 does
    # layer 0: Q/K on position dims. Conv1D weights are [in, out]; q, k, v blocks of D_MODEL.
    w0 = sd["transformer.h.0.attn.c_attn.weight"]
    amp = 2.0
    for p in range(N_POS):
        w0[VOCAB + p, 0 * D_HEAD + p] = amp  # head 0 query: position p
        if p + 1 < D_HEAD:
            w0[VOCAB + p, D_MODEL + 0 * D_HEAD + p + 1] = amp  # head 0 key: p -> slot p+1
        w0[VOCAB + p, 1 * D_HEAD + p] = amp  # head 1 query
        w0[VOCAB + p, D_MODEL + 1 * D_HEAD + p] = amp  # head 1 key: same slot
    # layer 1: OV maps on the month token dims (ids 1..12).
    w1 = sd["transformer.h.1.attn.c_attn.weight"]
    proj = sd["transformer.h.1.attn.c_proj.weight"]  # [heads*d_head, d_model]
    for j in range(12):
        tok = 1 + j
        for head in range(3):
            w1[tok, 2 * D_MODEL + head * D_HEAD + j] = 1.0
        if j + 1 < 12:
            proj[0 * D_HEAD + j, tok + 1] = 1.0  # successor
        proj[1 * D_HEAD + j, tok] = 1.0  # copy
        proj[2 * D_HEAD + j, FILLER0 + j] = 1.0  # neither
    hf.load_state_dict(sd)
    return hf


def planted_bridge():
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    hf = planted_hf()
    return build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf.config)
