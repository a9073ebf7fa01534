"""The HTML report's token-level attention figures: for each `attends` role claim, the
head's attention pattern averaged over the task's clean prompts (recorded by
seqcirc.claims.roles as the claim's detail["attention_tokens"]), drawn by
seqcirc.report.attention_heatmap with the claimed from -> to cell outlined."""

from __future__ import annotations

from typing import Any

from seqcirc.report.figures import Figure
from seqcirc.results import CircuitResult


def token_attention_figures(circuit: CircuitResult) -> list[Figure]:
    from seqcirc.report.attention_heatmap import heatmaps

    out = []
    for claim in circuit.claims:
        tokens: Any = (claim.detail or {}).get("attention_tokens") if claim.kind == "role" else None
        if not isinstance(tokens, dict) or not tokens.get("pattern"):
            continue
        head = tokens.get("head", "")
        panel = {
            "title": claim.text or claim.id,
            "pattern": tokens["pattern"],
            "labels": tokens.get("labels", []),
            "cell": (tokens.get("attends") or {}).get("cell"),
        }
        png = heatmaps([panel], f"head {head}: attention pattern", "png")
        caption = str(tokens.get("caption", f"head {head}'s attention pattern"))
        mean = (tokens.get("attends") or {}).get("mean")
        if mean is not None:
            caption += f"; mean attention between them, per prompt: {mean:.3f}"
        out.append(Figure(f"Attention pattern of head {head}", caption + ".", png, ablated=False))
    return out
