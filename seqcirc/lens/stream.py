"""The logit lens on a task's clean prompts, on the unablated model.

At the answer position END of each prompt, the residual stream after the embeddings
(`blocks.0.hook_resid_pre`) and after every block L (`blocks.L.hook_resid_post`) is
decoded as the model decodes its last one: the bridge's own final norm (`ln_final`:
LayerNorm, RMSNorm, whatever the architecture has) and unembedding (`unembed`). Run
through TransformerBridge.run_with_cache, so it works on every architecture the bridge
loads; after the last block it equals the model's logits (LensResult.final_max_abs_diff).

With `components`, the stream is also decoded after each head and MLP writes to it:
after head L.H it is resid_pre(L) + b_O + sum over h <= H of head h's write, where head
h's write is its hook_z (the other heads' zeroed) through the layer's output projection
(`attn.o`) less that projection of zero (b_O, which belongs to no head, is counted
before head 0); after mlpL it is resid_post(L). The last head's row must equal
resid_pre(L) + hook_attn_out(L): an architecture whose attention output is not a sum of
per-head writes (a norm after attention) is refused (E360).

The authors' script (src/logit_lens/logit_lens_fns.py) unembeds the intermediate hidden
states without the final layer norm; the lens here applies it at every layer, the
standard logit lens (and the only form under which the last layer is the model's output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from seqcirc.errors import EvaluationError, InputError
from seqcirc.language.names import canonical
from seqcirc.language.vocab import LENS_MEASURES, LENS_TARGETS
from seqcirc.tasks.types import TokenizedTask

MEASURES = LENS_MEASURES  # rank (1 = top), logit, prob
TARGETS = LENS_TARGETS  # correct: the answer; last: the task's incorrect token (S4)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BATCH = 32  # prompts per run_with_cache


@dataclass(frozen=True)
class LensRow:
    """One place the stream is decoded: `name` as tables print it, the block it is in
    (-1: the embeddings) and what has been written to the stream by then."""

    name: str  # "embed", "9" (after block 9), "9.1" (after head 9.1), "mlp9"
    layer: int
    after: str  # "embeddings", "block 9", "head 9.1", "mlp9"


@dataclass(frozen=True, eq=False)
class LensResult:
    """values[measure][target]: [rows, prompts]; top: [rows, prompts] the top-1 token."""

    rows: tuple[LensRow, ...]
    values: dict[str, dict[str, FloatArray]]
    top: IntArray
    final_max_abs_diff: float  # |lens after the last block - the model's logits|, at END
    final_max_abs_logit: float = 0.0  # the largest |logit| of the model at END (its scale)
    meta: dict[str, Any] = field(default_factory=dict)

    def index(self, name: str) -> int:
        names = [r.name for r in self.rows]
        if name not in names:
            raise InputError(
                f"the lens has no row {name!r}", code="E361", hint="rows: " + ", ".join(names)
            )
        return names.index(name)

    def per_prompt(self, row: str, measure: str, target: str) -> FloatArray:
        """One row's measure of one target, per prompt."""
        return self.values[measure][target][self.index(row)]


def lens_rows(n_layers: int, n_heads: int, components: bool = False) -> tuple[LensRow, ...]:
    """The rows `logit_lens` decodes, in forward order."""
    rows = [LensRow("embed", -1, "embeddings")]
    for layer in range(n_layers):
        if components:
            rows += [
                LensRow(canonical(layer, h), layer, f"head {canonical(layer, h)}")
                for h in range(n_heads)
            ]
            rows.append(LensRow(canonical(layer, None), layer, canonical(layer, None)))
        else:
            rows.append(LensRow(str(layer), layer, f"block {layer}"))
    return tuple(rows)


@torch.no_grad()
def decode(bridge: Any, stream: torch.Tensor) -> torch.Tensor:
    """[n, d_model] residual stream -> [n, d_vocab] logits: the bridge's final norm, then
    its unembedding."""
    return bridge.unembed(bridge.ln_final(stream[:, None, :]))[:, 0, :]


def _hook_names(n_layers: int, components: bool) -> set[str]:
    names = {"blocks.0.hook_resid_pre"}
    for layer in range(n_layers):
        names.add(f"blocks.{layer}.hook_resid_post")
        if components:
            names |= {
                f"blocks.{layer}.hook_resid_pre",
                f"blocks.{layer}.attn.hook_z",
                f"blocks.{layer}.hook_attn_out",
            }
    return names


def _head_streams(bridge: Any, layer: int, at: Any) -> list[torch.Tensor]:
    """The stream after each head of `layer` (see the module docstring), checked against
    resid_pre + hook_attn_out."""
    z = at(f"blocks.{layer}.attn.hook_z")  # [n, heads, d_head]
    out_proj = bridge.blocks[layer].attn.o
    bias = out_proj(torch.zeros_like(z).flatten(-2))
    x = at(f"blocks.{layer}.hook_resid_pre") + bias
    streams = []
    for h in range(z.shape[1]):
        only = torch.zeros_like(z)
        only[:, h] = z[:, h]
        x = x + (out_proj(only.flatten(-2)) - bias)
        streams.append(x)
    want = at(f"blocks.{layer}.hook_resid_pre") + at(f"blocks.{layer}.hook_attn_out")
    scale = 1.0 + float(want.abs().max())
    if float((x - want).abs().max()) > 1e-4 * scale:
        raise EvaluationError(
            f"layer {layer}'s attention output is not the sum of its heads' writes through "
            "attn.o on this architecture, so the lens cannot be split per head",
            code="E360",
            hint="run the lens without --components (after each block)",
        )
    return streams


def _streams(
    bridge: Any, tokens: torch.Tensor, end: torch.Tensor, components: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The residual stream at END at every row ([n, d_model] each) and the model's own
    logits at END ([n, d_vocab])."""
    n_layers = int(bridge.cfg.n_layers)
    names = _hook_names(n_layers, components)
    logits, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    rows = torch.arange(tokens.shape[0], device=tokens.device)

    def at(name: str) -> torch.Tensor:
        return cache[name][rows, end]

    streams = [at("blocks.0.hook_resid_pre")]
    for layer in range(n_layers):
        if components:
            streams += _head_streams(bridge, layer, at)
        streams.append(at(f"blocks.{layer}.hook_resid_post"))
    return streams, logits[rows, end]


def _targets(task: TokenizedTask, vocab: int) -> dict[str, IntArray]:
    task.require_one_token(
        "the logit lens (its targets are one token at END)",
        "choose a task whose answers the tokenizer keeps whole",
    )
    out = {"correct": np.asarray(task.correct), "last": np.asarray(task.incorrect)}
    for name, ids in out.items():
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise InputError(
                f"task {task.name}: a {name} token id lies outside the model's vocabulary "
                f"of {vocab}",
                code="E361",
                hint="build the task with this model's tokenizer",
            )
    return out


def _measure(logits: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """rank (1 + the tokens with a strictly larger logit), logit and softmax probability
    of token ids[i] in row i of `logits` [n, vocab]."""
    logits = logits.float()
    picked = logits.gather(1, ids[:, None])
    return {
        "rank": 1 + (logits > picked).sum(-1),
        "logit": picked[:, 0],
        "prob": torch.exp(picked[:, 0] - torch.logsumexp(logits, -1)),
    }


@torch.no_grad()
def logit_lens(
    bridge: Any, task: TokenizedTask, *, components: bool = False, batch_size: int = BATCH
) -> LensResult:
    """The logit lens at END of every clean prompt of `task` (the unablated model)."""
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    rows = lens_rows(n_layers, n_heads, components)
    device = bridge.cfg.device
    ids = _targets(task, int(bridge.cfg.d_vocab))
    n = task.n_prompts
    values = {m: {t: np.zeros((len(rows), n)) for t in TARGETS} for m in MEASURES}
    top = np.zeros((len(rows), n), dtype=np.int64)
    worst = scale = 0.0
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        tokens = torch.as_tensor(task.clean[s:e], device=device)
        end = torch.as_tensor(task.answer_pos[s:e], device=device)
        streams, model_logits = _streams(bridge, tokens, end, components)
        for r, stream in enumerate(streams):
            logits = decode(bridge, stream)
            top[r, s:e] = logits.argmax(-1).cpu().numpy()
            for target, tid in ids.items():
                got = _measure(logits, torch.as_tensor(tid[s:e], device=device))
                for m in MEASURES:
                    values[m][target][r, s:e] = got[m].double().cpu().numpy()
        # `logits` is now the last row's: the stream after the last block
        worst = max(worst, float((logits.float() - model_logits.float()).abs().max()))
        scale = max(scale, float(model_logits.float().abs().max()))
    meta = {"task": task.name, "n_prompts": n, "components": components, "model": "unablated"}
    return LensResult(rows, values, top, worst, final_max_abs_logit=scale, meta=meta)
