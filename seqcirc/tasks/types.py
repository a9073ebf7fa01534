"""The task data the evaluator consumes: prompts as token ids, aligned clean/corrupted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class TokenizedTask:
    """A task ready for a model: n prompts of equal length, clean and corrupted aligned.

    clean, corrupted: [n, seq] token ids (BOS included when the model uses one);
    correct, incorrect: [n] token ids of the answer tokens;
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
    # token ids -> text, the tokenizer's; kept where the metric generates (answers as text)
    decode: Callable[[list[int]], str] | None = field(default=None, compare=False, repr=False)

    @property
    def n_prompts(self) -> int:
        return int(self.clean.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean.shape[1])

    @property
    def answer_pos(self) -> IntArray:
        return self.positions["END"]

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
            decode=self.decode,
        )
