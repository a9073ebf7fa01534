"""Mean ablation on a ragged task: prompts of different token lengths, padded on the right
(seqcirc.tasks.types.TokenizedTask.lengths).

Right padding changes nothing a prompt's own tokens compute (attention is causal), so
every run, clean or intervened, is each prompt's own run; only means over prompts need
care, since token index s is a different word in prompts of different lengths:

- per position (`ablate mean`, the paper's): one mean per *named* position (each name,
  END, and the BOS token when prompts start with one) over the corrupted prompts, each
  read at that prompt's own index of the name, and put back at each prompt's own index.
  A token that is no named position has no counterpart in the other prompts: all such
  tokens share one mean, over every unnamed token of every corrupted prompt (the result
  says so in a warning). Two names on one token would give it two means (E323).
- pooled (`ablate mean pooled`): one mean over every real token of every prompt (pads
  left out), the same at every position.

No real token reads a pad, so the value a pad gets does not matter.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from seqcirc.errors import InputError
from seqcirc.forward.common import NodeRun, Replacement
from seqcirc.plan import AblationSpec
from seqcirc.tasks.types import TokenizedTask

_REST = " unnamed"  # the sums over every token that is no named position (no name clashes)
BOS_SLOT = "BOS"  # index 0 when the prompts start with the BOS token (aligned in every prompt)


def uses_slot_means(task: TokenizedTask, ablation: AblationSpec) -> bool:
    """Whether the means are taken per named position rather than per token index."""
    return task.ragged and ablation.uses_means and ablation.per_position


def slots(task: TokenizedTask) -> dict[str, npt.NDArray[np.int64]]:
    """name -> [n] token index of every position aligned across prompts."""
    out = {name: np.asarray(idx, dtype=np.int64) for name, idx in task.positions.items()}
    if task.meta.get("prepend_bos") and BOS_SLOT not in out:
        out[BOS_SLOT] = np.zeros(task.n_prompts, dtype=np.int64)
    return out


def check_ragged(task: TokenizedTask, ablation: AblationSpec) -> None:
    """E323 where per-position means on a ragged task would give a token two means."""
    if not uses_slot_means(task, ablation):
        return
    assert task.lengths is not None
    named = slots(task)
    for i in range(task.n_prompts):
        at: dict[int, str] = {}
        for name, idx in named.items():
            j = int(idx[i])
            if j in at:
                raise _error(
                    task, i, f"{at[j]} and {name} are the same token ({j}), so it has two means"
                )
            at[j] = name


def _error(task: TokenizedTask, i: int, what: str) -> InputError:
    text = f": {task.clean_text[i]!r}" if task.clean_text else ""
    return InputError(
        f"task {task.name}: its prompts have different token lengths, so per-position means "
        f"are taken per named position; in prompt {i}{text} {what}",
        code="E323",
        hint="name each word once (`positions`), or use `ablate mean pooled`, `ablate "
        "resample` or `ablate zero`, or split the prompts into one task per length",
    )


def unnamed_tokens(task: TokenizedTask) -> int:
    """How many real tokens of the prompts are no named position (they share one mean)."""
    if task.lengths is None:
        return 0
    named = {(i, int(idx[i])) for idx in slots(task).values() for i in range(task.n_prompts)}
    return int(task.lengths.sum()) - len(named)


class RaggedMeans:
    """Running float32 sums over the corrupted prompts of a ragged task: per named
    position, or (pooled) over every real token; then the values the forward replaces with."""

    def __init__(self, task: TokenizedTask, per_position: bool) -> None:
        assert task.lengths is not None
        self.task, self.per_position = task, per_position
        self.slots = slots(task)
        self.sums: dict[str, list[Tensor]] = {}  # slot -> [embed, z per layer..., mlp...]
        self.dtype = torch.float32
        self.shapes: list[torch.Size] = []
        self.device = torch.device("cpu")

    def add(self, sl: slice, run: NodeRun) -> None:
        assert run.embed is not None
        self.dtype, self.device = run.embed.dtype, run.embed.device
        acts = [run.embed, *run.z, *run.mlp]
        self.shapes = [t.shape[2:] for t in acts]
        rows = torch.arange(run.embed.shape[0], device=run.embed.device)
        real = self._real(sl, run.embed.shape[1], rows.device)
        parts: dict[str, list[Tensor]] = {}
        if self.per_position:
            for name, idx in self.slots.items():
                at = torch.as_tensor(idx[sl], device=rows.device)
                parts[name] = [t[rows, at].sum(0, dtype=torch.float32) for t in acts]
                real[rows, at] = False  # what is left: the unnamed tokens
        parts[_REST] = [_masked_sum(t, real) for t in acts]
        for name, part in parts.items():
            old = self.sums.get(name)
            self.sums[name] = (
                part if old is None else [a + b for a, b in zip(old, part, strict=True)]
            )

    def _real(self, sl: slice, seq: int, device: torch.device) -> Tensor:
        assert self.task.lengths is not None
        lengths = torch.as_tensor(self.task.lengths[sl], device=device)
        return torch.arange(seq, device=device)[None, :] < lengths[:, None]  # [B, S]

    def values(self, n_layers: int) -> tuple[Replacement, Tensor]:
        """Per named position: per-prompt values [n, S, ...] (pads get the unnamed
        tokens' mean; no real token reads them); pooled: shared [S, ...]."""
        assert self.task.lengths is not None
        n, seq, dev = self.task.n_prompts, self.task.seq_len, self.device
        if not self.per_position:
            count = float(self.task.lengths.sum())
            out = [
                (s / count).to(self.dtype).expand(seq, *s.shape).contiguous()
                for s in self.sums[_REST]
            ]
        else:
            rest = max(unnamed_tokens(self.task), 1)  # its sums are 0 when there is none
            out = [
                (s / rest).to(self.dtype).expand(n, seq, *shape).clone()
                for s, shape in zip(self.sums[_REST], self.shapes, strict=True)
            ]
            rows = torch.arange(n, device=dev)
            for name, idx in self.slots.items():
                at = torch.as_tensor(idx, device=dev)
                for t, s in zip(out, self.sums[name], strict=True):
                    t[rows, at] = (s / n).to(self.dtype)
        embed, z, mlp = out[0], out[1 : 1 + n_layers], out[1 + n_layers :]
        return Replacement(tuple(z), tuple(mlp)), embed


def _masked_sum(t: Tensor, real: Tensor) -> Tensor:
    """Sum of t [B, S, ...] over the rows and the real positions: [...]."""
    mask = real.reshape(*real.shape, *([1] * (t.dim() - 2))).to(torch.float32)
    return (t.float() * mask).sum((0, 1))


__all__ = [
    "BOS_SLOT",
    "RaggedMeans",
    "check_ragged",
    "slots",
    "unnamed_tokens",
    "uses_slot_means",
]
