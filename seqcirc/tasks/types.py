"""The task data the evaluator consumes: prompts as token ids, aligned clean/corrupted."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
ANSWER_PAD = -1  # what pads correct_ids / incorrect_ids past an answer's length


@dataclass(frozen=True, eq=False)
class TokenizedTask:
    """A task ready for a model: n prompts of equal length, clean and corrupted aligned.

    clean, corrupted: [n, seq] token ids (BOS included when the model uses one);
    correct, incorrect: [n] token ids of the answers' first tokens;
    correct_ids, incorrect_ids: [n, A] every token of each answer, padded with -1 past
      its length (None: every answer is the one token of correct / incorrect);
    correct_len, incorrect_len: [n] each answer's token count (None: all 1);
    positions: name -> [n] token index of that named position in each prompt
      ("END" is always present: the position whose next-token prediction is scored);
    answer_pos: [n] the scored position (== positions["END"]).
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
        from seqcirc.errors import InputError

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
        """The prompts at `index` (e.g. those kept by the paper's filter)."""
        return TokenizedTask(
            name=self.name,
            clean=self.clean[index],
            corrupted=self.corrupted[index],
            correct=self.correct[index],
            incorrect=self.incorrect[index],
            positions={k: v[index] for k, v in self.positions.items()},
            clean_text=tuple(self.clean_text[i] for i in index) if self.clean_text else (),
            corrupted_text=(
                tuple(self.corrupted_text[i] for i in index) if self.corrupted_text else ()
            ),
            meta=dict(self.meta),
            **{
                k: None if getattr(self, k) is None else getattr(self, k)[index]
                for k in ("correct_ids", "incorrect_ids", "correct_len", "incorrect_len")
            },
        )
