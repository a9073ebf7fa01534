"""Answers of several tokens (docs/language.md, "Metrics"): the teacher-forced input the
engine runs and the positions each metric reads.

Teacher forcing: the tokens of a prompt's correct answer but its last are appended to the
prompt, clean and corrupted alike (the corrupted twin gets its clean twin's tokens, so the
two stay aligned and the means at the appended positions are taken over the corrupted
prompts followed by the same answer tokens). The logits at END + k then predict the
answer's token k given the tokens before it. What each metric reads:
- logit_diff: one position, END + d, d the first token where the correct and incorrect
  answers differ (the tokens before it are common, so the input is forced up to there);
- logprob, accuracy: END + k for every token k of the correct answer;
- prob, kl: one-token answers only (T310).
Prompts whose appended tokens are fewer than the longest are padded on the right with
their own last token; a padded position is after every position its prompt's metric
reads, so causal attention keeps it out of the result, and it is left out of the means.
A task whose answers are all one token gives back its own arrays, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.errors import InputError
from seqcirc.language.vocab import MULTI_TOKEN_METRICS
from seqcirc.tasks.types import TokenizedTask

IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Forced:
    """A task's teacher-forced input and what its metric reads (numpy, on the host).

    clean, corrupted [n, S + A]; valid [n, S + A] False at padding (None: none);
    appended [n] answer tokens appended to each prompt; read_pos [n, K] positions the
    metric reads (past a prompt's read_count, its last repeated); correct [n, K] the token
    scored at each read; incorrect [n] the incorrect token at the first read (logit_diff).
    """

    clean: IntArray
    corrupted: IntArray
    valid: NDArray[np.bool_] | None
    appended: IntArray
    read_pos: IntArray
    read_count: IntArray
    correct: IntArray
    incorrect: IntArray

    @property
    def reads(self) -> int:
        return int(self.read_pos.shape[1])

    @property
    def last_pos(self) -> IntArray:
        """The last position each prompt's metric reads."""
        return self.read_pos.max(1)


def one_token_input(task: TokenizedTask) -> Forced:
    """The prompts as they are, read at END for the answers' first tokens: one-token
    answers, and generating metrics (which decode from the prompt alone)."""
    n = task.n_prompts
    end = np.asarray(task.answer_pos, dtype=np.int64)
    return Forced(task.clean, task.corrupted, None, np.zeros(n, dtype=np.int64),
                  end[:, None], np.ones(n, dtype=np.int64), task.correct[:, None],
                  task.incorrect)  # fmt: skip


def teacher_forced(task: TokenizedTask, metric: str) -> Forced:
    """The input the engine runs for `metric` on `task`, and the positions it reads."""
    end = np.asarray(task.answer_pos, dtype=np.int64)
    n = task.n_prompts
    if not task.multi_token:
        return one_token_input(task)
    if metric not in MULTI_TOKEN_METRICS:
        task.require_one_token(f"the metric {metric}")
    c_ids, c_len = task.answer_ids("correct")
    rows = np.arange(n)
    if metric == "logit_diff":
        first = _first_difference(task)
        appended = first
        read = first[:, None]
        incorrect = task.answer_ids("incorrect")[0][rows, first]
    else:
        appended = c_len - 1
        read = np.minimum(np.arange(c_ids.shape[1])[None, :], (c_len - 1)[:, None])
        incorrect = task.incorrect
    clean, valid = _append(task.clean, c_ids, appended, end)
    corrupted, _ = _append(task.corrupted, c_ids, appended, end)
    correct = c_ids[rows[:, None], read]
    return Forced(clean, corrupted, valid, appended, end[:, None] + read,
                  np.minimum(c_len, read.shape[1]) if metric != "logit_diff"
                  else np.ones(n, dtype=np.int64), correct, incorrect)  # fmt: skip


def _first_difference(task: TokenizedTask) -> IntArray:
    """Per prompt, the first token where the correct and incorrect answers differ (T317
    where one answer is the other's beginning: no token tells them apart)."""
    c_ids, c_len = task.answer_ids("correct")
    i_ids, i_len = task.answer_ids("incorrect")
    width = max(c_ids.shape[1], i_ids.shape[1])
    c = np.pad(c_ids, ((0, 0), (0, width - c_ids.shape[1])), constant_values=-1)
    i = np.pad(i_ids, ((0, 0), (0, width - i_ids.shape[1])), constant_values=-1)
    shorter = np.minimum(c_len, i_len)
    differs = (c != i) & (np.arange(width)[None, :] < shorter[:, None])
    found = differs.any(1)
    if not found.all():
        k = int(np.argmin(found))
        texts = task.meta.get("correct_text"), task.meta.get("incorrect_text")
        what = (
            f" ({texts[0][k]!r} and {texts[1][k]!r})"  # type: ignore[index]
            if all(isinstance(t, tuple | list) for t in texts)
            else ""
        )
        raise InputError(
            f"task {task.name}: prompt {k}'s correct and incorrect answers{what} agree on "
            "every token of the shorter one, so logit_diff has no token to compare",
            code="T317",
            hint="use answers that differ in some token, or the metric logprob or accuracy",
        )
    return differs.argmax(1).astype(np.int64)


def _append(
    prompts: IntArray, answers: IntArray, count: IntArray, end: IntArray
) -> tuple[IntArray, NDArray[np.bool_] | None]:
    """Each prompt with the first count[i] tokens of its answer after its END, right-padded
    with its own last token to one length; and where the tokens are real (None:
    everywhere). Prompts of one length end at their last column, so the answers follow it."""
    n, seq = prompts.shape
    last = end + count  # each row's last real position
    width = max(seq, int(last.max()) + 1)
    if width == seq and (count == 0).all():
        return prompts, None
    out = np.empty((n, width), dtype=np.int64)
    out[:, :seq] = prompts
    for i in range(n):
        e, k = int(end[i]), int(count[i])
        out[i, e + 1 : e + 1 + k] = answers[i, :k]
        out[i, e + 1 + k :] = out[i, e + k]
    valid = np.arange(width)[None, :] <= last[:, None]
    return out, None if valid.all() else valid


@dataclass(frozen=True, eq=False)
class Reads:
    """The positions a metric of several reads looks at, on the model's device: pos [n, K],
    tokens [n, K] the correct token at each, count [n] the reads that count; clean_embed
    [n, K, d] the clean embeddings there (the empty circuit of node circuits)."""

    pos: Tensor
    tokens: Tensor
    count: Tensor
    clean_embed: Tensor | None = None

    @classmethod
    def of(cls, forced: Forced, device: torch.device) -> Reads | None:
        """None where the metric reads one position per prompt (the engine's usual path)."""
        if forced.reads == 1:
            return None

        def t(a: IntArray) -> Tensor:
            return torch.as_tensor(np.asarray(a), dtype=torch.long, device=device)

        return cls(t(forced.read_pos), t(forced.correct), t(forced.read_count))

    @property
    def k(self) -> int:
        return int(self.pos.shape[1])

    def expand(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Rows [m] as m * K rows, row i's read k at i * K + k: their prompts and positions."""
        return rows.repeat_interleave(self.k), self.pos[rows].reshape(-1)


__all__ = ["Forced", "Reads", "teacher_forced"]
