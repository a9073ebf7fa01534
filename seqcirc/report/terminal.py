"""The terminal report: per circuit a table of claims, then notes and a one-line summary.

It fits the console's width (80 columns when piped or in CI): the table is sized so
that cells wrap only between words and every header stays on one line; where even
that does not fit, each claim is a block of labelled values (text_lines.print_stacked).
`layout="plain"` (`seqcirc test --format plain`, for logs) always prints the blocks,
unwrapped and without colour. No line ends in padding.

Colour is an extra, never the only signal: verdicts are words (PASS/FAIL/ERROR/SKIP).
The caller's Console decides colour: rich honours NO_COLOR and prints no escape codes
when the output is not a terminal.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seqcirc.report import view
from seqcirc.report.text_lines import (
    VERDICT_STYLES,
    emit,
    print_stacked,
    print_trimmed,
    stacked_height,
    wrap,
)
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult

LAYOUTS = ("table", "plain")
_RIGHT = {"line", "p", "p (Holm)"}  # measured holds text too: "F(C)/F(M) = ..."
_GAP = 2  # cells between columns: the (blank) divider and one cell of padding


def _rows(circuit: CircuitResult) -> tuple[list[str], list[list[str]]]:
    """The header and each claim's cells, as plain text."""
    head = ["claim", "line", "measured", "interval", "threshold", "verdict"]
    with_p = view.has_p_values(circuit)
    if with_p:
        head += ["p", "p (Holm)"]
    rows = []
    for claim in circuit.claims:
        row = [
            claim.text or claim.id,
            str(claim.line) if claim.line else view.MISSING,
            view.measured(claim),
            view.interval(claim),
            view.threshold(claim),
            view.VERDICT_WORDS[claim.verdict],
        ]
        if with_p:
            row += [view.p_text(claim), view.p_text(claim, adjusted=True)]
        rows.append(row)
    return head, rows


def column_widths(head: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Content widths that fit `width` with no word broken and no header wrapped: each
    column at least its longest word (and its header), grown toward its longest cell
    where room is left; None when even the narrowest do not fit."""
    cols = list(zip(head, *rows, strict=True))
    least = [max(len(c[0]), *(len(w) for cell in c[1:] for w in cell.split())) for c in cols]
    most = [max(len(cell) for cell in c) for c in cols]
    room = width - _GAP * (len(head) - 1)
    if sum(least) > room:
        return None
    widths = list(least)
    spare = room - sum(widths)
    # unwrap whole columns, the values first (the cheapest first), the claim's text last:
    # prose wraps best; what is left widens the column furthest from its longest cell
    order = sorted((most[j] - widths[j], j) for j in range(1, len(widths)))
    for short, i in [*order, (most[0] - widths[0], 0)]:
        if 0 < short <= spare:
            widths[i] += short
            spare -= short
    short, i = max((most[j] - widths[j], j) for j in range(len(widths)))
    widths[i] += min(short, spare)
    return widths


def _body_height(rows: list[list[str]], widths: list[int]) -> int:
    """Lines the table's rows take: each row's tallest cell, and a blank line between
    rows once any cell wraps (the header and its rule come on top)."""
    heights = [max(len(wrap(cell, w)) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return sum(heights) + (len(rows) - 1 if any(h > 1 for h in heights) else 0)


def circuit_table(circuit: CircuitResult, width: int) -> Table | None:
    """The claims as a table `width` cells wide at most; None when it cannot fit without
    breaking a word, or would take more lines than the stacked blocks."""
    head, rows = _rows(circuit)
    widths = column_widths(head, rows, width)
    if widths is None or _body_height(rows, widths) > stacked_height(circuit.claims, width):
        return None
    wrapped = any(len(cell) > w for row in rows for cell, w in zip(row, widths, strict=True))
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
        show_lines=wrapped, expand=False,
    )  # fmt: skip
    for name, w in zip(head, widths, strict=True):
        table.add_column(name, width=w, justify="right" if name in _RIGHT else "left")
    for claim, row in zip(circuit.claims, rows, strict=True):
        cells: list[Any] = list(row)
        cells[5] = Text(row[5], style=VERDICT_STYLES[claim.verdict])
        table.add_row(*cells)
    return table


def _notes(result: EvaluationResult, circuit: CircuitResult, verbose: bool) -> list[str]:
    """Why each claim that did not pass did not; with verbose, details of every claim."""
    out = []
    for claim in circuit.claims:
        if verbose:
            out.extend(view.failure_text(claim, circuit, result.source).splitlines())
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


def _print_circuit(
    result: EvaluationResult, circuit: CircuitResult, console: Console, verbose: bool, plain: bool
) -> None:
    title = (
        f"circuit {circuit.name} · {view.task_text(circuit)} · "
        f"{len(circuit.nodes)} nodes, {len(circuit.edges)} edges"
    )
    emit(console, title, plain=plain, style="bold")
    table = None if plain else circuit_table(circuit, console.width)
    if table is None:
        print_stacked(console, circuit.claims, plain=plain)
    else:
        print_trimmed(console, table)
    emit(console, f"ablation: {view.ablation_setup(circuit)}", plain=plain)
    if verbose:
        for line in _circuit_extras(circuit):
            emit(console, line.strip(), plain=plain, indent=2)
    for line in view.basis_lines(circuit):
        emit(console, line, plain=plain, style="dim", indent=2)
    for note in _notes(result, circuit, verbose):
        indent = len(note) - len(note.lstrip())
        emit(console, note.lstrip(), plain=plain, indent=indent)
    for line in view.harmful_lines(circuit):
        emit(console, f"warning: {line}", plain=plain, style="bold yellow")
    for warning in circuit.warnings:
        emit(console, f"warning: {warning}", plain=plain, style="yellow")
    console.print()


def print_terminal(
    result: EvaluationResult, console: Console, verbose: bool = False, layout: str = "table"
) -> None:
    """Each circuit's claims (a table, or blocks where it does not fit or with
    layout="plain"), notes for claims that did not pass, warnings, provenance and the
    one-line summary."""
    plain = layout == "plain"
    for circuit in result.circuits:
        _print_circuit(result, circuit, console, verbose, plain)
    emit(console, view.provenance(result), plain=plain, style="dim")
    n = view.counts(result)
    style = "bold green" if n.total and n.passed == n.total else "bold red"
    emit(console, view.summary_line(result), plain=plain, style=style)
