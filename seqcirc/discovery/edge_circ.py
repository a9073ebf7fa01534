"""An edge circuit found by attribution (EAP, EAP-IG) or ACDC as a `.circ` file: the task,
the circuit's nodes and one `edge` line per (sender, receiver) with each edge's score as
a comment, and faithfulness expectations measured on the file itself before it is
written (as seqcirc.discovery.circ_file does for the paper's pruning)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seqcirc.discovery.circ_file import (
    Evaluate,
    Written,
    floor_to,
    measured,
    mlp_ranges,
    model_text,
)
from seqcirc.errors import EvaluationError
from seqcirc.plan import AblationSpec, Edge, Node


@dataclass(frozen=True)
class FoundEdges:
    """An edge circuit a discovery method found, with what its file says about it."""

    method: str  # eap | eap-ig | acdc
    edges: tuple[Edge, ...]  # graph order
    scores: Mapping[Edge, float]  # each kept edge's score (attribution, or ACDC's rise)
    score_name: str  # what the comment numbers are
    ratio: float  # F(C) / F(M) by the evaluator
    threshold: float | None  # the faithfulness target (None: ACDC's own threshold)
    f_model: float
    ablation: AblationSpec
    n_prompts: int
    n_edges: int  # edges of the model
    how: str  # what the method did, for the header comment
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> tuple[Node, ...]:
        names = {e.sender for e in self.edges} | {e.receiver for e in self.edges}
        return tuple(sorted(Node.parse(n) for n in names if n not in ("embed", "logits")))


def _end(name: str) -> str:
    return f"mlp {name[3:]}" if name.startswith("mlp") else name


def edge_lines(edges: Sequence[Edge], scores: Mapping[Edge, float]) -> list[str]:
    """One `edge` statement per (sender, receiver), its inputs together, the scores as a
    trailing comment (per input for a head)."""
    grouped: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        grouped.setdefault((e.sender, e.receiver), []).append(e)
    out = []
    for (s, r), group in grouped.items():
        heads = [e for e in group if e.input in ("q", "k", "v")]
        suffix = f" ({', '.join(e.input for e in heads)})" if heads else ""
        if heads:
            note = ", ".join(f"{e.input} {scores[e]:+.4g}" for e in heads)
        else:
            note = f"{scores[group[0]]:+.4g}"
        out.append(f"  edge {_end(s)} -> {_end(r)}{suffix}  # {note}")
    return out


@dataclass(frozen=True)
class _Layout:
    found: FoundEdges
    name: str
    model: str
    task_def: str
    task_name: str
    seed: int
    command: str

    def text(self, lower: float) -> str:
        from seqcirc.language.fmt import format_text

        f = self.found
        heads = [str(v) for v in f.nodes if v.head is not None]
        mlps = [v.layer for v in f.nodes if v.head is None]
        lines = [
            f"# Found by: {self.command}",
            *textwrap.wrap(f.how, 86, initial_indent="# ", subsequent_indent="# "),
            f"# Kept {len(f.edges)} of {f.n_edges} edges, {len(f.nodes)} nodes: F(C)/F(M) = "
            f"{f.ratio:.4f} (F(M) = {f.f_model:.4g}) on {f.n_prompts} prompts.",
            f"# Edge comments: {f.score_name}.",
            "", f"seed {self.seed}", "", self.task_def.rstrip(), "",
            f"circuit {self.name} on {model_text(self.model)} {{",
            f"  task {self.task_name}",
            f"  ablate edges {f.ablation.circ_value()}",
        ]  # fmt: skip
        if heads:
            lines.append(f"  heads {', '.join(heads)}")
        if mlps:
            lines.append(f"  mlp {mlp_ranges(mlps)}")
        lines += edge_lines(f.edges, f.scores)
        lines.append(f"  # {f.method} kept {f.ratio:.4f} of the full model on these prompts")
        if f.threshold is not None and f.ratio > f.threshold:
            lines.append(f"  expect faithfulness(bound=point) >= {f.threshold!r}")
        lines += [f"  expect faithfulness >= {lower!r}", "}"]
        return format_text("\n".join(lines) + "\n", "<discover>")


def render_edge_circ(
    found: FoundEdges, *, name: str, model: str, task_def: str, task_name: str, seed: int,
    command: str, evaluate: Evaluate,
) -> Written:  # fmt: skip
    """The .circ text of an edge discovery; its faithfulness expectations are measured by
    `evaluate` (the evaluator on the text itself) and the final text is evaluated again."""
    layout = _Layout(found, name, model, task_def, task_name, seed, command)
    draft = layout.text(-1.0)  # a bound that cannot fail; same layout, same claim seeds
    got: dict[str, dict[str, Any]] = measured(draft, evaluate)
    lower = float(got[name]["faithfulness:lower"]["compared"])
    final = layout.text(round(floor_to(lower - 0.01), 2))
    check = measured(final, evaluate)
    failed = [f"{v['text']} ({v['verdict']}, {v['value']})" for v in check[name].values()
              if v["verdict"] != "pass"]  # fmt: skip
    if failed:
        raise EvaluationError(
            "the written file's expectations do not all hold: " + "; ".join(failed),
            code="E343",
            hint="this is a bug in seqcirc discover; please report it",
        )
    return Written(final, check)


__all__ = ["FoundEdges", "edge_lines", "render_edge_circ"]
