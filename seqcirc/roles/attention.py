"""Attention-pattern roles: previous-token, duplicate and induction scores on made-up
repeated random-token sequences, and attends(from, to) on a task's prompts.

The detection patterns are TransformerLens's (transformer_lens.head_detector); its
`detect_head` itself does not fit here, for three reasons: it takes strings and
re-tokenizes them (random token ids do not survive a decode/encode round trip, and the
bridges seqcirc builds in tests have no tokenizer); and its "mul" score divides by the
attention of *every* query row, including rows that have no target at all (the first
half of a repeated sequence has no duplicate), so a perfect induction head scores about
0.5. Here a head's score is the attention mass on the pattern's targets, averaged over
the query rows that have at least one target: a perfect head scores 1.0, a head that
never looks at a target 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from transformer_lens.head_detector import (
    get_duplicate_token_head_detection_pattern,
    get_induction_head_detection_pattern,
    get_previous_token_head_detection_pattern,
)

from seqcirc.errors import InputError, did_you_mean
from seqcirc.tasks.types import TokenizedTask

PatternRole = Literal["previous_token", "duplicate", "induction"]
PATTERN_ROLES: tuple[PatternRole, ...] = ("previous_token", "duplicate", "induction")
FloatArray = npt.NDArray[np.float64]

_DETECTORS = {
    "previous_token": get_previous_token_head_detection_pattern,
    "duplicate": get_duplicate_token_head_detection_pattern,
    "induction": get_induction_head_detection_pattern,
}


def detection_patterns(tokens: torch.Tensor, role: PatternRole) -> torch.Tensor:
    """[batch, seq] token ids -> [batch, seq(query), seq(key)] 0/1 target mask."""
    make = _DETECTORS[role]
    return torch.stack([make(row.cpu()) for row in tokens]).float()


def pattern_match(pattern: torch.Tensor, detection: torch.Tensor) -> torch.Tensor:
    """Attention mass on targets, averaged over query rows with a target.

    pattern: [batch, heads, q, k] attention weights; detection: [batch, q, k] 0/1.
    Returns [heads]. Rows without a target are left out (not counted as zero).
    """
    mass = torch.einsum("bhqk,bqk->bhq", pattern.float(), detection.to(pattern.device))
    rows = (detection.sum(-1) > 0).to(pattern.device)  # [batch, q]
    if not rows.any():
        raise InputError(
            "no query position has a target in these sequences",
            code="E807",
            hint="the repeated sequences are too short",
        )
    return (mass * rows[:, None, :]).sum((0, 2)) / rows.sum()


def repeated_random_tokens(
    pool: Sequence[int], *, n_seqs: int = 8, half_len: int = 20, seed: int = 0, bos: int | None
) -> torch.Tensor:
    """[n_seqs, (bos) + 2*half_len]: half_len distinct random tokens, then the same again.

    Drawn without replacement, so the only duplicates are the repeat (the duplicate and
    induction targets are then exactly the second half's copies).
    """
    if half_len < 2 or half_len > len(pool):
        raise InputError(
            f"half_len={half_len} needs 2..{len(pool)} (the usable vocabulary)", code="E807"
        )
    rng = np.random.default_rng(seed)
    ids = np.asarray(pool, dtype=np.int64)
    halves = np.stack([rng.choice(ids, size=half_len, replace=False) for _ in range(n_seqs)])
    seqs = np.concatenate([halves, halves], axis=1)
    if bos is not None:
        seqs = np.concatenate([np.full((n_seqs, 1), bos, dtype=np.int64), seqs], axis=1)
    return torch.as_tensor(seqs)


def token_pool(bridge: Any, tokenizer: Any | None) -> list[int]:
    """Token ids to draw random sequences from: the vocabulary less special tokens."""
    special = set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer else set()
    return [i for i in range(int(bridge.cfg.d_vocab)) if i not in special]


@torch.no_grad()
def all_patterns(bridge: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    """blocks.{L}.attn.hook_pattern for every layer: L x [batch, heads, q, k]."""
    names = {f"blocks.{layer}.attn.hook_pattern" for layer in range(int(bridge.cfg.n_layers))}
    _, cache = bridge.run_with_cache(
        tokens.to(bridge.cfg.device), names_filter=lambda n: n in names
    )
    return [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(int(bridge.cfg.n_layers))]


def pattern_scores(
    bridge: Any,
    tokenizer: Any | None = None,
    *,
    n_seqs: int = 8,
    half_len: int = 20,
    seed: int = 0,
    bos: int | None = None,
) -> dict[str, FloatArray]:
    """Previous-token, duplicate and induction scores of every head: role -> [layers, heads]."""
    n_ctx, bos_len = int(bridge.cfg.n_ctx), int(bos is not None)
    if 2 * half_len + bos_len > n_ctx:
        raise InputError(
            f"repeated sequences of 2 x {half_len} tokens do not fit the model's context "
            f"of {n_ctx}",
            code="E807",
            hint=f"use a repeat length (half_len, --repeat-len) <= {(n_ctx - bos_len) // 2}",
        )
    tokens = repeated_random_tokens(
        token_pool(bridge, tokenizer), n_seqs=n_seqs, half_len=half_len, seed=seed, bos=bos
    )
    patterns = all_patterns(bridge, tokens)
    out: dict[str, FloatArray] = {}
    for role in PATTERN_ROLES:
        det = detection_patterns(tokens, role)
        out[role] = np.stack([pattern_match(p, det).cpu().numpy() for p in patterns]).astype(
            np.float64
        )
    return out


def position_index(task: TokenizedTask, name: str) -> npt.NDArray[np.int64]:
    """Per-prompt token index of a named position, or a clear error naming the known ones."""
    if name not in task.positions:
        known = sorted(task.positions)
        raise InputError(
            f"task {task.name!r} has no position {name!r}",
            code="E808",
            hint=did_you_mean(name, known) + f"positions: {', '.join(known)}",
        )
    return np.asarray(task.positions[name], dtype=np.int64)


def attends_from_patterns(
    patterns: Sequence[torch.Tensor], src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]
) -> FloatArray:
    """Mean over prompts of pattern[p, head, src[p], dst[p]] per layer: [layers, heads]."""
    out = []
    for pat in patterns:  # indices on the pattern's device (a GPU run's too)
        p = torch.arange(len(src), device=pat.device)
        q = torch.as_tensor(src, device=pat.device)
        k = torch.as_tensor(dst, device=pat.device)
        out.append(pat[p, :, q, k].float().mean(0).cpu().numpy())
    return np.stack(out).astype(np.float64)


def attends_scores(
    bridge: Any,
    task: TokenizedTask,
    src: str,
    dst: str,
    *,
    which: Literal["clean", "corrupted"] = "clean",
    batch_size: int = 64,
) -> FloatArray:
    """attends(from=src, to=dst): mean attention weight over the task's prompts, [layers, heads]."""
    q, k = position_index(task, src), position_index(task, dst)
    if np.any(k > q):
        raise InputError(
            f"{dst} comes after {src} in some prompts: a causal head cannot attend forward",
            code="E808",
            hint=f"swap them: attends(from={dst}, to={src})",
        )
    tokens = torch.as_tensor(task.clean if which == "clean" else task.corrupted)
    total = np.zeros((int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)))
    for s in range(0, len(tokens), batch_size):
        pats = all_patterns(bridge, tokens[s : s + batch_size])
        part = attends_from_patterns(pats, q[s : s + batch_size], k[s : s + batch_size])
        total += part * len(pats[0])
    return total / len(tokens)
