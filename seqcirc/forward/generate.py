"""Greedy decoding under node replacement, for either engine (seqcirc.forward.select).

Each step runs the prompt and the tokens generated so far through the engine's node
forward with the intervention applied at every position, and appends the arg-max token
of the last position. There is no KV cache: step t reruns S + t tokens, so N tokens
cost N forwards of up to S + N - 1 tokens. The fast engine's hand-written forwards take
no past keys and values; the generic one could only take them through the bridge, whose
attention (TransformerLens 4.3) leaves Hugging Face's DynamicCache empty, so a cached
second step attends to nothing before it. Rows are independent: a row's tokens never
depend on another row's.

Replacement values at the generated positions (docs/language.md, "Generation"): a
position after the prompt gets the value of the prompt's last position (END), per
position or per prompt as the values are, so mean ablation uses the corrupted prompts'
mean at END, resample the paired corrupted prompt's activation at END, zero stays zero.
A mask given per position must cover the generated positions too (the engine's
seqcirc.engine.generation marks them off the named positions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqcirc.forward.common import Replacement
from seqcirc.forward.select import Model, forward_nodes


def extend_values(values: Replacement, new: int, ends: Tensor | None = None) -> Replacement:
    """Values [(n,) S, ...] as [(n,) S + new, ...]: each new position gets position S - 1's.

    With `ends` [n] (ragged prompts, right-padded: each prompt's END), a per-prompt
    tensor's positions after prompt i's END get prompt i's value at END instead, so its
    generated tokens, written there, see the value of its own last position."""

    def extend(t: Tensor, per_prompt_dims: int) -> Tensor:
        axis = 1 if t.dim() == per_prompt_dims else 0
        last = t.narrow(axis, t.shape[axis] - 1, 1)
        shape = list(t.shape)
        shape[axis] = new
        out = torch.cat([t, last.expand(shape)], axis)
        if ends is None or axis == 0:
            return out  # the same value at every position is the same after any END
        pos = torch.arange(out.shape[1], device=out.device)
        src = torch.minimum(pos[None, :], ends.to(out.device)[:, None])  # [n, S + new]
        index = src.reshape(*src.shape, *([1] * (out.dim() - 2))).expand(out.shape)
        return out.gather(1, index)

    if new == 0:  # nothing generated: what lies past END is never read
        return values
    return Replacement(
        tuple(extend(z, 4) for z in values.z), tuple(extend(m, 3) for m in values.mlp)
    )


def greedy(
    w: Model,
    tokens: Tensor,
    max_new_tokens: int,
    *,
    replace: Tensor | None = None,
    values: Replacement | None = None,
    lengths: Tensor | None = None,
) -> Tensor:
    """Generated token ids [B, max_new_tokens] of prompts tokens [B, S] (the prediction at
    the last position each step), with nodes replaced where `replace` [B, 1, n_nodes] (the
    same at every position) or [B, S + max_new_tokens - 1, n_nodes] says by `values` (per
    position [S, ...], or one row per batch row [B, S, ...]; extend_values extends them).
    Nothing stops at an end-of-text token: every row gets max_new_tokens tokens.

    `lengths` [B]: right-padded prompts of different lengths; row i's tokens are written
    after its own last token, over its padding (causal attention: no token before them
    ever saw a pad), and its prediction is read at its own last position."""
    n, seq = tokens.shape
    ends = (
        torch.full((n,), seq, dtype=torch.long, device=tokens.device)
        if lengths is None
        else lengths.to(device=tokens.device, dtype=torch.long)
    )
    rows = torch.arange(n, device=tokens.device)
    ext = None if values is None else extend_values(values, max_new_tokens - 1)
    out = tokens.new_empty(n, max_new_tokens)
    seqs = torch.cat([tokens, tokens.new_zeros(n, max_new_tokens - 1)], 1)
    for step in range(max_new_tokens):
        length = int(ends.max()) + step
        run = forward_nodes(
            w, seqs[:, :length], ends + step - 1,
            replace=None if replace is None else replace[:, : min(length, replace.shape[1])],
            values=None if ext is None else _upto(ext, length),
        )  # fmt: skip
        assert run.logits is not None
        out[:, step] = run.logits.argmax(-1)
        if step + 1 < max_new_tokens:
            seqs[rows, ends + step] = out[:, step]
    return out


def _upto(values: Replacement, length: int) -> Replacement:
    """The first `length` positions of values [(n,) S', ...]."""

    def cut(t: Tensor, per_prompt_dims: int) -> Tensor:
        return t[:, :length] if t.dim() == per_prompt_dims else t[:length]

    return Replacement(tuple(cut(z, 4) for z in values.z), tuple(cut(m, 3) for m in values.mlp))


__all__ = ["extend_values", "greedy"]
