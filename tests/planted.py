"""Hand-built GPT-2 models whose circuit is known, and the hand-derived values they give.

The planted model (one layer, four heads, a dead MLP) on prompts
`BOS m1 m2 m3 m4 IN` (answer: m4 + 1; incorrect: m4):

- every residual direction is a unit vector (e_2k - e_2k+1)/sqrt(2): orthonormal and of
  zero mean, so a layer norm with weight 1 and bias 0 is exactly x * sqrt(d) / |x|;
- tokens write T_t, positions P_p; heads 0-2 attend from END to S4 only (a positional
  query/key with a score of ~870, so softmax is exactly one-hot in float32) and read
  z = e_m4 (the value of S4's token, one-hot in head space);
- head 0.0 (successor) writes c * O_{m4+1}, head 0.1 (suppressor) writes -s * O_{m4},
  head 0.2 (junk) writes g * J_{m4} (off the unembedding), head 0.3 and mlp0 are zero;
- the unembedding reads O_j for member j (BOS and IN unembed to 0).

So the final residual at END is T_IN + P_END + u with u in span(O, J), its norm^2 is
2 + |u|^2, and logit_diff = sqrt(d) * (u_O[m4+1] - u_O[m4]) / sqrt(2 + |u|^2):
`expected_logit_diff` evaluates exactly this for any mix of clean / ablated heads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from seqcirc.tasks.types import TokenizedTask

N_MEMBERS = 10
BOS, IN = 10, 11
VOCAB = 12
SEQ = 6  # BOS m1 m2 m3 m4 IN
S4, END = 4, 5
N_HEADS = 4
# Directions: T_0..T_11, P_0..P_5, O_0..O_9, J_0..J_9
T0, P0, O0, J0 = 0, VOCAB, VOCAB + SEQ, VOCAB + SEQ + N_MEMBERS
N_DIRS = J0 + N_MEMBERS
D_MODEL = 2 * N_DIRS  # 76
D_HEAD = D_MODEL // N_HEADS  # 19
BETA = 10.0


def direction(k: int) -> torch.Tensor:
    v = torch.zeros(D_MODEL)
    v[2 * k], v[2 * k + 1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return v


def planted_hf(c: float = 4.0, s: float = 2.0, g: float = 1.0) -> GPT2LMHeadModel:
    """The planted model as a Hugging Face GPT-2 (see the module docstring)."""
    cfg = GPT2Config(
        n_layer=1, n_head=N_HEADS, n_embd=D_MODEL, n_positions=8, vocab_size=VOCAB,
        layer_norm_epsilon=1e-12, tie_word_embeddings=False, bos_token_id=BOS,
        eos_token_id=BOS,
    )  # fmt: skip
    model = GPT2LMHeadModel(cfg).eval()
    d, dh = D_MODEL, D_HEAD
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        tr = model.transformer
        for t in range(VOCAB):
            tr.wte.weight[t] = direction(T0 + t)
        for p in range(SEQ):
            tr.wpe.weight[p] = direction(P0 + p)
        for ln in (tr.h[0].ln_1, tr.h[0].ln_2, tr.ln_f):
            ln.weight.fill_(1.0)
        w_attn = tr.h[0].attn.c_attn.weight  # [d, 3d]: q | k | v, head-major columns
        w_out = tr.h[0].attn.c_proj.weight  # [d, d]: rows head-major
        for h in range(3):
            w_attn[:, h * dh] = BETA * direction(P0 + END)
            w_attn[:, d + h * dh] = BETA * direction(P0 + S4)
            for t in range(N_MEMBERS):
                # LN1 scales T_t + P_S4 (norm sqrt 2) by sqrt(d / 2): undo it, so z = e_t.
                w_attn[:, 2 * d + h * dh + t] = math.sqrt(2 / d) * direction(T0 + t)
        for t in range(N_MEMBERS):
            if t + 1 < N_MEMBERS:
                w_out[0 * dh + t] = c * direction(O0 + t + 1)
            w_out[1 * dh + t] = -s * direction(O0 + t)
            w_out[2 * dh + t] = g * direction(J0 + t)
        for j in range(N_MEMBERS):
            model.lm_head.weight[j] = direction(O0 + j)
    return model


def bridge_of(hf: GPT2LMHeadModel):  # type: ignore[no-untyped-def]
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    return build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf.config)


def planted_task(
    clean_s4: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8),
    corrupted_s4: Sequence[int] = (0, 0, 2, 5, 5, 5, 7, 9),
) -> TokenizedTask:
    """Prompts BOS m1 m2 m3 m4 IN; only m4 (clean) and r4 (corrupted) matter to the model."""
    n = len(clean_s4)

    def prompts(last: Sequence[int]) -> np.ndarray:
        rows = [[BOS, (m + 7) % 10, (m + 8) % 10, (m + 9) % 10, m, IN] for m in last]
        return np.array(rows, dtype=np.int64)

    return TokenizedTask(
        name="planted",
        clean=prompts(clean_s4),
        corrupted=prompts(corrupted_s4),
        correct=np.array([m + 1 for m in clean_s4], dtype=np.int64),
        incorrect=np.array(list(clean_s4), dtype=np.int64),
        positions={
            "S4": np.full(n, S4, dtype=np.int64),
            "END": np.full(n, END, dtype=np.int64),
        },
    )


# A head's state: "clean", "mean" (mean over corrupted prompts), "zero", or
# ("resample", r4): the paired corrupted prompt's value; ("scaled_mean", k): k * the mean.
HeadState = str | tuple[str, float]


def expected_logits(
    m4: int,
    heads: Mapping[int, HeadState],
    corrupted_s4: Sequence[int],
    c: float = 4.0,
    s: float = 2.0,
    g: float = 1.0,
) -> np.ndarray:
    """All VOCAB logits at END, by the closed form of the module docstring."""
    f = np.bincount(np.asarray(corrupted_s4), minlength=N_MEMBERS) / len(corrupted_s4)
    u_o, u_j = np.zeros(N_MEMBERS + 1), np.zeros(N_MEMBERS)  # u_o[10]: O_10 does not exist

    def weights(state: HeadState) -> np.ndarray:
        if state == "clean":
            return np.eye(N_MEMBERS)[m4]
        if state == "mean":
            return f
        if state == "zero":
            return np.zeros(N_MEMBERS)
        if state[0] == "scaled_mean":  # the mean read through a rescaling layer norm
            return float(state[1]) * f
        return np.eye(N_MEMBERS)[int(state[1])]  # resample

    w0, w1, w2 = (weights(heads.get(h, "clean")) for h in range(3))
    u_o[1:] += c * w0  # head 0.0: z = e_t -> c * O_{t+1}
    u_o[:N_MEMBERS] -= s * w1  # head 0.1: -s * O_t
    u_j += g * w2  # head 0.2: g * J_t
    u_o = u_o[:N_MEMBERS]
    norm2 = 2.0 + float(u_o @ u_o) + float(u_j @ u_j)
    logits = np.zeros(VOCAB)
    logits[:N_MEMBERS] = math.sqrt(D_MODEL) * u_o / math.sqrt(norm2)
    return logits


def expected_logit_diff(
    m4: int,
    heads: Mapping[int, HeadState],
    corrupted_s4: Sequence[int],
    c: float = 4.0,
    s: float = 2.0,
    g: float = 1.0,
) -> float:
    """logit(m4+1) - logit(m4) at END."""
    logits = expected_logits(m4, heads, corrupted_s4, c, s, g)
    return float(logits[m4 + 1] - logits[m4])
