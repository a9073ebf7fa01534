"""Per-prompt task metrics (docs/language.md): what the engine scores for each prompt,
reading logits at the answer position only, or, for an answer of several tokens, at the
teacher-forced positions of seqcirc.engine.answers. The faithfulness ratios built from
them live in seqcirc.claims.faithfulness.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.errors import EvaluationError, InputError
from seqcirc.language.vocab import METRICS


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InputError(
            f"unknown metric {metric!r}",
            code="E310",
            hint=f"use one of {', '.join(METRICS)}",
        )
    return metric


def per_prompt(
    metric: str,
    logits: Tensor,
    correct: Tensor,
    incorrect: Tensor,
    clean_logits: Tensor | None = None,
    count: Tensor | None = None,
) -> NDArray[np.float64]:
    """The metric for each row of `logits` [B, vocab] at the answer position, as float64.

    Rows may stack several circuits over the same prompts (row = circuit * n + prompt);
    correct/incorrect/clean_logits are then repeated to match. Several reads per row:
    logits [B, K, vocab], correct [B, K] the token read at each and count [B] the reads
    that count (logprob sums, accuracy asks all of them; the rest are padding).
    """
    check_metric(metric)
    if logits.dim() == 3:
        return _over_reads(metric, logits, correct, count)
    rows = torch.arange(logits.shape[0], device=logits.device)
    logits = logits.double()
    if metric == "logprob":
        out = torch.log_softmax(logits, -1)[rows, correct]
    elif metric == "logit_diff":
        out = logits[rows, correct] - logits[rows, incorrect]
    elif metric == "prob":
        out = torch.softmax(logits, -1)[rows, correct]
    elif metric == "accuracy":
        out = (logits.argmax(-1) == correct).double()
    else:
        if clean_logits is None:
            raise EvaluationError("kl needs the full model's logits", code="E311")
        log_p = torch.log_softmax(clean_logits.double(), -1)
        log_q = torch.log_softmax(logits, -1)
        out = (log_p.exp() * (log_p - log_q)).sum(-1)
    return out.cpu().numpy()


def _over_reads(
    metric: str, logits: Tensor, correct: Tensor, count: Tensor | None
) -> NDArray[np.float64]:
    """logprob = sum_k log p(a_k | prompt, a_<k); accuracy = 1 when every a_k is the argmax."""
    if metric not in ("logprob", "accuracy") or count is None:
        raise EvaluationError(
            f"the metric {metric} reads one position, not {logits.shape[1]}", code="E313"
        )
    counted = torch.arange(logits.shape[1], device=logits.device)[None, :] < count[:, None]
    if metric == "logprob":
        lp = torch.log_softmax(logits.double(), -1).gather(-1, correct[..., None])[..., 0]
        out = (lp * counted).sum(-1)
    else:
        out = ((logits.argmax(-1) == correct) | ~counted).all(-1).double()
    return out.cpu().numpy()
