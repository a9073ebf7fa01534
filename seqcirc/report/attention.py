"""The attention summary a role claim records for the HTML report: one head's attention
between the task's named positions (S1..S4, END, ...), averaged over prompts.

Named positions can sit at different token indices in different prompts, so the mean is
taken per prompt at that prompt's indices, never over raw token positions. numpy only:
the caller passes patterns it already has (e.g. blocks.L.attn.hook_pattern[:, H]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from seqcirc.errors import EvaluationError


def named_attention(
    patterns: npt.ArrayLike,
    positions: Mapping[str, npt.ArrayLike],
    caption: str = "",
) -> dict[str, Any]:
    """`patterns` [n_prompts, query, key] of one head; `positions` name -> [n_prompts]
    token index (TokenizedTask.positions). Returns {"labels", "pattern", "caption"} for
    ClaimResult.detail["attention"]: pattern[a][b] = mean over prompts of the attention
    from named position a to named position b. Labels are ordered by mean index."""
    p = np.asarray(patterns, dtype=np.float64)
    if p.ndim != 3 or p.shape[1] != p.shape[2]:
        raise EvaluationError(
            f"attention patterns must be [prompts, query, key] with query == key, got {p.shape}",
            code="E902",
        )
    index = {k: np.asarray(v, dtype=np.int64) for k, v in positions.items()}
    for name, idx in index.items():
        if idx.shape != (p.shape[0],) or idx.min(initial=0) < 0 or idx.max(initial=0) >= p.shape[1]:
            raise EvaluationError(
                f"named position {name!r} does not index these patterns "
                f"({p.shape[0]} prompts of length {p.shape[1]})",
                code="E902",
            )
    labels = sorted(index, key=lambda k: (float(index[k].mean()), k))
    rows = np.arange(p.shape[0])
    grid = [[float(p[rows, index[a], index[b]].mean()) for b in labels] for a in labels]
    text = caption or f"mean attention between named positions over {p.shape[0]} prompts"
    return {"labels": labels, "pattern": grid, "caption": text}
