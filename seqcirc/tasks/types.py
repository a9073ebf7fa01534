"""The task data the evaluator consumes: prompts as token ids, aligned clean/corrupted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from seqcirc.errors import InputError

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class TokenizedTask:
    """A task ready for a model: n prompts, clean and corrupted aligned token by token.

    clean, corrupted: [n, seq] token ids (BOS included when the model uses one); prompts
      of different lengths are padded on the right to the longest (`lengths`);
    correct, incorrect: [n] token ids of the answer tokens;
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
        )
