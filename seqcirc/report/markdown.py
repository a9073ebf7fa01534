"""A Markdown report for pull requests: the summary, then per circuit a claims table
with the ablation set-up under it, then notes on claims that did not pass."""

from __future__ import annotations

from pathlib import Path

from seqcirc.report import view
from seqcirc.report.files import write_text
from seqcirc.results import CircuitResult, EvaluationResult

_MARKS = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error", "skipped": "⏭️ skipped"}


def _cell(text: str) -> str:
    """Table cells: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")


def _circuit(result: EvaluationResult, circuit: CircuitResult) -> list[str]:
    with_p = view.has_p_values(circuit)
    head = ["claim", "line", "measured", "interval", "threshold", "verdict"]
    if with_p:
        head += ["p", "p (Holm)"]
    lines = [
        f"### `{circuit.name}`",
        "",
        f"{view.task_text(circuit)}; {len(circuit.nodes)} nodes, {len(circuit.edges)} edges; "
        f"hash `{circuit.circuit_hash}`",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for claim in circuit.claims:
        cells = [
            f"`{claim.text or claim.id}`",
            str(claim.line),
            view.measured(claim),
            view.interval(claim),
            view.threshold(claim),
            _MARKS[claim.verdict],
        ]
        if with_p:
            cells += [view.p_text(claim), view.p_text(claim, adjusted=True)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", *(f"- {b}" for b in view.basis_lines(circuit))]
    lines += ["", f"*Ablation set-up:* {view.ablation_setup(circuit)}.", ""]
    harmful = view.harmful_lines(circuit)
    if harmful:
        lines += [*(f"> ⚠️ **harmful:** {h}  " for h in harmful), ""]
    notes = [c for c in circuit.claims if c.verdict != "pass"]
    if notes:
        lines.append("<details><summary>Claims that did not pass</summary>")
        lines += ["", "```text"]
        lines += [view.failure_text(c, circuit, result.source) for c in notes]
        lines += ["```", "", "</details>", ""]
    if circuit.warnings:
        lines += [*(f"> warning: {w}  " for w in circuit.warnings), ""]
    return lines


def markdown(result: EvaluationResult) -> str:
    lines = [
        f"## seqcirc: `{view.short_source(result.source)}`",
        "",
        f"**{view.summary_line(result)}**",
        "",
        f"Produced by {view.provenance(result)}.",
        "",
    ]
    for circuit in result.circuits:
        lines += _circuit(result, circuit)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(result: EvaluationResult, path: str | Path) -> Path:
    return write_text(path, markdown(result), "Markdown report")
