"""A discovered circuit as a `.circ` file: the task, the circuit (heads grouped by the role
a scan supports, MLPs as ranges), the paper's per-component tables and the role scan as
comments, and expectations the evaluation supports (each measured before it is written,
and the whole file evaluated again before it is returned)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.discovery.prune import Discovery
from seqcirc.errors import EvaluationError
from seqcirc.plan import Edge, Node, TaskSpec

# A head gets a role when its score reaches this (a share of member positions or of
# attention), and is the largest of its roles. Successor/copy use the "first among the
# set" variant, whose chance level is 1 / (members) rather than top-k / (members).
ROLE_SUPPORT = 0.5
ROLE_COLUMNS = {
    "successor": "successor_first",
    "copy": "copy_first",
    "previous_token": "previous_token",
    "duplicate": "duplicate",
    "induction": "induction",
}
RANDOM_N = 100  # random circuits for `beats random`
RANDOM_P = 0.01


def task_text(name: str, set_name: str, *, prompts: int, seed: int, filter_correct: bool) -> str:
    """The task definition as the language writes it (the paper's defaults otherwise)."""
    lines = [
        f"task {name} = sequence({set_name}, template=all, members=4, prompts={prompts}, "
        f"seed={seed})",
        "  corrupt random_members",
        "  metric logit_diff(correct=next, incorrect=last)",
    ]
    if filter_correct:
        lines.append("  filter correct")
    return "\n".join(lines) + "\n"


def model_text(model: str) -> str:
    """A model reference: bare when the grammar's model names allow it, else quoted."""
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)?", model) and not (
        Path(model).exists()
    ):
        return model
    return f'"{model}"'


def task_spec_of(task_def: str, model: str) -> TaskSpec:
    """The TaskSpec the language compiles `task_def` to (so discovery and the written
    file use exactly the same prompts)."""
    from seqcirc.plan.compile import compile_text

    probe = f"{task_def}\ncircuit probe on {model_text(model)} {{\n  heads 0.0\n}}\n"
    return compile_text(probe, "<discover>").circuits[0].task


def mlp_ranges(layers: Sequence[int]) -> str:
    """[0, 1, 2, 4] -> "0..2, 4"."""
    out: list[str] = []
    run: list[int] = []
    for layer in sorted(layers):
        if run and layer == run[-1] + 1:
            run.append(layer)
            continue
        if run:
            out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [layer]
    if run:
        out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def assign_roles(table: Any, heads: Sequence[Node]) -> dict[str, tuple[str, float]]:
    """head -> (role, score) where the scan supports one (ROLE_SUPPORT, best role wins)."""
    out: dict[str, tuple[str, float]] = {}
    for v in heads:
        best: tuple[str, float] | None = None
        for role, column in ROLE_COLUMNS.items():
            if column not in table.roles:
                continue
            value = float(table.column(column)[v.layer, v.head])
            if value >= ROLE_SUPPORT and (best is None or value > best[1]):
                best = (role, value)
        if best is not None:
            out[str(v)] = best
    return out


def _pct(x: float) -> str:
    return f"{100 * x:6.1f}%"


def _header(d: Discovery, command: str, task: Any) -> list[str]:
    o = d.outcome
    lines = [
        f"# Found by: {command}",
        "# Iterative pruning (Lan, Torr & Barez 2024): start from every head and MLP; sweep",
        "# layers last -> 0 (MLP, then heads), then 0 -> last; drop a component while the",
        f"# circuit keeps more than {d.threshold:g} of the FULL model's {d.metric} (not of the",
        "# previous step); repeat until a sweep drops nothing.",
        f"# {o.n_sweeps} sweeps, {o.masks_needed} circuits scored, each one batched pass over "
        f"{d.n_prompts} prompts.",
        f"# Found {len(d.heads)} heads and {len(d.mlps)} MLPs: F(C)/F(M) = {d.score:.4f} "
        f"(F(M) = {d.f_model:.4g}), ablation: {d.ablation.value} over corrupted prompts, "
        + ("per position." if d.ablation.per_position else "pooled over all positions."),
    ]
    filt = task.meta.get("filter") if hasattr(task, "meta") else None
    if isinstance(filt, Mapping):
        lines.append(
            f"# Prompts: the paper's filter kept {filt.get('n_kept')} of {filt.get('n_total')}."
        )
    return lines


def _single_table(d: Discovery) -> list[str]:
    lines = [
        f"# Per component (% of the full model's {d.metric} kept), as the paper tabulates:",
        "#   component   ablated alone from M   taken out of this circuit",
    ]
    for s in d.single:
        lines.append(f"#   {s.node:<9}   {_pct(s.from_model):>20}   {_pct(s.from_circuit):>25}")
    return lines


def _role_lines(
    table: Any, heads: Sequence[Node], roles: Mapping[str, tuple[str, float]]
) -> list[str]:
    meta = table.meta
    n_members = len(meta.get("members", ())) or None
    chance = f", chance {1 / n_members:.2f}" if n_members else ""
    short = {"successor": "succ", "successor_first": "succ1st", "copy": "copy",
             "copy_first": "copy1st", "previous_token": "prev", "duplicate": "dup",
             "induction": "induct"}  # fmt: skip
    cols = [c for c in short if c in table.roles]
    lines = [
        f"# Role scan of the circuit's heads (seqcirc roles, set {meta.get('set')}):",
        "# successor/copy"
        f" = the next member / the member itself in the OV circuit's top {meta.get('top_k')} "
        "of the vocabulary,",
        f"# *_first = ranked first among the set's members{chance}; previous_token, duplicate,",
        f"# induction on repeated random tokens (seed {meta.get('seed')}). A head is grouped "
        f"under a role at >= {ROLE_SUPPORT}.",
        "# (succ1st/copy1st: the *_first scores; prev, dup, induct: the pattern roles)",
        "#   head  " + " ".join(f"{short[c]:>7}" for c in cols) + "   role",
    ]
    for v in heads:
        cells = " ".join(f"{table.column(c)[v.layer, v.head]:>7.2f}" for c in cols)
        role = roles.get(str(v), ("-", 0.0))[0]
        lines.append(f"#   {v!s:<5} {cells}   {role}")
    return lines


def _edge_stmts(edges: Sequence[Edge]) -> list[str]:
    """One `edge` statement per (sender, receiver), inputs together."""

    def end(name: str) -> str:
        return f"mlp {name[3:]}" if name.startswith("mlp") else name

    grouped: dict[tuple[str, str], list[str]] = {}
    for e in edges:
        grouped.setdefault((e.sender, e.receiver), []).append(e.input)
    out = []
    for (s, r), inputs in grouped.items():
        head_in = [i for i in inputs if i in ("q", "k", "v")]
        suffix = f" ({', '.join(head_in)})" if head_in else ""
        out.append(f"  edge {end(s)} -> {end(r)}{suffix}")
    return out


@dataclass(frozen=True)
class Written:
    text: str
    claims: dict[str, dict[str, Any]]  # circuit -> claim text -> measured value/verdict


Evaluate = Callable[[str], Any]  # .circ text -> EvaluationResult


def floor_to(x: float, step: float = 0.01) -> float:
    return math.floor(x / step + 1e-9) * step


@dataclass(frozen=True)
class _Expect:
    """The thresholds written into the file's `expect` lines."""

    faithfulness: float  # lower bound of the node circuit's interval
    minimality: float | None  # None: written as a comment
    random_ok: bool  # `beats random` held when measured
    random_p: float  # its p-value (nan: not measurable), quoted when it did not hold
    edge_faithfulness: float


# Thresholds that cannot fail: the draft measured before the real thresholds are known.
_DRAFT = _Expect(-1.0, 0.0, True, float("nan"), -1.0)


@dataclass(frozen=True)
class _Layout:
    """Everything a discovery's .circ text says except its thresholds."""

    d: Discovery
    name: str
    model: str
    task_def: str
    task: Any
    seed: int
    command: str
    role_table: Any | None

    def text(self, expect: _Expect) -> str:
        from seqcirc.language.fmt import format_text

        d = self.d
        lines = [*_header(d, self.command, self.task), "", f"seed {self.seed}", "",
                 self.task_def.rstrip(), "", *_single_table(d)]  # fmt: skip
        roles = assign_roles(self.role_table, d.heads) if self.role_table is not None else {}
        if self.role_table is not None:
            lines += _role_lines(self.role_table, d.heads, roles)
        lines += self._node_circuit(roles, expect)
        if d.edges is not None:
            lines += self._edge_circuit(expect)
        return format_text("\n".join(lines) + "\n", "<discover>")

    def _node_circuit(self, roles: Mapping[str, tuple[str, float]], expect: _Expect) -> list[str]:
        d = self.d
        lines = [f"circuit {self.name} on {model_text(self.model)} {{", f"  task {self.task.name}",
                 f"  ablate nodes {d.ablation.circ_value()}"]  # fmt: skip
        groups: dict[str, list[str]] = {}
        for head, (role, _) in roles.items():
            groups.setdefault(role, []).append(head)
        for role, heads in groups.items():
            lines.append(f"  group {role} = {', '.join(heads)}")
        loose = [str(v) for v in d.heads if str(v) not in roles]
        if loose:
            lines.append(f"  heads {', '.join(loose)}")
        if d.mlps:
            lines.append(f"  mlp {mlp_ranges([v.layer for v in d.mlps])}")
        lines.append(f"  # pruning kept {d.score:.4f} of the full model on these prompts")
        lines.append(f"  expect faithfulness(bound=point) >= {d.threshold!r}")
        lines.append(f"  expect faithfulness >= {expect.faithfulness!r}")
        if expect.minimality is not None:
            lines.append(f"  expect minimality >= {expect.minimality!r}")
        else:
            lines.append("  # minimality: a component matters less than 1% of F(M)")
        if expect.random_ok:
            lines.append(f"  expect beats random(n={RANDOM_N}) at p < {RANDOM_P!r}")
        elif expect.random_p == expect.random_p:
            lines.append(
                f"  # beats random(n={RANDOM_N}): p = {expect.random_p:.3g}, not below {RANDOM_P}"
            )
        else:
            lines.append(f"  # beats random(n={RANDOM_N}): not measurable on this model")
        return [*lines, "}"]

    def _edge_circuit(self, expect: _Expect) -> list[str]:
        d, e = self.d, self.d.edges
        assert e is not None
        how = (
            f"the authors' edge pruning over the nodes above (each edge removed alone, kept "
            f"when that leaves less than {d.threshold:g} of the full model)"
            if e.method == "paper"
            else "Edge pruning over the nodes above"
        )
        lines = [
            "",
            f"# {how}: {len(e.edges)} of {e.n_candidates} "
            f"edges kept; F/F(M) = {e.score:.4f} (all {e.n_candidates}: "
            f"{e.start_score:.4f}).",
            f"circuit {self.name}_edges on {model_text(self.model)} {{",
            f"  task {self.task.name}",
            f"  ablate edges {d.ablation.circ_value()}",
            *_edge_stmts(e.edges),
        ]
        if e.score > d.threshold:
            lines.append(f"  expect faithfulness(bound=point) >= {d.threshold!r}")
        return [*lines, f"  expect faithfulness >= {expect.edge_faithfulness!r}", "}"]


def measured(text: str, evaluate: Evaluate) -> dict[str, dict[str, Any]]:
    """circuit -> "kind:bound" -> the claim's text, value, compared value and verdict."""
    from seqcirc.plan.compile import compile_text

    compile_text(text, "<discover>")  # raises on anything the checks reject
    result = evaluate(text)
    return {
        c.name: {f"{cl.kind}:{cl.bound}": {"text": cl.text, "value": cl.value,
                 "compared": cl.compared, "verdict": cl.verdict} for cl in c.claims}
        for c in result.circuits
    }  # fmt: skip


def _expectations(got: Mapping[str, Mapping[str, Any]], name: str, edges: bool) -> _Expect:
    """Thresholds with a margin below what the draft measured."""
    node = got[name]
    lower = float(node["faithfulness:lower"]["compared"])
    mini = float(node["minimality:point"]["value"])
    p_value = node["random_baseline:point"]["value"]  # None: the test could not run
    edge_lower = -1.0
    if edges:
        edge_lower = max(
            0.0, floor_to(float(got[f"{name}_edges"]["faithfulness:lower"]["compared"]) - 0.01)
        )
    return _Expect(
        faithfulness=max(0.0, round(floor_to(lower - 0.01), 2)),
        minimality=round(floor_to(mini), 2) if mini >= 0.01 else None,
        random_ok=node["random_baseline:point"]["verdict"] == "pass",
        random_p=float("nan") if p_value is None else float(p_value),
        edge_faithfulness=round(edge_lower, 2),
    )


def render_circ(
    d: Discovery,
    *,
    name: str,
    model: str,
    task_def: str,
    task: Any,
    seed: int,
    command: str,
    role_table: Any | None,
    evaluate: Evaluate,
) -> Written:
    """The .circ text of a discovery; every expectation in it was measured by `evaluate`
    (the real evaluator on the text itself) and the final text is evaluated again."""
    layout = _Layout(d, name, model, task_def, task, seed, command, role_table)
    # 1. measure with thresholds that cannot fail, on the final layout (claims' seeds
    #    derive from their line numbers, so the layout must not change afterwards)
    draft = layout.text(_DRAFT)
    expect = _expectations(measured(draft, evaluate), name, d.edges is not None)
    # 2. thresholds with a margin below what was measured, then evaluate the final text
    final = layout.text(expect)
    if final.count("\n") != draft.count("\n"):
        raise EvaluationError("internal: the written layout changed", code="E343")
    check = measured(final, evaluate)
    failed = [
        f"{c}: {v['text']} ({v['verdict']}, {v['value']})"
        for c, claims in check.items()
        for k, v in claims.items()
        if v["verdict"] != "pass"
    ]
    if failed:
        raise EvaluationError(
            "the written file's expectations do not all hold: " + "; ".join(failed),
            code="E343",
            hint="this is a bug in seqcirc discover; please report it",
        )
    return Written(final, check)
