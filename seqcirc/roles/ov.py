"""OV scores: what a head's value-output map writes about a member of an ordered set.

The paper's "next score" (and Gould et al.'s successor heads): take the residual stream
after block 0 at each member's position, pass it through the head's own input layer
norm (ln1 of the head's layer, as the paper's code did), W_V (+ b_V) and W_O, then the
final layer norm and the unembedding. b_O is left out: it belongs to the layer, not the
head. A hit when the target token ranks in the top k of the vocabulary.

- successor: target = the next member; copy: target = the member itself.
- "first in set": the share of member positions where the target has the highest
  logit among the in-scope members' tokens (Gould et al.'s succession score).

Ties count against the target (rank = number of other tokens with logit >= the
target's), so a head that writes nothing (all logits equal) scores 0, not 1.
The layer norms and unembedding are the bridge's own modules, so folded layer norms
and centred weights (TransformerLens's compatibility mode) give the same ranks. One
difference remains: compatibility mode also folds each head's value bias b_V (and its
ln1 bias) into the layer's b_O, so the per-head OV map loses them there, as in
HookedTransformer; by default (compatibility mode off) they are included, as in the
paper's code. The mode is recorded with every result (models.ModelIdentity).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from seqcirc.errors import InputError
from seqcirc.roles.members import (
    Context,
    bos_id,
    member_contexts,
    member_tokens,
)

Target = Literal["next", "self"]
FloatArray = npt.NDArray[np.float64]
_CHUNK_ELEMENTS = 1 << 24  # logits held at once (rows x heads x vocab): ~64 MB in float32


@dataclass(frozen=True)
class OVScores:
    """OV scores of the heads scored, [n_layers, n_heads]; NaN where a head was not scored.

    hits[l, h, i]: target of scored position i in the top k (positions as in `member`).
    """

    set_name: str
    target: Target
    top_k: int
    context: Context
    members: tuple[str, ...]
    topk: FloatArray
    first_in_set: FloatArray
    hits: npt.NDArray[np.bool_]
    member: npt.NDArray[np.int64]

    @property
    def n_scored(self) -> int:
        return int(self.member.shape[0])

    def per_member(self, layer: int, head: int) -> dict[str, float]:
        """Top-k hit rate of one head for each member (over its positions)."""
        out: dict[str, float] = {}
        for i, word in enumerate(self.members):
            mask = self.member == i
            if mask.any():
                out[word] = float(self.hits[layer, head, mask].mean())
        return out


def check_heads(bridge: Any, heads: Iterable[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """All heads, or the given (layer, head) pairs checked against the model's shape."""
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    if heads is None:
        return [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    out = []
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InputError(
                f"head {layer}.{head} does not exist in this model",
                code="E805",
                hint=f"layers 0..{n_layers - 1}, heads 0..{n_heads - 1}",
            )
        out.append((int(layer), int(head)))
    return out


@torch.no_grad()
def resid_after_block0(bridge: Any, tokens: npt.NDArray[np.int64]) -> torch.Tensor:
    """blocks.0.hook_resid_post for a batch of token ids: [batch, pos, d_model]."""
    name = "blocks.0.hook_resid_post"
    device = bridge.cfg.device
    _, cache = bridge.run_with_cache(
        torch.as_tensor(tokens, device=device), names_filter=lambda n: n == name
    )
    return cache[name]


@torch.no_grad()
def head_ov_logits(
    bridge: Any, layer: int, heads: Sequence[int], resid: torch.Tensor
) -> torch.Tensor:
    """Logits each head's OV map writes: resid [rows, d_model] -> [rows, heads, vocab]."""
    idx = torch.as_tensor(list(heads), device=resid.device)
    x = bridge.blocks[layer].ln1(resid)  # the head's own input norm
    W_V = bridge.W_V[layer]  # [kv heads, d, dh]: fewer than the query heads under GQA
    kv = idx // (bridge.W_O.shape[1] // W_V.shape[0])  # query head h reads kv head h // group
    v = torch.einsum("nd,hde->nhe", x, W_V[kv])
    with contextlib.suppress(AttributeError):  # bias-free (Llama) models have no b_V
        v = v + bridge.b_V[layer][kv]
    out = torch.einsum("nhe,hed->nhd", v, bridge.W_O[layer][idx])
    return bridge.unembed(bridge.ln_final(out))


def _score(
    logits: torch.Tensor,  # [rows, heads, vocab]
    spellings: Sequence[Sequence[int]],  # per row: ids that count as the target
    target_id: torch.Tensor,  # [rows] the target's prompt-form id
    set_ids: torch.Tensor,  # [n_members] in-scope member ids
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hit in top k [rows, heads], first among set [rows, heads]); ties go against the target."""
    best_rank = None
    width = max(len(s) for s in spellings)
    for j in range(width):
        ids = torch.as_tensor([s[min(j, len(s) - 1)] for s in spellings], device=logits.device)
        tgt = logits.gather(2, ids.view(-1, 1, 1).expand(-1, logits.shape[1], 1))
        rank = (logits >= tgt).sum(-1) - 1  # other tokens at least as high
        best_rank = rank if best_rank is None else torch.minimum(best_rank, rank)
    assert best_rank is not None
    in_set = logits[:, :, set_ids]  # [rows, heads, n_members]
    tgt = logits.gather(2, target_id.view(-1, 1, 1).expand(-1, logits.shape[1], 1))
    first = (in_set >= tgt).sum(-1) == 1  # only the target itself reaches its logit
    return best_rank < top_k, first


@torch.no_grad()
def ov_scores(
    bridge: Any,
    tokenizer: Any,
    set_name: str,
    *,
    target: Target = "next",
    top_k: int = 5,
    context: Context = "prompts",
    members: int | Sequence[str] | None = None,
    heads: Iterable[tuple[int, int]] | None = None,
) -> OVScores:
    """Successor (target="next") or copy (target="self") OV scores of every head (or `heads`).

    members: the set's default task range (None), its first N members, or a run of them.
    """
    if target not in ("next", "self"):
        raise InputError(f"unknown OV target {target!r}", code="E804", hint="next or self")
    d_vocab = int(bridge.cfg.d_vocab)
    if not 1 <= top_k <= d_vocab:
        raise InputError(f"top={top_k} is out of range", code="E806", hint=f"give 1..{d_vocab}")
    toks = member_tokens(tokenizer, set_name, members)
    ctx = member_contexts(toks, context, bos_id(bridge, tokenizer))
    resid = resid_after_block0(bridge, ctx.tokens)
    rows = resid[torch.as_tensor(ctx.prompt), torch.as_tensor(ctx.pos)]  # [n, d_model]
    tgt_member = ctx.member + (1 if target == "next" else 0)
    device = rows.device
    target_id = torch.as_tensor([toks.ids[i] for i in tgt_member], device=device)
    spellings = [sorted(toks.spellings[i]) for i in tgt_member]
    set_ids = torch.as_tensor(toks.ids, device=device)

    shape = (int(bridge.cfg.n_layers), int(bridge.cfg.n_heads))
    topk = np.full(shape, np.nan)
    first = np.full(shape, np.nan)
    hits = np.zeros((*shape, len(tgt_member)), dtype=bool)
    by_layer: dict[int, list[int]] = {}
    for layer, head in check_heads(bridge, heads):
        by_layer.setdefault(layer, []).append(head)
    n = rows.shape[0]
    for layer, layer_heads in by_layer.items():
        step = max(1, _CHUNK_ELEMENTS // (len(layer_heads) * d_vocab))
        hit_parts, first_parts = [], []
        for s in range(0, n, step):
            logits = head_ov_logits(bridge, layer, layer_heads, rows[s : s + step])
            h, f = _score(
                logits.float(), spellings[s : s + step], target_id[s : s + step], set_ids, top_k
            )
            hit_parts.append(h.cpu())
            first_parts.append(f.cpu())
        hit = torch.cat(hit_parts).numpy()  # [n, heads]
        fst = torch.cat(first_parts).numpy()
        for j, head in enumerate(layer_heads):
            hits[layer, head] = hit[:, j]
            topk[layer, head] = hit[:, j].mean()
            first[layer, head] = fst[:, j].mean()
    return OVScores(set_name, target, top_k, context, toks.members, topk, first, hits, ctx.member)
