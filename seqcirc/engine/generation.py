"""The generating metric in the engine: `metric accuracy(generate, max_new_tokens=N,
match=REGEX)` (docs/language.md, "Generation").

Each prompt's continuation is decoded greedily under the circuit's intervention
(seqcirc.forward.generate: the ablation at every generated step), decoded to text by the
task's tokenizer, and scored 1 where the pattern matches at its start, else 0. The
pattern is `match` (default DEFAULT_MATCH) with {answer} replaced by the prompt's answer
text, stripped of surrounding whitespace and escaped. The full model's score is the
same decoding without intervention; faithfulness is then mean accuracy of the circuit
over that of the model, as for `accuracy`.

Run for node circuits ablated in place (the complement of the circuit replaced); an edge
circuit or patching into corrupted input is E328, as is a continuation past the model's
context or a task without its tokenizer's decode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.generate import extend_values, greedy
from seqcirc.forward.select import Model
from seqcirc.language.vocab import ANSWER_PLACEHOLDER
from seqcirc.plan import AblationSpec
from seqcirc.tasks.types import TokenizedTask

# The default: the answer as a whole word at the start (leading whitespace allowed; no
# letter, digit or underscore right after it, so "12" does not match "123").
DEFAULT_MATCH = r"\s*" + ANSWER_PLACEHOLDER + r"(?!\w)"


def _error(message: str, hint: str) -> EvaluationError:
    return EvaluationError(message, code="E328", hint=hint)


@dataclass(frozen=True, eq=False)
class Decoding:
    """A task's generating metric, ready to score: steps, one compiled pattern per
    prompt, and the decode of the task's tokenizer."""

    max_new_tokens: int
    patterns: tuple[re.Pattern[str], ...]  # per prompt
    decode: Callable[[list[int]], str]
    lengths: Tensor | None = None  # per prompt, for right-padded prompts of different lengths

    def texts(self, ids: Tensor) -> list[str]:
        return [self.decode(row) for row in ids.tolist()]

    def score(self, ids: Tensor, prompts: Tensor) -> NDArray[np.float64]:
        """1.0 where row i's continuation ids[i] matches prompt prompts[i]'s pattern."""
        return np.asarray(
            [
                float(self.patterns[p].match(text) is not None)
                for text, p in zip(self.texts(ids), prompts.tolist(), strict=True)
            ]
        )


def generation_of(task: TokenizedTask, ablation: AblationSpec, w: Model) -> Decoding | None:
    """The task's generating metric (task.meta["generation"], set by build_task), checked
    against the set-up (E328); None where the metric reads the answer position."""
    setup: Any = task.meta.get("generation")
    if not setup:
        return None
    if ablation.is_edge or ablation.patches_circuit:
        what = "an edge circuit" if ablation.is_edge else "patching into corrupted input"
        raise _error(
            f"a generating metric cannot score {what}",
            "generation runs node circuits ablated in place (ablate nodes ..., the default "
            "direction); score this one with a metric at the answer position",
        )
    steps = int(setup["max_new_tokens"])
    if task.seq_len + steps - 1 > w.n_ctx:
        raise _error(
            f"prompts of {task.seq_len} tokens and {steps} generated exceed the model's "
            f"context of {w.n_ctx}",
            f"use max_new_tokens={max(1, w.n_ctx - task.seq_len + 1)} or less",
        )
    if task.decode is None:
        raise _error(
            f"task {task.name} has no tokenizer to decode continuations with",
            "build the task with seqcirc.tasks.build.build_task from a TaskSpec whose "
            "metric generates",
        )
    answers = task.meta.get("correct_text")
    if not isinstance(answers, tuple | list) or len(answers) != task.n_prompts:
        raise _error(f"task {task.name} has no answer text per prompt", "rebuild the task")
    patterns = answer_patterns(setup.get("match"), [str(a) for a in answers])
    lengths = None if task.lengths is None else torch.as_tensor(task.lengths, dtype=torch.long)
    return Decoding(steps, patterns, task.decode, lengths)


def answer_patterns(match: str | None, answers: list[str]) -> tuple[re.Pattern[str], ...]:
    """Per answer, `match` (default DEFAULT_MATCH) with {answer} the answer text stripped
    of surrounding whitespace and escaped, compiled."""
    pattern = match or DEFAULT_MATCH
    compiled: dict[str, re.Pattern[str]] = {}
    for answer in answers:
        if answer not in compiled:
            text = re.escape(answer.strip())
            compiled[answer] = re.compile(pattern.replace(ANSWER_PLACEHOLDER, text))
    return tuple(compiled[a] for a in answers)


def generate_scores(
    w: Model,
    gen: Decoding,
    tokens: Tensor,
    prompts: Tensor,
    rows_per_chunk: int,
    *,
    keep: Tensor | None = None,
    keep_pos: Tensor | None = None,
    values: Any = None,
) -> NDArray[np.float64]:
    """Per-row 0/1 scores of greedy continuations of tokens [B, S] (row i is prompt
    prompts[i]): every node not in `keep` [B, n_nodes] replaced by `values` (None: the
    unablated model); circuit nodes too off `keep_pos` [n, S] (named positions), and at
    every generated position, which is not named. Rows run in chunks of rows_per_chunk."""
    out = np.empty(tokens.shape[0])
    ends = None if gen.lengths is None else gen.lengths - 1
    ext = None if values is None else extend_values(values, gen.max_new_tokens - 1, ends)
    for start in range(0, tokens.shape[0], rows_per_chunk):
        sl = slice(start, min(start + rows_per_chunk, tokens.shape[0]))
        replace = None
        if keep is not None:
            kept = keep[sl][:, None, :]
            if keep_pos is not None:
                pos = keep_pos[prompts[sl]]
                gen_pos = pos.new_zeros(pos.shape[0], gen.max_new_tokens - 1)
                kept = kept & torch.cat([pos, gen_pos], 1)[:, :, None]
            replace = ~kept
        rows_values = None if ext is None else ext.rows(prompts[sl])
        lengths = None if gen.lengths is None else gen.lengths.to(tokens.device)[prompts[sl]]
        ids = greedy(
            w, tokens[sl], gen.max_new_tokens, replace=replace, values=rows_values, lengths=lengths
        )
        out[sl] = gen.score(ids, prompts[sl])
    return out


__all__ = ["DEFAULT_MATCH", "Decoding", "answer_patterns", "generate_scores", "generation_of"]
