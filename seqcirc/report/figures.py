"""Which figures a circuit's result supports, with the data read out of it.

Optional inputs, read defensively (the evaluator may not record them yet):
- the random baseline: a `random_baseline` claim's `detail["random_values"]` (or
  `"null_distribution"`: the random circuits' values) and `detail["statistic"]` (the
  circuit's value);
- completeness points: a `completeness` claim's `detail["points"]`;
- the per-component ablation: `CircuitResult.component_ablation` ({"L.H" or "mlpL":
  F(M \\ v) / F(M)}); without it, a minimality claim's per-node `drop_alone`, else
  the signed drops of `CircuitResult.removals["nodes"]`;
- role heads' attention: a role claim's `detail["attention"]` ({"pattern": [[...]],
  "labels": [...]}), and for `attends` claims the token-level pattern,
  `detail["attention_tokens"]` (drawn by report/attention_tokens.py);
- model shape: `EvaluationResult.model["shape"]` (n_layers, n_heads); else inferred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqcirc.report import plots, view
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str
    png: bytes
    ablated: bool = True  # its numbers come from ablated runs (False: the clean model)


def _claims(circuit: CircuitResult, kind: str) -> list[ClaimResult]:
    return [c for c in circuit.claims if c.kind == kind]


def _shape(result: EvaluationResult, names: list[str]) -> tuple[int, int]:
    """(n_layers, n_heads): the model's shape when recorded, grown to fit every named
    component so none falls off the heatmap."""
    shape = (result.model or {}).get("shape") or {}
    cells = [plots.component_cell(n, 10**6) for n in names]
    layers = [layer for layer, _ in cells if layer >= 0]
    heads = [head for _, head in cells if 0 <= head < 10**6]
    return (
        max(int(shape.get("n_layers") or 0), max(layers, default=0) + 1),
        max(int(shape.get("n_heads") or 0), max(heads, default=0) + 1),
    )


def claim_thresholds(circuit: CircuitResult) -> list[tuple[str, float, str]]:
    """(faithfulness variant, threshold, label) of each faithfulness claim: the line
    its figure draws, e.g. ("performance_ratio", 0.8, "line 60: lower bound >= 0.8")."""
    out = []
    for claim in circuit.claims:
        variant = (claim.detail or {}).get("variant")
        if claim.kind in view.FAITHFULNESS_KINDS and variant:
            label = f"line {claim.line}: {view.threshold(claim)}"
            out.append((str(variant), float(claim.threshold), label))
    return out


def faithfulness_figure(circuit: CircuitResult, setup: str) -> Figure | None:
    variants = circuit.faithfulness or {}
    if not any("error" not in v for v in variants.values()):
        return None
    baseline = observed = None
    thresholds = claim_thresholds(circuit)
    caption = "Each faithfulness variant with its paired bootstrap confidence interval"
    if thresholds:
        caption += (
            "; the red dashed line is the claim's threshold. Look for the point (or, for a "
            "bound claim, that end of the interval) on the passing side of it; 1 is the full "
            "model"
        )
    else:
        caption += ". Look for values near 1 (the full model) with narrow intervals"
    for claim in _claims(circuit, "random_baseline"):
        detail = claim.detail or {}
        # seqcirc.claims.significance records the random circuits' values as random_values
        null = detail.get("null_distribution", detail.get("random_values"))
        if isinstance(null, list) and null:
            baseline, observed = [float(x) for x in null], claim.detail.get("statistic")
            rank = view.baseline_rank(claim)
            where = f" ({rank.text()}, p = {view.p_text(claim)})" if rank else ""
            caption += (
                f". Right: the random-circuit baseline, {len(null)} circuits of the same size"
                f"{where}; look for the red line (this circuit) right of the histogram: the "
                "rank counts the random circuits at or beyond it"
            )
            break
    png = plots.faithfulness_png(
        variants, setup, baseline, None if observed is None else float(observed),
        thresholds=thresholds,
    )  # fmt: skip
    return Figure("Faithfulness", caption + ".", png)


def completeness_figure(circuit: CircuitResult, setup: str) -> Figure | None:
    for claim in _claims(circuit, "completeness"):
        points = (claim.detail or {}).get("points")
        if isinstance(points, list) and points:
            worst = claim.detail.get("worst")
            band = claim.threshold if claim.op in ("<=", "<") else None
            caption = (
                f"{len(points)} knocked-out subsets K; worst incompleteness "
                f"{view.number(worst)}, mean {view.number(claim.detail.get('mean'))}. Look for "
                "points on the dashed line y = x: knocking K out of the circuit costs what it "
                "costs the full model; points far from it (the greedy ones first) are where "
                "the circuit is incomplete"
                + (
                    f"; the dotted lines bound |F(C \\ K) - F(M \\ K)| <= {band:g} |F(M)|, the "
                    "claim's threshold"
                    if band is not None
                    else ""
                )
            )
            full = (circuit.f_model, circuit.f_circuit)
            band_width = None if band is None else band * abs(circuit.f_model)
            png = plots.completeness_png(points, setup, full, band=band_width)
            return Figure("Completeness", caption + ".", png)
    return None


def ablation_figure(result: EvaluationResult, circuit: CircuitResult, setup: str) -> Figure | None:
    values: dict[str, float] | None = getattr(circuit, "component_ablation", None)
    label, centre = "F(M \\ v) / F(M)", 1.0
    what = "each component ablated alone from the full model"
    if not values:
        for claim in _claims(circuit, "minimality"):
            per_node = (claim.detail or {}).get("per_node")
            if isinstance(per_node, dict) and per_node:
                values = {k: float(v["drop_alone"]) for k, v in per_node.items()}
                label, centre = "(F(C) - F(C \\ v)) / F(M)", 0.0
                what = "each circuit component removed alone from the circuit"
                break
    if not values:  # every node circuit's removal table, claimed or not
        nodes = ((getattr(circuit, "removals", None) or {}).get("nodes")) or []
        values = {str(e["removed"]): float(e["signed_drop"]) for e in nodes}
        label, centre = "(F(C) - F(C \\ v)) / F(M)", 0.0
        what = "each circuit component removed alone from the circuit"
    if not values:
        return None
    n_layers, n_heads = _shape(result, [*values, *circuit.nodes])
    png = plots.ablation_heatmap_png(
        values,
        n_layers,
        n_heads,
        setup,
        label,
        circuit=list(circuit.nodes),
        centre=centre,
        title=what,
    )
    if centre == 1.0:
        look = (
            "Look for dark red cells (ablating that component alone costs the model much); "
            "they should be outlined, in the circuit"
        )
    else:
        look = (
            "Look for every outlined cell blue (removing it costs the circuit); a red cell "
            "is a component whose removal raises the circuit's score: it works against it"
        )
    return Figure("Per-component ablation", f"{what}; colour: {label}. {look}.", png)


def attention_figures(circuit: CircuitResult) -> list[Figure]:
    out = []
    for claim in _claims(circuit, "role"):
        att: Any = (claim.detail or {}).get("attention")
        if isinstance(att, dict) and att.get("pattern"):
            head = claim.detail.get("head", "")
            title = f"head {head}: {claim.text or claim.id}"
            png = plots.attention_png(att["pattern"], att.get("labels", []), title)
            caption = str(att.get("caption", "mean attention pattern over the task's prompts"))
            d = claim.detail
            look = (
                f"Look for a dark cell at row {d['from']}, column {d['to']}: the attention the "
                f"claim measures ({view.number(claim.value)}; threshold {view.threshold(claim)})"
                if d.get("role") == "attends" and "from" in d and "to" in d
                else "Look for where each query row puts its weight"
            )
            out.append(
                Figure(f"Attention of head {head}", f"{caption}. {look}.", png, ablated=False)
            )
    return out


def graph_figure(result: EvaluationResult, circuit: CircuitResult) -> Figure | None:
    """The circuit diagram (report.circuit_graph): an edge circuit with the edges it keeps,
    a node circuit as its nodes by layer (it keeps every edge among them)."""
    from seqcirc.report.circuit_graph import build_graph, render

    edges = [e for e in map(plots.parse_edge, circuit.edges) if e is not None]
    try:
        graph = build_graph(list(circuit.nodes), edges, groups=circuit.groups or {})
    except ValueError:  # a result whose node names no .circ file could state
        return None
    png = render(graph, f"circuit {circuit.name}", "png")
    if edges:
        caption = f"{len(circuit.nodes)} nodes and the {len(edges)} edges the circuit keeps"
    else:
        caption = (f"{len(circuit.nodes)} nodes by layer; a node circuit keeps every edge "
                   "among them, from the embeddings and to the logits")  # fmt: skip
    caption += ("; edges coloured by the input they enter. Look for the path from the "
                "early layers to the logits.")  # fmt: skip
    return Figure("The circuit", caption, png, ablated=False)


def circuit_figures(result: EvaluationResult, circuit: CircuitResult) -> list[Figure]:
    from seqcirc.report.attention_tokens import token_attention_figures

    setup = view.ablation_setup(circuit)
    found = [
        faithfulness_figure(circuit, setup),
        completeness_figure(circuit, setup),
        ablation_figure(result, circuit, setup),
        *attention_figures(circuit),
        *token_attention_figures(circuit),
        graph_figure(result, circuit),
    ]
    return [f for f in found if f is not None]
