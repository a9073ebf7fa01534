"""What `seqcirc attribute` writes: the scores as JSON that the EAP-IG library's
Graph.from_json reads (MIB's graph format, docs/attribution.md), and a heatmap.

Names are the EAP-IG/MIB spelling: nodes `input`, `a{L}.h{H}`, `m{L}`, `logits`; edges
`PARENT->CHILD`, with `<q>`, `<k>`, `<v>` after a head receiver. Nothing is selected
(`in_graph` false; the logits node always true, as the library writes it); the
`seqcirc` object records how the scores were made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from seqcirc.discovery.attribute import Attribution
from seqcirc.plan import EMBED, LOGITS, Edge

FORMAT = "seqcirc-attribution"
VERSION = 1
SCORE_MEANING = (
    "estimated change of the mean per-prompt metric when this edge alone is ablated "
    "(negative: the task needs it); a node's score sums its outgoing edges' scores"
)


def mib_node(name: str) -> str:
    """seqcirc's sender/receiver name -> MIB's: embed -> input, 9.1 -> a9.h1, mlp4 -> m4."""
    if name == EMBED:
        return "input"
    if name == LOGITS:
        return "logits"
    if name.startswith("mlp"):
        return f"m{name[3:]}"
    layer, head = name.split(".")
    return f"a{layer}.h{head}"


def mib_edge(edge: Edge) -> str:
    """embed->9.1[q] -> input->a9.h1<q>; 4.4->mlp4[mlp] -> a4.h4->m4; ->logits[resid]."""
    name = f"{mib_node(edge.sender)}->{mib_node(edge.receiver)}"
    return f"{name}<{edge.input}>" if edge.input in ("q", "k", "v") else name


def attribution_json(att: Attribution, *, cfg: dict[str, Any], meta: dict[str, Any]) -> str:
    """The MIB graph JSON of an attribution; `cfg`: n_layers, n_heads, d_model; `meta`:
    model, task, ablation and the like, recorded under `seqcirc`."""
    nodes: dict[str, dict[str, Any]] = {}
    for i, sender in enumerate(att.senders):
        nodes[mib_node(sender)] = {"in_graph": False}
        if att.node_scores is not None:
            nodes[mib_node(sender)]["score"] = float(att.node_scores[i])
    nodes["logits"] = {"in_graph": True}
    edges = {
        mib_edge(e): {"score": float(s), "in_graph": False}
        for e, s in zip(att.edges, att.scores, strict=True)
    }
    doc = {
        "cfg": {**cfg, "parallel_attn_mlp": False},
        "nodes": nodes,
        "edges": edges,
        "seqcirc": {
            "format": FORMAT, "version": VERSION, "method": att.method, "steps": att.steps,
            "metric": att.metric, "score": SCORE_MEANING, "n_prompts": att.n_prompts,
            "f_model": att.f_model, "f_empty": att.f_empty,
            "sum_of_scores": float(np.sum(att.scores)),
            "passes": {"forward_rows": att.forward_rows, "backward_rows": att.backward_rows},
            **meta,
        },
    }  # fmt: skip
    return json.dumps(doc, indent=1) + "\n"


def _matrix(att: Attribution, n_recv: int) -> tuple[np.ndarray, list[str]]:
    """Scores as [receivers, senders] (NaN where no edge), receiver labels in order."""
    senders = {s: i for i, s in enumerate(att.senders)}
    labels: list[str] = []
    row_of: dict[tuple[str, str], int] = {}
    for e in att.edges:
        key = (e.receiver, e.input)
        if key not in row_of:
            row_of[key] = len(labels)
            labels.append(
                mib_node(e.receiver) + (f"<{e.input}>" if e.input in ("q", "k", "v") else "")
            )
    out = np.full((len(labels), len(senders)), np.nan)
    for e, s in zip(att.edges, att.scores, strict=True):
        out[row_of[(e.receiver, e.input)], senders[e.sender]] = s
    assert len(labels) == n_recv
    return out, labels


def plot_attribution(att: Attribution, path: str | Path, *, n_receivers: int, title: str) -> Path:
    """A receivers x senders heatmap of the edge scores (red: ablating the edge lowers the
    metric, blue: raises it) and, with node scores, one bar per sender; saved as PNG."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from seqcirc.report.files import check_writable

    out = check_writable(path, "heatmap")
    matrix, labels = _matrix(att, n_receivers)
    vmax = float(np.nanmax(np.abs(matrix))) or 1.0
    panels = 2 if att.node_scores is not None else 1
    n_s = len(att.senders)
    width = min(22.0, 3.0 + 0.12 * n_s) * (1.35 if panels == 2 else 1.0)
    height = min(30.0, 2.5 + 0.06 * len(labels))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False, width_ratios=[3, 1][:panels])[0]
    ax = axes[0]
    im = ax.imshow(matrix, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")  # fmt: skip
    step_s = max(1, n_s // 40)
    step_r = max(1, len(labels) // 60)
    ax.set_xticks(range(0, n_s, step_s), [mib_node(s) for s in att.senders][::step_s],
                  rotation=90, fontsize=6)  # fmt: skip
    ax.set_yticks(range(0, len(labels), step_r), labels[::step_r], fontsize=6)
    ax.set_xlabel("sender")
    ax.set_ylabel("receiver")
    fig.colorbar(im, ax=ax, location="bottom", shrink=0.6, aspect=40,
                 label=f"score: change of the mean {att.metric}")  # fmt: skip
    if att.node_scores is not None:
        nx = axes[1]
        colours = np.where(att.node_scores < 0, "#b2182b", "#2166ac")
        nx.barh(range(n_s), att.node_scores, color=colours)
        nx.set_yticks(range(0, n_s, step_s), [mib_node(s) for s in att.senders][::step_s],
                      fontsize=6)  # fmt: skip
        nx.invert_yaxis()
        nx.set_xlabel("node score")
    fig.suptitle("\n".join(textwrap.wrap(title, int(12 * width))), fontsize=9)
    fig.savefig(out, format="png")
    return out


__all__ = ["FORMAT", "VERSION", "attribution_json", "mib_edge", "mib_node", "plot_attribution"]
