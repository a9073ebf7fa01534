"""The paper's prompt filter: keep prompts the full model gets right, confidently.

A prompt is kept when the model's top-1 prediction is the correct token and
p(correct) > ratio * p(incorrect) (the paper: ratio 2). Pure numpy: the evaluator runs
the model and passes the per-prompt probabilities in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from seqcirc.progress import advance
from seqcirc.tasks.tokenization import PER_PROMPT_META
from seqcirc.tasks.types import IntArray, TokenizedTask

PAPER_RATIO = 2.0


@dataclass(frozen=True)
class FilterReport:
    """Which prompts the filter kept, and why the others went."""

    kept: IntArray  # indices of kept prompts, ascending
    n_total: int
    n_not_top1: int  # dropped because the top-1 token was not the correct one
    n_low_ratio: int  # top-1 right (or not checked) but p(correct) <= ratio * p(incorrect)
    ratio: float
    partner: str | None = None  # the joint filter's other sequence (`filter_with`)
    n_partner: int = 0  # passed here, dropped because the partner's version failed

    @property
    def n_kept(self) -> int:
        return int(self.kept.shape[0])

    def summary(self) -> str:
        dropped = self.n_total - self.n_kept
        joint = f", {self.n_partner} whose {self.partner} version failed" if self.partner else ""
        return (
            f"kept {self.n_kept} of {self.n_total} prompts (top-1 correct and "
            f"p(correct) > {self.ratio:g}·p(incorrect)); dropped {dropped}: "
            f"{self.n_not_top1} not top-1, {self.n_low_ratio} below the ratio{joint}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "n_total": self.n_total,
            "n_kept": self.n_kept,
            "n_not_top1": self.n_not_top1,
            "n_low_ratio": self.n_low_ratio,
            "ratio": self.ratio,
        } | ({"partner": self.partner, "n_partner": self.n_partner} if self.partner else {})

    def joined(self, partner: FilterReport, name: str) -> FilterReport:
        """The joint filter: kept here and in `partner` (the same prompts in sequence
        `name`); prompts dropped here keep their reason, the rest count as the partner's."""
        if partner.n_total != self.n_total:
            raise ValueError(f"{partner.n_total} partner prompts for {self.n_total}")
        kept = np.intersect1d(self.kept, partner.kept).astype(np.int64)
        return replace(self, kept=kept, partner=name, n_partner=self.n_kept - int(kept.shape[0]))


def filter_correct(
    p_correct: npt.ArrayLike,
    p_incorrect: npt.ArrayLike,
    *,
    top1_correct: npt.ArrayLike | None = None,
    ratio: float = PAPER_RATIO,
) -> FilterReport:
    """Indices of prompts with top-1 correct and p(correct) > ratio * p(incorrect).

    p_correct, p_incorrect: [n] probabilities of the answer tokens at END.
    top1_correct: [n] bools, whether argmax is the correct token (None: not checked).
    """
    pc = np.asarray(p_correct, dtype=np.float64)
    pi = np.asarray(p_incorrect, dtype=np.float64)
    if pc.ndim != 1 or pc.shape != pi.shape:
        raise ValueError(f"p_correct {pc.shape} and p_incorrect {pi.shape} must be equal 1-D")
    if not (np.all(np.isfinite(pc)) and np.all(np.isfinite(pi))):
        raise ValueError("probabilities must be finite")
    if np.any((pc < 0) | (pc > 1) | (pi < 0) | (pi > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    top1 = np.ones_like(pc, dtype=bool)
    if top1_correct is not None:
        top1 = np.asarray(top1_correct, dtype=bool)
        if top1.shape != pc.shape:
            raise ValueError(f"top1_correct {top1.shape} must match p_correct {pc.shape}")
    confident = pc > ratio * pi
    keep = top1 & confident
    return FilterReport(
        kept=np.flatnonzero(keep).astype(np.int64),
        n_total=int(pc.shape[0]),
        n_not_top1=int(np.count_nonzero(~top1)),
        n_low_ratio=int(np.count_nonzero(top1 & ~confident)),
        ratio=float(ratio),
    )


def filter_from_logits(
    end_logits: npt.ArrayLike,
    correct: npt.ArrayLike,
    incorrect: npt.ArrayLike,
    *,
    ratio: float = PAPER_RATIO,
) -> FilterReport:
    """The filter from the full model's logits at END ([n, vocab]) and the answer ids."""
    logits = np.asarray(end_logits, dtype=np.float64)
    c = np.asarray(correct, dtype=np.int64)
    i = np.asarray(incorrect, dtype=np.int64)
    if logits.ndim != 2 or c.shape != (logits.shape[0],) or i.shape != c.shape:
        raise ValueError(f"logits {logits.shape} must be [n, vocab] with [n] answer ids")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    rows = np.arange(logits.shape[0])
    return filter_correct(
        probs[rows, c], probs[rows, i], top1_correct=logits.argmax(axis=1) == c, ratio=ratio
    )


def keep_prompts(task: TokenizedTask, index: npt.ArrayLike) -> TokenizedTask:
    """task.subset(index), with the per-prompt meta lists (answer texts, templates)
    indexed too so exports of the subset stay exact."""
    idx = np.asarray(index, dtype=np.int64)
    kept = task.subset(idx)
    for key in PER_PROMPT_META:
        value = task.meta.get(key)
        if isinstance(value, tuple | list) and len(value) == task.n_prompts:
            kept.meta[key] = tuple(value[j] for j in idx)
    return kept


def model_filter(
    task: TokenizedTask, bridge: Any, *, ratio: float = PAPER_RATIO, batch_rows: int = 32
) -> tuple[TokenizedTask, FilterReport]:
    """Run the full model on the clean prompts and keep those passing the filter.

    bridge: a TransformerBridge (or any module mapping [b, seq] ids to [b, seq, vocab]
    logits). The kept task's meta records the filter's counts under "filter".
    """
    import torch

    task.require_one_token(
        "the filter `filter correct`",
        "leave out `filter correct`, or choose answers the tokenizer keeps whole",
    )
    param = next(bridge.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    chunks = []
    with torch.inference_mode():
        for start in range(0, task.n_prompts, batch_rows):
            tokens = torch.as_tensor(task.clean[start : start + batch_rows], device=device)
            pos = torch.as_tensor(task.answer_pos[start : start + batch_rows], device=device)
            logits = bridge(tokens)
            rows = torch.arange(tokens.shape[0], device=device)
            chunks.append(logits[rows, pos].double().cpu().numpy())
            advance(tokens.shape[0], "prompts")
    report = filter_from_logits(np.concatenate(chunks), task.correct, task.incorrect, ratio=ratio)
    kept = keep_prompts(task, report.kept)
    kept.meta["filter"] = report.as_dict()
    return kept, report
