"""The report's figures as PNG bytes. matplotlib is imported inside each function (the
Figure API with the Agg canvas, never pyplot's global state), so importing seqcirc or
seqcirc.report costs nothing. Every figure's title says what was ablated and how."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from seqcirc.language.names import parse_component

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_EDGE = re.compile(r"^(?P<sender>[^-]+)->(?P<receiver>[^\[]+)\[(?P<input>\w+)\]$")
_SOURCE_MARKERS = {"random": ("o", 28), "group": ("s", 90), "greedy": ("D", 70)}
_SOURCE_COLOURS = {"random": "#1f77b4", "greedy": "#d62728", "group": "#2ca02c"}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _wrap(text: str, width: int = 95) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def faithfulness_png(
    variants: Mapping[str, Mapping[str, Any]],
    setup: str,
    baseline: Sequence[float] | None = None,
    observed: float | None = None,
    baseline_label: str = "random circuits of the same size",
    thresholds: Sequence[tuple[str, float, str]] = (),
) -> bytes:
    """faithfulness_fig as PNG bytes."""
    return _png(faithfulness_fig(variants, setup, baseline, observed, baseline_label, thresholds))


def faithfulness_fig(
    variants: Mapping[str, Mapping[str, Any]],
    setup: str,
    baseline: Sequence[float] | None = None,
    observed: float | None = None,
    baseline_label: str = "random circuits of the same size",
    thresholds: Sequence[tuple[str, float, str]] = (),
) -> Figure:
    """Each faithfulness variant with its confidence interval and, on its row, the
    threshold of each claim about it ((variant, threshold, label)); beside it, when
    given, the random-baseline distribution with the circuit's value marked."""
    shown = {k: v for k, v in variants.items() if "error" not in v and v.get("value") is not None}
    panels = 2 if baseline is not None and len(baseline) else 1
    fig = _figure(4.2 * panels + 1.5, 3.4)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    names = list(shown)
    for i, name in enumerate(names):
        f = shown[name]
        value, lo, hi = f["value"], f.get("lower"), f.get("upper")
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            ax.errorbar(
                value, i, xerr=[[value - lo], [hi - value]], fmt="o", color="#1f77b4",
                capsize=5, lw=2,
            )  # fmt: skip
            level = f.get("level", 0.95)
            ax.annotate(
                f"{value:.3f} [{lo:.3f}, {hi:.3f}] ({level:.0%})", (value, i),
                xytext=(0, 9), textcoords="offset points", ha="center", fontsize=8,
            )  # fmt: skip
        else:
            ax.plot(value, i, "o", color="#1f77b4")
            ax.annotate(f"{value:.3f}", (value, i), xytext=(0, 9), textcoords="offset points",
                        ha="center", fontsize=8)  # fmt: skip
    ends = [x for f in shown.values() for x in (f["value"], f.get("lower"), f.get("upper"))
            if x is not None and math.isfinite(x)]  # fmt: skip
    for variant, value, label in thresholds:
        if variant in names:
            i = names.index(variant)
            ax.plot([value, value], [i - 0.35, i + 0.35], color="#d62728", ls="--", lw=1.5,
                    label=f"claim {label}")  # fmt: skip
            ends.append(value)
    ax.set_xlim(min([0.0, *ends]) - 0.08, max([1.0, *ends]) + 0.15)  # room for the labels
    ax.axvline(1.0, color="#555", ls="--", lw=1, label="full model (1)")
    ax.axvline(0.0, color="#bbb", ls=":", lw=1)
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel("faithfulness (circuit relative to the full model)")
    ax.set_title("faithfulness with bootstrap CI", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    if panels == 2 and baseline is not None:
        bx = axes[1]
        bx.hist(list(baseline), bins=min(30, max(5, len(baseline) // 4)), color="#9ecae1",
                edgecolor="#4a7fb0", label=f"{baseline_label} (n={len(baseline)})")  # fmt: skip
        if observed is not None:
            bx.axvline(observed, color="#d62728", lw=2, label=f"this circuit: {observed:.3f}")
        bx.set_ylim(top=bx.get_ylim()[1] * 1.35)  # room for the legend above the bars
        bx.set_xlabel("value of the claim's statistic")
        bx.set_ylabel("random circuits")
        bx.set_title("random-circuit baseline", fontsize=10)
        bx.legend(fontsize=7, loc="upper left")
    fig.suptitle(_wrap(setup), fontsize=8)
    return fig


def completeness_png(
    points: Sequence[Mapping[str, Any]],
    setup: str,
    full: tuple[float, float] | None = None,
    band: float | None = None,
) -> bytes:
    """F(C \\ K) against F(M \\ K) for each knocked-out K; a complete circuit keeps every
    point on y = x (Wang et al. 2022). `full`: (F(M), F(C)), the point of K = {};
    `band`: the claim's threshold in metric units, drawn as y = x +- band."""
    fig = _figure(5.2, 4.6)
    ax = fig.subplots()
    xs = [float(p["f_model_minus"]) for p in points]
    ys = [float(p["f_circuit_minus"]) for p in points]
    if full is not None:
        ax.scatter(*full, s=90, marker="*", color="black", label="K = {} (F(M), F(C))", zorder=3)
        xs, ys = [*xs, full[0]], [*ys, full[1]]
    seen: set[str] = set()
    for p, x, y in zip(points, xs, ys, strict=False):
        kind = str(p.get("source", "random")).split(":")[0]
        colour = _SOURCE_COLOURS.get(kind, "#9467bd")
        label = {"group": "role group", "greedy": "greedy worst-case", "random": "random K"}.get(
            kind, kind
        )
        marker, size = _SOURCE_MARKERS.get(kind, ("o", 28))
        # random K filled, the others hollow and larger: coinciding points stay visible
        face = colour if kind == "random" else "none"
        ax.scatter(x, y, s=size, marker=marker, facecolors=face, edgecolors=colour, lw=1.5,
                   alpha=0.85, label=None if kind in seen else label)  # fmt: skip
        seen.add(kind)
        if kind != "random":
            ax.annotate(
                ",".join(p.get("knocked_out", []))[:30], (x, y), xytext=(4, -9),
                textcoords="offset points", fontsize=6, color=colour,
            )  # fmt: skip
    both = xs + ys
    lo, hi = (min(both), max(both)) if both else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#555", ls="--", lw=1, label="y = x")
    if band is not None:
        xs_band = [lo - pad, hi + pad]
        bands: tuple[tuple[int, str | None], ...] = ((1, "claim's threshold"), (-1, None))
        for sign, band_label in bands:
            ys_band = [x + sign * band for x in xs_band]
            ax.plot(xs_band, ys_band, color="#d62728", ls=":", lw=1, label=band_label)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("F(M \\ K): full model with K ablated")
    ax.set_ylabel("F(C \\ K): circuit with K ablated")
    ax.set_title("completeness", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle(_wrap(setup, 75), fontsize=7)
    return _png(fig)


def ablation_heatmap_png(
    values: Mapping[str, float],
    n_layers: int,
    n_heads: int,
    setup: str,
    label: str,
    circuit: Sequence[str] = (),
    centre: float = 0.0,
    title: str = "single-component ablation",
) -> bytes:
    """Per-component ablation: layers x heads, with the layer's MLP as the last column,
    on a diverging scale around `centre` (1 for F(M \\ v)/F(M), 0 for a drop).
    Components without a value are grey; components of the circuit are outlined."""
    import numpy as np
    from matplotlib.patches import Rectangle

    grid = ablation_grid(values, n_layers, n_heads)
    width = min(2.6 + 0.55 * (n_heads + 1), 12)
    fig = _figure(width, min(2.0 + 0.42 * n_layers, 10))
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    span = float(np.max(np.abs(finite - centre))) if finite.size else 0.0
    span = span or 1.0
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=_cmap(), vmin=centre - span,
                      vmax=centre + span, aspect="auto")  # fmt: skip
    fig.colorbar(image, ax=ax, label=_wrap(label, 40))
    ax.set_xticks(range(n_heads + 1), [*map(str, range(n_heads)), "MLP"])
    ax.set_yticks(range(n_layers), [str(i) for i in range(n_layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    for name in circuit:
        layer, col = component_cell(name, n_heads)
        if 0 <= layer < n_layers:
            ax.add_patch(Rectangle((col - 0.5, layer - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    if n_layers * (n_heads + 1) <= 200:
        for (layer, col), value in np.ndenumerate(grid):
            if math.isfinite(value):
                dark = abs(value - centre) > 0.6 * span
                ax.text(col, layer, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_title(_wrap(f"{title} (outlined: in the circuit)", int(width * 11)), fontsize=9)
    fig.suptitle(_wrap(setup, int(width * 15)), fontsize=7)
    return _png(fig)


def ablation_grid(values: Mapping[str, float], n_layers: int, n_heads: int) -> Any:
    """[n_layers, n_heads + 1] array: head (L, H) at [L, H], MLP L at [L, n_heads], NaN
    where no value was given; names outside the model's shape are ignored."""
    import numpy as np

    grid = np.full((n_layers, n_heads + 1), np.nan)
    for name, value in values.items():
        layer, col = component_cell(name, n_heads)
        if 0 <= layer < n_layers and 0 <= col <= n_heads:
            grid[layer, col] = value
    return grid


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["RdBu"].with_extremes(bad="#e6e6e6")


def component_cell(name: str, n_heads: int) -> tuple[int, int]:
    """ "9.1" -> (9, 1); "mlp9" -> (9, n_heads) (any spelling the language takes);
    anything else -> (-1, -1)."""
    found = parse_component(name)
    if found is None:
        return -1, -1
    layer, head = found
    return layer, n_heads if head is None else head


def attention_png(pattern: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> bytes:
    """One head's attention pattern (query rows, key columns), e.g. averaged over prompts."""
    import numpy as np

    grid = np.asarray(pattern, dtype=float)
    size = min(2.2 + 0.32 * grid.shape[1], 9)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.8)
    if labels and len(labels) == grid.shape[1]:
        ax.set_xticks(range(len(labels)), list(labels), rotation=90, fontsize=7)
        if grid.shape[0] == len(labels):
            ax.set_yticks(range(len(labels)), list(labels), fontsize=7)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    ax.set_title(_wrap(title, 60), fontsize=9)
    return _png(fig)


def parse_edge(text: str) -> tuple[str, str, str] | None:
    """ "4.4->9.1[q]" -> ("4.4", "9.1", "q") (plan.Edge's str form)."""
    m = _EDGE.match(text.strip())
    return (m["sender"], m["receiver"], m["input"]) if m else None
