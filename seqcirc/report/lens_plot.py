"""The logit lens as a figure (`seqcirc lens -o lens.png`): the median rank (log scale,
1 at the top) and the mean logit of the correct answer and of the last member at every
row of the lens, from seqcirc.lens.summary.lens_table. matplotlib's Figure API with the
Agg canvas, imported inside the function, as report/plots.py does."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

FORMATS = ("png", "svg", "pdf")
_COLOURS = {"correct": "#1a7f37", "last": "#cf222e"}


def lens_figure(table: Mapping[str, Any], title: str, fmt: str = "png") -> bytes:
    """Two panels over the lens rows: median rank and mean logit, per target."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = table["rows"]
    xs = list(range(len(rows)))
    fig = Figure(figsize=(min(4.0 + 0.12 * len(rows), 16), 6.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    rank_ax, logit_ax = fig.subplots(2, 1, sharex=True)
    for target, colour in _COLOURS.items():
        label = "correct answer" if target == "correct" else "last member (incorrect)"
        rank_ax.plot(xs, [r[target]["median_rank"] for r in rows], "o-", ms=3,
                     color=colour, label=label)  # fmt: skip
        logit_ax.plot(xs, [r[target]["mean_logit"] for r in rows], "o-", ms=3, color=colour,
                      label=label)  # fmt: skip
    rank_ax.set_yscale("log")
    rank_ax.invert_yaxis()  # rank 1 (the top token) at the top
    rank_ax.set_ylabel("median rank (1 = top)")
    rank_ax.legend(fontsize=8)
    logit_ax.set_ylabel("mean logit")
    ticks = _ticks(rows)
    logit_ax.set_xticks([i for i, _ in ticks], [t for _, t in ticks], rotation=90, fontsize=7)
    logit_ax.set_xlabel("residual stream at END after")
    for ax in (rank_ax, logit_ax):
        ax.grid(alpha=0.3)
        for i, row in enumerate(rows):  # the end of each block
            if row["row"].startswith("mlp"):
                ax.axvline(i, color="#ccc", lw=0.6)
    import textwrap

    width = int(fig.get_figwidth() * 12)  # characters that fit at 9 points
    rank_ax.set_title("\n".join(textwrap.wrap(title, width)), fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def _ticks(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Every row's label, or with per-component rows, only the embeddings and each MLP
    (each block's end), so a 12-layer model's 157 rows stay legible."""
    if len(rows) <= 40:
        return [(i, r["row"]) for i, r in enumerate(rows)]
    ends = [i for i, r in enumerate(rows) if r["layer"] < 0 or r["row"].startswith("mlp")]
    return [(i, rows[i]["row"]) for i in ends]
