"""Token-level attention heatmaps (`seqcirc attention`, and the HTML report's pattern of
a head an `attends` role claim names): query rows, key columns, labelled with tokens;
the cells above the diagonal (a causal head's future) left blank, as the authors'
notebooks mask them; the claimed from -> to cell outlined. matplotlib's Figure API with
the Agg canvas, imported inside the function."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("png", "svg", "pdf")


def heatmaps(panels: Sequence[Mapping[str, Any]], title: str, fmt: str = "png") -> bytes:
    """A grid of heatmaps, one per panel ({"title", "pattern": [[...]], "labels": [...],
    optional "cell": [query, key]}), as `fmt` bytes."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n = max(len(panels), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    size = max((len(p["labels"]) for p in panels), default=4)
    side = min(2.6 + 0.3 * size, 8.0)
    fig = Figure(figsize=(ncols * (side + 1.2), nrows * side + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        grid = np.asarray(panel["pattern"], dtype=float)
        shown = np.where(np.triu(np.ones_like(grid, dtype=bool), k=1), np.nan, grid)
        image = ax.imshow(shown, cmap="inferno", vmin=0.0, vmax=max(float(np.nanmax(grid)), 1e-9))
        fig.colorbar(image, ax=ax, shrink=0.75, label="attention weight")
        labels = list(panel["labels"])
        font = 7 if len(labels) <= 24 else 5
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(len(labels)), labels, fontsize=font)
        ax.set_xlabel("key (attended to)", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
        ax.set_title(str(panel["title"]), fontsize=8)
        if panel.get("cell"):
            q, k = panel["cell"]
            ax.add_patch(Rectangle((k - 0.5, q - 0.5), 1, 1, fill=False, ec="#00e5ff", lw=2))
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()
