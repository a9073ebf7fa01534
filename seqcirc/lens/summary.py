"""The logit lens summarised per row: for each target, the median rank, the mean logit,
the mean probability and the share of prompts where it is the top token; and the most
common top-1 token. As JSON-ready data and as a plain-text table."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from seqcirc.lens.stream import TARGETS, LensResult


def _token_text(tokenizer: Any, token_id: int) -> str:
    if tokenizer is None:
        return f"#{token_id}"
    return str(tokenizer.decode([token_id]))


def target_summary(result: LensResult, row: int, target: str) -> dict[str, float]:
    """One row's summary of one target over the prompts."""
    ranks = result.values["rank"][target][row]
    return {
        "median_rank": float(np.median(ranks)),
        "mean_logit": float(result.values["logit"][target][row].mean()),
        "mean_prob": float(result.values["prob"][target][row].mean()),
        "top1_share": float((ranks == 1).mean()),
    }


def lens_table(result: LensResult, tokenizer: Any = None) -> dict[str, Any]:
    """Every row's summary, JSON-ready: {"meta", "final_max_abs_diff", "rows": [...]}."""
    rows = []
    for i, row in enumerate(result.rows):
        token, count = Counter(result.top[i].tolist()).most_common(1)[0]
        rows.append(
            {
                "row": row.name,
                "layer": row.layer,
                "after": row.after,
                **{t: target_summary(result, i, t) for t in TARGETS},
                "top": {
                    "token_id": int(token),
                    "token": _token_text(tokenizer, int(token)),
                    "share": count / result.top.shape[1],
                },
            }
        )
    return {
        "meta": dict(result.meta),
        "final_max_abs_diff": result.final_max_abs_diff,
        "final_max_abs_logit": result.final_max_abs_logit,
        "rows": rows,
    }


def lens_text(table: dict[str, Any], title: str = "") -> str:
    """The table as text: one line per row, rank and logit of each target, top token."""
    head = (
        f"{'after':<12}"
        + "".join(f"{t + ' rank':>14}{t + ' logit':>14}" for t in TARGETS)
        + "   top-1 token (share)"
    )
    lines = [title] if title else []
    lines.append(head)
    for row in table["rows"]:
        cells = "".join(
            f"{row[t]['median_rank']:>14g}{row[t]['mean_logit']:>14.3f}" for t in TARGETS
        )
        top = row["top"]
        lines.append(f"{row['after']:<12}{cells}   {top['token']!r} ({top['share']:.2f})")
    return "\n".join(lines)
