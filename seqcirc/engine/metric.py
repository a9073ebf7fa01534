"""Per-prompt task metrics and the two faithfulness variants (docs/language.md).

Per-prompt metrics read logits at the answer position only. Faithfulness is a ratio of
means over prompts (never a mean of per-prompt ratios) and is never clamped; its paired
bootstrap interval comes from seqcirc.stats.bootstrap and costs no forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.errors import EvaluationError, InputError

METRICS = ("logit_diff", "prob", "accuracy", "kl")
# How each metric's faithfulness is read: KL is 0 for the full model, so only the
# normalized variant, 1 - E kl(C) / E kl(empty), is defined for it.
KL_NOTE = "kl is KL(P_M || P_X) at the answer position, summed (not averaged) over the vocabulary"


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
) -> NDArray[np.float64]:
    """The metric for each row of `logits` [B, vocab] at the answer position, as float64.

    Rows may stack several circuits over the same prompts (row = circuit * n + prompt);
    correct/incorrect/clean_logits are then repeated to match.
    """
    check_metric(metric)
    rows = torch.arange(logits.shape[0], device=logits.device)
    logits = logits.double()
    if metric == "logit_diff":
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


@dataclass(frozen=True)
class Faithfulness:
    """One faithfulness variant: point value, paired bootstrap interval, and its inputs."""

    variant: str  # "performance_ratio" | "normalized_faithfulness"
    metric: str
    value: float
    lower: float
    upper: float
    level: float
    n_boot: int
    seed: int
    n_prompts: int
    mean_circuit: float  # E m(C)
    mean_model: float  # E m(M)
    mean_empty: float | None  # E m(empty), for the normalized variant


def performance_ratio(m_circuit: NDArray[np.float64], m_model: NDArray[np.float64]) -> float:
    """F(C)/F(M), F = E m: a ratio of means."""
    den = float(np.mean(m_model))
    if den == 0.0:
        raise EvaluationError(
            "the full model's mean metric is exactly 0: the performance ratio is undefined",
            code="E312",
            hint="use normalized faithfulness (and for kl, which is 0 for the full model)",
        )
    return float(np.mean(m_circuit)) / den


def normalized_faithfulness(
    m_circuit: NDArray[np.float64], m_model: NDArray[np.float64], m_empty: NDArray[np.float64]
) -> float:
    """(E m(C) - E m(empty)) / (E m(M) - E m(empty)); may leave [0, 1]."""
    den = float(np.mean(m_model)) - float(np.mean(m_empty))
    if den == 0.0:
        raise EvaluationError(
            "the full model and the empty circuit score the same on average: "
            "normalized faithfulness is undefined",
            code="E312",
            hint="check the corruption and the metric: ablating everything changes nothing",
        )
    return (float(np.mean(m_circuit)) - float(np.mean(m_empty))) / den


def faithfulness(
    variant: str,
    metric: str,
    m_circuit: NDArray[np.float64],
    m_model: NDArray[np.float64],
    m_empty: NDArray[np.float64] | None,
    *,
    seed: int,
    level: float = 0.95,
    n_boot: int = 10_000,
) -> Faithfulness:
    """A faithfulness variant with its paired bootstrap interval over prompts."""
    from seqcirc.stats.bootstrap import normalized_faithfulness_ci, performance_ratio_ci

    if variant == "performance_ratio":
        if metric == "kl":
            raise EvaluationError(
                "the performance ratio is undefined for kl (the full model's kl is 0)",
                code="E312",
                hint="claim normalized faithfulness for kl",
            )
        value = performance_ratio(m_circuit, m_model)
        ci = performance_ratio_ci(m_circuit, m_model, seed=seed, level=level, n_boot=n_boot)
    elif variant == "normalized_faithfulness":
        if m_empty is None:
            raise EvaluationError("normalized faithfulness needs m(empty)", code="E311")
        value = normalized_faithfulness(m_circuit, m_model, m_empty)
        ci = normalized_faithfulness_ci(
            m_circuit, m_model, m_empty, seed=seed, level=level, n_boot=n_boot
        )
    else:
        raise EvaluationError(f"unknown faithfulness variant {variant!r}", code="E311")
    return Faithfulness(
        variant=variant,
        metric=metric,
        value=value,
        lower=ci.lower,
        upper=ci.upper,
        level=level,
        n_boot=n_boot,
        seed=seed,
        n_prompts=len(m_circuit),
        mean_circuit=float(np.mean(m_circuit)),
        mean_model=float(np.mean(m_model)),
        mean_empty=None if m_empty is None else float(np.mean(m_empty)),
    )
