"""A tiny Llama whose tokenizer splits every numeral into single digits, as Llama-2's
does, built and trained in code (seconds; no download).

The tokenizer is tests/llama_tiny.py's Llama-2-style one: a numeral is "▁" and then one
piece per digit (" 10" is "▁" + "1" + "0"), so with a generating metric a member is named
at its last digit and an answer is two or three tokens. The model is trained to continue
the numerals prompts below (members 1-9, shown at interval 1 or 2; answers up to 11),
so greedy decoding finds " 10" as three tokens.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from seqcirc.plan import TaskSpec, params
from seqcirc.tasks.build import build_task
from tests.llama_tiny import llama_tokenizer

STEPS = 120
# The tasks the model is trained on and the tests score: "6 7 8 9" -> " 10" and
# "3 5 7 9" -> " 11" among them; every member "▁" + a digit, answers of 2 or 3 tokens.
TRAIN_STARTS = ((6, 1), (3, 2))  # (start, interval): S1 one of the first `start` members


def digit_tokenizer() -> LlamaTokenizer:
    """Llama-2's scheme (tests/llama_tiny.py): " 10" is "▁" + "1" + "0"."""
    return llama_tokenizer()


def numerals_spec(start: int, interval: int = 1, prompts: int = 24, seed: int = 0) -> TaskSpec:
    """A numerals task on the digit model, scored by generation (3 new tokens)."""
    return TaskSpec(
        name=f"digits_{start}_{interval}", generator="numerals",
        params=params(start=start, interval=interval, members=4, prompts=prompts, seed=seed,
                      template="all", range=20),
        corruption="shuffled_members", metric="accuracy",
        metric_params=params(generate=True, max_new_tokens=3),
    )  # fmt: skip


def _training_rows(tok: Any) -> tuple[torch.Tensor, int]:
    """Prompts followed by their answer's tokens and ".", padded to one length; the
    prompts' one length."""
    rows = []
    for start, interval in TRAIN_STARTS:
        task = build_task(numerals_spec(start, interval, 48, seed=1), tok, prepend_bos=True)
        answers = task.meta["correct_text"]
        assert isinstance(answers, tuple)
        for ids, answer in zip(task.clean, answers, strict=True):
            ans = tok(answer, add_special_tokens=False)["input_ids"]
            rows.append(list(ids) + ans + [tok.convert_tokens_to_ids(".")])
    width = max(len(r) for r in rows)
    return torch.as_tensor([r + [0] * (width - len(r)) for r in rows]), task.seq_len


@cache
def trained_digit_llama() -> tuple[LlamaForCausalLM, LlamaTokenizer]:
    """The tiny digit Llama (2 layers, d_model 32, 4 query heads sharing 2 kv heads)
    trained to continue the numerals prompts above; cached per process."""
    tok = digit_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    data, seq = _training_rows(tok)
    target = data.clone()
    target[data == 0] = -100
    target[:, :seq] = -100  # the answer's tokens and "." are learned
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = np.random.default_rng(0)
    for _ in range(STEPS):
        batch = torch.as_tensor(gen.choice(len(data), 32, replace=False))
        loss = model(data[batch], labels=target[batch]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok
