"""A hand-set GPT-2 whose behaviour is linear along one path, for EAP-IG's convergence.

Prompts `BOS m IN` (answer m + 1). One layer; head 0.0 attends from IN to position 1 only
(positional query and key, scores ~1e3: one-hot) and copies the token there as z = e_m;
its W_O writes C * O_{m+1}; everything else is zero. The layer norms' epsilon (1e8)
dwarfs every variance (~1), so each layer norm is x / sqrt(eps) to ~1e-8: the weights
are scaled by sqrt(eps) to undo it, and the residual at IN, the head's output and the
logits are all LINEAR in the input embedding. The only nonlinearity left is the metric:
`prob`, the softmax probability of the answer.

So along EAP-IG's path (input embeddings from the corrupted prompt's to the clean ones)
the receivers' inputs move on straight lines, and only the edges embed -> 0.0 (v) and
0.0 -> logits matter: integrated gradients of each tends to the exact effect of
patching that edge alone, while EAP (one gradient at the clean end) misses the
softmax's curvature. In float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from seqcirc.tasks.types import TokenizedTask

N_MEMBERS = 4
BOS, IN = 4, 5
VOCAB, SEQ = 6, 3
EPS = 1e8
C = 2.0  # the answer's logit: p(answer) = e^2 / (e^2 + 5) clean
# directions (e_2k - e_2k+1) / sqrt 2, zero mean: T_0..T_5 tokens, P_0..P_2 positions, O_0..O_3
T0, P0, O0 = 0, VOCAB, VOCAB + SEQ
D_MODEL = 2 * (O0 + N_MEMBERS)  # 26
N_HEADS, D_HEAD = 2, 13


def _dir(k: int) -> torch.Tensor:
    v = torch.zeros(D_MODEL, dtype=torch.float64)
    v[2 * k], v[2 * k + 1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return v


def linear_hf() -> GPT2LMHeadModel:
    cfg = GPT2Config(
        n_layer=1, n_head=N_HEADS, n_embd=D_MODEL, n_positions=4, vocab_size=VOCAB,
        layer_norm_epsilon=EPS, tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=BOS,
    )  # fmt: skip
    model = GPT2LMHeadModel(cfg).eval().double()
    s, d = math.sqrt(EPS), D_MODEL
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        tr = model.transformer
        for t in range(VOCAB):
            tr.wte.weight[t] = _dir(T0 + t)
        for p in range(SEQ):
            tr.wpe.weight[p] = _dir(P0 + p)
        for ln in (tr.h[0].ln_1, tr.h[0].ln_2, tr.ln_f):
            ln.weight.fill_(1.0)
        w = tr.h[0].attn.c_attn.weight  # [d, 3d]: q | k | v
        w[:, 0] = 40.0 * s * _dir(P0 + 2)  # query: position IN
        w[:, d] = 40.0 * s * _dir(P0 + 1)  # key: position 1 (score 1600 / sqrt 13 ~ 440)
        for t in range(N_MEMBERS):
            w[:, 2 * d + t] = s * _dir(T0 + t)  # z_t = 1 for the token m = t at position 1
            if t + 1 < N_MEMBERS:
                tr.h[0].attn.c_proj.weight[t] = C * _dir(O0 + t + 1)
        for j in range(N_MEMBERS):
            model.lm_head.weight[j] = s * _dir(O0 + j)
    return model


def linear_task(clean: tuple[int, ...] = (0, 1, 2, 0, 1),
                corrupted: tuple[int, ...] = (2, 0, 0, 1, 2)) -> TokenizedTask:  # fmt: skip
    n = len(clean)

    def rows(ms: tuple[int, ...]) -> np.ndarray:
        return np.array([[BOS, m, IN] for m in ms], dtype=np.int64)

    return TokenizedTask(
        name="linear", clean=rows(clean), corrupted=rows(corrupted),
        correct=np.array([m + 1 for m in clean]), incorrect=np.array(list(clean)),
        positions={"END": np.full(n, 2, dtype=np.int64)},
    )  # fmt: skip
