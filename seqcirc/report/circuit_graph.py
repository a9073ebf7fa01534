"""The circuit diagram: embeddings -> heads and MLPs by layer -> logits, as a networkx
graph, laid out by networkx (`multipartite_layout`: one column per layer's heads, one
for its MLP) and drawn with matplotlib (Figure API, Agg canvas, no pyplot) to PNG, SVG
or PDF.

Edges are coloured and dashed by the input they enter (q, k, v of a head, an MLP, the
logits) and drawn wider the larger |score| where the edges have scores. An edge circuit
draws the edges it keeps. A node circuit keeps every edge among its nodes (from the
embeddings, to the logits), so its diagram draws its nodes by layer and only the edges
its author highlights (`edge` lines), which are not ablated. networkx and matplotlib
load on first use.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from seqcirc.language.names import parse_component

if TYPE_CHECKING:
    import networkx as nx

EMBED, LOGITS = "embed", "logits"
# input -> (colour, line style, arc radius): q/k/v side by side between one pair of nodes.
INPUT_STYLES: dict[str, tuple[str, str, float]] = {
    "q": ("#7b3294", "solid", 0.10),
    "k": ("#1a9641", (0, (5, 2)), 0.20),  # type: ignore[dict-item]
    "v": ("#2166ac", (0, (1, 1.5)), 0.30),  # type: ignore[dict-item]
    "mlp": ("#636363", "solid", 0.06),
    "resid": ("#000000", "solid", 0.03),
}
_PALETTE = ["#fdb462", "#80b1d3", "#b3de69", "#fb8072", "#bebada", "#fccde5", "#8dd3c7"]

EdgeSpec = tuple[str, str, str]  # sender, receiver, input (plan.Edge's fields)


def _column(name: str, last_layer: int) -> int:
    """embed 0; heads of layer L in 2L + 1, its MLP in 2L + 2; logits after the last."""
    if name == EMBED:
        return 0
    if name == LOGITS:
        return 2 * last_layer + 3
    layer, head = parse_component(name) or (0, 0)
    return 2 * layer + (1 if head is not None else 2)


def build_graph(
    nodes: Sequence[str],
    edges: Sequence[EdgeSpec],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    scores: Mapping[EdgeSpec, float] | None = None,
    highlighted: bool = False,
) -> nx.MultiDiGraph:
    """The diagram's graph: a node per component (plus embed and logits), an edge per
    (sender, receiver, input) keyed by the input. Node attributes: kind, column, group;
    edge attributes: input, score (None without one). `highlighted`: the edges are a node
    circuit's highlighted ones, not what is evaluated."""
    import networkx as nx

    names = [*nodes, *(end for s, r, _ in edges for end in (s, r))]
    parts = [n for n in dict.fromkeys(names) if n not in (EMBED, LOGITS)]
    parsed = {n: parse_component(n) for n in parts}
    unknown = [n for n, p in parsed.items() if p is None]
    if unknown:
        raise ValueError(f"not components: {unknown}")
    order = sorted(parts, key=lambda n: (_column(n, 0), (parsed[n] or (0, 0))[1] or 0))
    last = max((p[0] for p in parsed.values() if p is not None), default=0)
    group_of = {n: g for g, members in (groups or {}).items() for n in members}
    g = nx.MultiDiGraph(highlighted=highlighted, n_layers=last + 1)
    for name in [EMBED, *order, LOGITS]:
        kind = name if name in (EMBED, LOGITS) else ("mlp" if parsed[name][1] is None else "head")  # type: ignore[index]
        g.add_node(name, kind=kind, column=_column(name, last), group=group_of.get(name))
    for s, r, inp in edges:
        score = None if scores is None else scores.get((s, r, inp))
        g.add_edge(s, r, key=inp, input=inp, score=score)
    return g


def layout(g: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    """Columns left to right by computation order, each column top to bottom by head."""
    import networkx as nx

    columns: dict[int, list[str]] = {}
    for name, col in g.nodes(data="column"):
        columns.setdefault(col, []).append(name)
    pos = nx.multipartite_layout(g, subset_key=columns, align="vertical")
    return {n: (float(x), -float(y)) for n, (x, y) in pos.items()}


def _widths(g: nx.MultiDiGraph) -> dict[tuple[str, str, str], float]:
    scored = [abs(s) for _, _, s in g.edges(data="score") if s is not None]
    top = max(scored, default=0.0)
    out = {}
    for s, r, k, score in g.edges(keys=True, data="score"):
        out[(s, r, k)] = 1.3 if score is None or top == 0 else 0.5 + 3.5 * abs(score) / top
    return out


def render(g: nx.MultiDiGraph, title: str, fmt: str = "png") -> bytes:
    """The drawing as `fmt` bytes (png, svg, pdf). In SVG every node and edge is an
    element with an id (`node 9.1`, `edge 4.4->9.1[q]`) and labels stay text."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pos = layout(g)
    xs = sorted({x for x, _ in pos.values()})
    tallest = max((sum(1 for p in pos.values() if p[0] == x) for x in xs), default=1)
    fig = Figure(
        figsize=(min(3 + 0.75 * len(xs), 18), min(2.4 + 0.42 * tallest, 14)),
        dpi=110,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    _draw_edges(ax, g, pos)
    _draw_nodes(ax, g, pos)
    _legend(ax, g)
    pad_x = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) * 0.6 if len(xs) > 1 else 0.5
    ys = [y for _, y in pos.values()]
    pad_y = max((max(ys) - min(ys)) / max(tallest - 1, 1) * 0.7, 0.1)
    ax.set_xlim(xs[0] - pad_x, xs[-1] + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "seqcirc"}):
        fig.savefig(buf, format=fmt)
    return buf.getvalue()


def _draw_edges(ax: Any, g: nx.MultiDiGraph, pos: Mapping[str, tuple[float, float]]) -> None:
    from matplotlib.patches import FancyArrowPatch

    widths = _widths(g)
    faint = g.graph.get("highlighted", False)
    xs = sorted({x for x, _ in pos.values()})
    step = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else 1.0
    for s, r, k in g.edges(keys=True):
        colour, style, rad = INPUT_STYLES.get(k, ("#444444", "solid", 0.1))
        span = max(abs(pos[r][0] - pos[s][0]) / step, 1.0)  # columns crossed
        patch = FancyArrowPatch(
            pos[s],
            pos[r],
            arrowstyle="-|>",
            mutation_scale=9,
            lw=widths[(s, r, k)],
            color=colour,
            linestyle=style,
            connectionstyle=f"arc3,rad={rad / span**0.5:.3f}",
            shrinkA=9,
            shrinkB=9,
            alpha=0.6 if faint else 0.85,
            zorder=1,
        )
        patch.set_gid(f"edge {s}->{r}[{k}]")
        ax.add_patch(patch)


def _draw_nodes(ax: Any, g: nx.MultiDiGraph, pos: Mapping[str, tuple[float, float]]) -> None:
    groups = list(dict.fromkeys(grp for _, grp in g.nodes(data="group") if grp))
    colour_of = {grp: _PALETTE[i % len(_PALETTE)] for i, grp in enumerate(groups)}
    markers = {"head": "o", "mlp": "s", EMBED: "D", LOGITS: "D"}
    for name, data in g.nodes(data=True):
        x, y = pos[name]
        fill = colour_of.get(data["group"], "#ececec")
        if data["kind"] in (EMBED, LOGITS):
            fill = "#ffffff"
        dot = ax.scatter(
            [x],
            [y],
            s=430 if len(name) <= 4 else 640,
            marker=markers[data["kind"]],
            color=fill,
            edgecolor="#333333",
            linewidths=0.8,
            zorder=2,
        )
        dot.set_gid(f"node {name}")
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=6.5 if len(name) <= 4 else 5.5,
            zorder=3,
            gid=f"label {name}",
        )


def _legend(ax: Any, g: nx.MultiDiGraph) -> None:
    from matplotlib.lines import Line2D

    groups = list(dict.fromkeys(grp for _, grp in g.nodes(data="group") if grp))
    handles = [
        Line2D([], [], marker="o", ls="", color=_PALETTE[i % len(_PALETTE)], label=grp)
        for i, grp in enumerate(groups)
    ]
    used = sorted({k for _, _, k in g.edges(keys=True)}, key=list(INPUT_STYLES).index)
    what = "highlighted edge into" if g.graph.get("highlighted") else "edge into"
    into = {"mlp": "an MLP", "resid": "the logits"}
    for k in used:
        colour, style, _ = INPUT_STYLES[k]
        handles.append(Line2D([], [], color=colour, ls=style, label=f"{what} {into.get(k, k)}"))
    if any(s is not None for _, _, s in g.edges(data="score")):
        handles.append(Line2D([], [], color="#999999", lw=3.5, label="width: |score|"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
