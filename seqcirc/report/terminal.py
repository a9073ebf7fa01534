"""The terminal report: a rich table per circuit and a one-line summary.

Colour is an extra, never the only signal: verdicts are words (PASS/FAIL/ERROR/SKIP).
The caller's Console decides colour: rich honours NO_COLOR and prints no escape codes
when the output is not a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from seqcirc.report import view
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult

_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skipped": "yellow"}


def circuit_table(result: EvaluationResult, circuit: CircuitResult) -> Table:
    """One row per claim; the caption carries the ablation set-up of every number."""
    table = Table(
        title=f"circuit {circuit.name} · {view.task_text(circuit)} · "
        f"{len(circuit.nodes)} nodes, {len(circuit.edges)} edges",
        caption=f"ablation: {view.ablation_setup(circuit)}",
        caption_justify="left",
        title_justify="left",
        expand=False,
    )
    table.add_column("claim", overflow="fold")
    table.add_column("line", justify="right")
    table.add_column("measured", justify="right")
    table.add_column("interval", justify="right")
    table.add_column("threshold")
    table.add_column("verdict")
    with_p = view.has_p_values(circuit)
    if with_p:
        table.add_column("p", justify="right")
        table.add_column("p (Holm)", justify="right")
    for claim in circuit.claims:
        row: list[Any] = [
            claim.text or claim.id,
            str(claim.line) if claim.line else view.MISSING,
            view.measured(claim),
            view.interval(claim),
            view.threshold(claim),
            Text(view.VERDICT_WORDS[claim.verdict], style=_STYLES[claim.verdict]),
        ]
        if with_p:
            row += [view.p_text(claim), view.p_text(claim, adjusted=True)]
        table.add_row(*row)
    return table


def _notes(result: EvaluationResult, circuit: CircuitResult, verbose: bool) -> list[str]:
    """Why each claim that did not pass did not; with verbose, details of every claim."""
    out = []
    for claim in circuit.claims:
        if verbose:
            out.append(view.failure_text(claim, circuit, result.source))
            out.extend(f"    {line}" for line in _detail_lines(claim))
        elif claim.verdict != "pass":
            out.append(view.note_text(claim, result.source))
    return out


def _detail_lines(claim: ClaimResult) -> list[str]:
    d = claim.detail or {}
    if claim.kind == "completeness" and "worst" in d:
        return [
            f"worst K = {{{', '.join(d.get('worst_knocked_out', []))}}}: "
            f"incompleteness {view.number(d['worst'])}; mean {view.number(d.get('mean'))} "
            f"over {len(d.get('points', []))} subsets (seed {d.get('seed', view.MISSING)})"
        ]
    if claim.kind == "minimality" and isinstance(d.get("per_node"), dict):
        key = "signed" if d.get("form") == "signed" else "score"
        items = sorted(d["per_node"].items(), key=lambda kv: kv[1].get(key, 0.0))
        return [
            f"{node}: score {view.number(e.get('score'))}, signed {view.number(e.get('signed'))}"
            for node, e in items[:5]
        ]
    if "seed" in d or "n_boot" in d:
        return [f"bootstrap: {d.get('n_boot', view.MISSING)} resamples, seed {d.get('seed')}"]
    return []


def _circuit_extras(circuit: CircuitResult) -> list[str]:
    setup = f" ({circuit.metric}; {view.ablation_setup(circuit)})"
    lines = [
        f"  F(M) = {view.number(circuit.f_model)}, F(C) = {view.number(circuit.f_circuit)}, "
        f"F(empty) = {view.number(circuit.f_empty)}{setup}"
    ]
    for variant, f in sorted((circuit.faithfulness or {}).items()):
        if "error" in f:
            lines.append(f"  {variant}: {f['error']}")
            continue
        lines.append(
            f"  {variant}: {view.number(f.get('value'))} "
            f"[{view.number(f.get('lower'))}, {view.number(f.get('upper'))}] "
            f"({f.get('level', 0.95):.0%} paired bootstrap, seed {f.get('seed', view.MISSING)})"
        )
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in sorted((circuit.timings or {}).items()))
    lines.append(f"  forward rows {circuit.forward_rows}" + (f"; {timings}" if timings else ""))
    lines.append(f"  circuit hash {circuit.circuit_hash}")
    return lines


def print_terminal(result: EvaluationResult, console: Console, verbose: bool = False) -> None:
    """A table per circuit, notes for claims that did not pass, warnings, provenance and
    the one-line summary."""
    for circuit in result.circuits:
        console.print(circuit_table(result, circuit))
        if verbose:
            for line in _circuit_extras(circuit):
                console.print(line, highlight=False, markup=False)
        for line in view.basis_lines(circuit):
            console.print(f"  {line}", style="dim", highlight=False, markup=False)
        for note in _notes(result, circuit, verbose):
            console.print(note, highlight=False, markup=False)
        for line in view.harmful_lines(circuit):
            console.print(f"warning: {line}", style="bold yellow", highlight=False, markup=False)
        for warning in circuit.warnings:
            console.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
        console.print()
    console.print(view.provenance(result), style="dim", highlight=False, markup=False)
    n = view.counts(result)
    style = "bold green" if n.total and n.passed == n.total else "bold red"
    console.print(view.summary_line(result), style=style, highlight=False, markup=False)
