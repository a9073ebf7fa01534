"""An independent, slow reference for the generating metric: plain PyTorch hooks on a
Hugging Face model's own modules (no TransformerLens, nothing of seqcirc's engine), one
prompt at a time, no KV cache: each step reruns the whole sequence.

Meanings (docs/language.md, "Generation"): every head and MLP outside the circuit is
replaced at every position of every step; a head's output is its slice of the input to
the attention output projection, an MLP's what the block adds to the residual stream.
Values: the mean over the corrupted prompts at each prompt position, and at a generated
position the mean at the prompt's last position; resample: the paired corrupted
prompt's activation, at END for generated positions; zero. A continuation is correct
when, after its leading whitespace, it starts with the answer (stripped) and the next
character, if any, is no letter, digit or underscore.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqcirc.plan import Node
from tests.reference_layouts import LAYOUTS, sizes


class GenerationReference:
    def __init__(self, model: nn.Module, task: Any, value: str = "mean") -> None:
        self.model = model.eval()
        layout = LAYOUTS[model.config.architectures[0]]
        self.out_proj = [b.get_submodule(layout.out_proj) for b in self._blocks(layout)]
        self.mlp_out = [b.get_submodule(layout.mlp_out) for b in self._blocks(layout)]
        self.size = sizes(model.config)
        self.clean = torch.as_tensor(np.asarray(task.clean), dtype=torch.long)
        self.answers = [str(a).strip() for a in task.meta["correct_text"]]
        acts = self._capture(torch.as_tensor(np.asarray(task.corrupted), dtype=torch.long))
        self.abl = {k: _value(v, value) for k, v in acts.items()}  # [n, S, ...]

    def _blocks(self, layout: Any) -> list[nn.Module]:
        return list(self.model.get_submodule(layout.blocks))

    def _capture(self, tokens: Tensor) -> dict[str, Tensor]:
        acts: dict[str, Tensor] = {}
        handles = []
        for i, (proj, mlp) in enumerate(zip(self.out_proj, self.mlp_out, strict=True)):
            handles.append(proj.register_forward_pre_hook(
                lambda m, a, i=i: acts.__setitem__(f"z{i}", a[0].detach().clone())))  # fmt: skip
            handles.append(mlp.register_forward_hook(
                lambda m, a, o, i=i: acts.__setitem__(f"mlp{i}", o.detach().clone())))  # fmt: skip
        try:
            with torch.no_grad():
                self.model(tokens)
        finally:
            for h in handles:
                h.remove()
        return acts

    def _at(self, name: str, prompt: int, length: int) -> Tensor:
        """The ablated value of `name` for one prompt at positions 0..length-1 [1, L, ...]."""
        v = self.abl[name][prompt]  # [S, ...]
        seq = v.shape[0]
        idx = torch.clamp(torch.arange(length), max=seq - 1)  # generated: END's value
        return v[idx][None]

    def generate(self, keep: Iterable[Node], steps: int) -> np.ndarray:
        """Greedy token ids [n, steps], every node outside `keep` replaced."""
        kept = set(keep)
        heads, dh = self.size["H"], self.size["dh"]
        out = np.zeros((self.clean.shape[0], steps), dtype=np.int64)
        for p in range(self.clean.shape[0]):
            seq = self.clean[p]
            for t in range(steps):
                handles = []
                length = seq.shape[0]
                for i, (proj, mlp) in enumerate(zip(self.out_proj, self.mlp_out, strict=True)):
                    gone = [h for h in range(heads) if Node(i, h) not in kept]
                    z_abl = self._at(f"z{i}", p, length)

                    def z_hook(m, args, gone=gone, z_abl=z_abl):  # type: ignore[no-untyped-def]
                        x = args[0].clone()
                        for h in gone:
                            x[..., h * dh : (h + 1) * dh] = z_abl[..., h * dh : (h + 1) * dh]
                        return (x, *args[1:])

                    handles.append(proj.register_forward_pre_hook(z_hook))
                    if Node(i) not in kept:
                        m_abl = self._at(f"mlp{i}", p, length)
                        handles.append(mlp.register_forward_hook(
                            lambda m, a, o, m_abl=m_abl: m_abl.to(o.dtype)))  # fmt: skip
                try:
                    with torch.no_grad():
                        logits = self.model(seq[None]).logits[0, -1]
                finally:
                    for h in handles:
                        h.remove()
                nxt = int(logits.argmax())
                out[p, t] = nxt
                seq = torch.cat([seq, torch.tensor([nxt])])
        return out

    def accuracy(self, ids: np.ndarray, decode: Any) -> np.ndarray:
        """Per prompt 1.0 where the decoded continuation is the answer (module docstring)."""
        scores = []
        for row, answer in zip(ids.tolist(), self.answers, strict=True):
            text = decode(row).lstrip()
            rest = text[len(answer) :]
            whole = not rest or not (rest[0].isalnum() or rest[0] == "_")
            scores.append(float(text.startswith(answer) and whole))
        return np.asarray(scores)


def _value(act: Tensor, value: str) -> Tensor:
    if value == "mean":
        return act.mean(0, keepdim=True).expand_as(act)
    if value == "zero":
        return torch.zeros_like(act)
    if value == "resample":
        return act
    raise ValueError(value)
