"""The task data the evaluator consumes: prompts as token ids, aligned clean/corrupted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from seqcirc.errors import InputError

IntArray = npt.NDArray[np.int64]
ANSWER_PAD = -1  # what pads correct_ids / incorrect_ids past an answer's length


@dataclass(frozen=True, eq=False)
class TokenizedTask:
    """A task ready for a model: n prompts, clean and corrupted aligned token by token.

    clean, corrupted: [n, seq] token ids (BOS included when the model uses one); prompts
      of different lengths are padded on the right to the longest (`lengths`);
    correct, incorrect: [n] token ids of the answers' first tokens;
    correct_ids, incorrect_ids: [n, A] every token of each answer, padded with -1 past
      its length (None: every answer is the one token of correct / incorrect);
    correct_len, incorrect_len: [n] each answer's token count (None: all 1);
    positions: name -> [n] token index of that named position in each prompt
      ("END" is always present: the position whose next-token prediction is scored);
    answer_pos: [n] the scored position (== positions["END"]);
    lengths: [n] each prompt's own token count (BOS included) when they differ, else None.
      Right padding changes nothing a prompt's own tokens compute (attention is causal:
      no real token sees a later pad), so each row reads its own END.
    """

    name: str
    clean: IntArray
    corrupted: IntArray
    correct: IntArray
    incorrect: IntArray
    positions: dict[str, IntArray]
    clean_text: tuple[str, ...] = ()
    corrupted_text: tuple[str, ...] = ()
    meta: dict[str, object] = field(default_factory=dict)  # generator, params, seed, filter counts
    lengths: IntArray | None = None  # per prompt when they differ (ragged, right-padded)
    # token ids -> text, the tokenizer's; kept where the metric generates (answers as text)
    decode: Callable[[list[int]], str] | None = field(default=None, compare=False, repr=False)
    correct_ids: IntArray | None = None
    incorrect_ids: IntArray | None = None
    correct_len: IntArray | None = None
    incorrect_len: IntArray | None = None

    @property
    def n_prompts(self) -> int:
        return int(self.clean.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean.shape[1])

    @property
    def answer_pos(self) -> IntArray:
        return self.positions["END"]

    @property
    def ragged(self) -> bool:
        """Whether the prompts have different token lengths (padded on the right)."""
        return self.lengths is not None

    def real_ids(self, i: int, which: str = "clean") -> list[int]:
        """Prompt i's token ids without padding."""
        ids = self.clean[i] if which == "clean" else self.corrupted[i]
        n = self.seq_len if self.lengths is None else int(self.lengths[i])
        return [int(t) for t in ids[:n]]

    def require_one_length(self, what: str) -> None:
        """T315 where `what` compares prompts index by index and so needs one length."""
        if self.lengths is None:
            return
        lo, hi = int(self.lengths.min()), int(self.lengths.max())
        raise InputError(
            f"task {self.name}: {what} needs prompts of one token length; these have "
            f"{lo} to {hi} tokens",
            code="T315",
            hint="split the prompts into one task per length (docs/tasks.md, ragged prompts)",
        )

    def answer_ids(self, which: str) -> tuple[IntArray, IntArray]:
        """Every token of the correct or incorrect answers: ids [n, A] padded with
        ANSWER_PAD, and lengths [n]."""
        ids = self.correct_ids if which == "correct" else self.incorrect_ids
        lengths = self.correct_len if which == "correct" else self.incorrect_len
        if ids is None or lengths is None:
            first = self.correct if which == "correct" else self.incorrect
            return first[:, None], np.ones(first.shape[0], dtype=np.int64)
        return ids, lengths

    @property
    def multi_token(self) -> bool:
        """Whether some answer is several tokens."""
        return any(
            x is not None and x.size > 0 and int(x.max()) > 1
            for x in (self.correct_len, self.incorrect_len)
        )

    def require_one_token(self, what: str, hint: str | None = None) -> None:
        """T310 where `what` (a metric, the filter, a lens) reads one answer token."""
        if not self.multi_token:
            return
        lengths = np.maximum(*(self.answer_ids(w)[1] for w in ("correct", "incorrect")))
        i = int(np.argmax(lengths))
        raise InputError(
            f"task {self.name}: {what} needs one-token answers, but prompt {i}'s answer is "
            f"{int(lengths[i])} tokens",
            code="T310",
            hint=hint
            or "use the metric logit_diff, logprob or accuracy (they read every answer "
            "token), or choose answers the tokenizer keeps whole",
        )

    def subset(self, index: IntArray) -> TokenizedTask:
        """The prompts at `index` (e.g. those kept by the paper's filter). Where they all
        have one length, the padding goes: the subset is an ordinary task."""
        lengths = None if self.lengths is None else self.lengths[index]
        width = self.seq_len
        if lengths is not None and lengths.size and np.all(lengths == lengths[0]):
            width = int(lengths[0])
            lengths = None
        return TokenizedTask(
            name=self.name,
            clean=self.clean[index, :width],
            corrupted=self.corrupted[index, :width],
            correct=self.correct[index],
            incorrect=self.incorrect[index],
            positions={k: v[index] for k, v in self.positions.items()},
            clean_text=tuple(self.clean_text[i] for i in index) if self.clean_text else (),
            corrupted_text=(
                tuple(self.corrupted_text[i] for i in index) if self.corrupted_text else ()
            ),
            meta=dict(self.meta),
            lengths=lengths,
            decode=self.decode,
            **{
                k: None if getattr(self, k) is None else getattr(self, k)[index]
                for k in ("correct_ids", "incorrect_ids", "correct_len", "incorrect_len")
            },
        )
