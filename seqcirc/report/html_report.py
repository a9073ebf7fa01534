"""One self-contained HTML file: inline CSS, plots embedded as base64 PNG, no scripts,
no links to anything outside the file (it can be attached to a CI run or mailed)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from seqcirc.report import view
from seqcirc.report.figures import circuit_figures
from seqcirc.report.files import write_text
from seqcirc.results import CircuitResult, EvaluationResult

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #cf222e; font-weight: bold; }
.error { color: #8250df; font-weight: bold; } .skipped { color: #9a6700; }
.setup, .prov, .basis { color: #555; font-size: 0.85em; }
.harmful { color: #cf222e; font-weight: bold; } tr.harmful td { background: #ffebe9; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.85em; }
img { max-width: 100%; } pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _claims_table(circuit: CircuitResult) -> str:
    with_p = view.has_p_values(circuit)
    head = ["claim", "line", "measured", "interval", "threshold", "verdict"]
    if with_p:
        head += ["p", "p (Holm)"]
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for c in circuit.claims:
        cells = [
            f"<td><code>{escape(c.text or c.id)}</code></td>",
            f'<td class="num">{c.line}</td>',
            f'<td class="num">{escape(view.measured(c))}</td>',
            f'<td class="num">{escape(view.interval(c))}</td>',
            f"<td>{escape(view.threshold(c))}</td>",
            f'<td class="{c.verdict}">{view.VERDICT_WORDS[c.verdict]}</td>',
        ]
        if with_p:
            cells += [
                f'<td class="num">{escape(view.p_text(c))}</td>',
                f'<td class="num">{escape(view.p_text(c, adjusted=True))}</td>',
            ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + "\n".join(rows) + "</table>"


def _removals_table(circuit: CircuitResult) -> str:
    """Each node and group taken out of the circuit, signed; harmful rows marked."""
    rows = view.removal_rows(circuit)
    if not rows:
        return ""
    head = ["removed", "F(C without it)/F(M)", "signed drop", "interval of the rise", ""]
    out = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for name, without, drop, rise, harmful in rows:
        mark = ' class="harmful"' if harmful else ""
        out.append(
            f'<tr{mark}><td>{escape(name)}</td><td class="num">{without}</td>'
            f'<td class="num">{drop}</td><td class="num">{rise}</td>'
            f"<td>{'harmful: works against the circuit' if harmful else ''}</td></tr>"
        )
    caption = "<caption>each component taken out of the circuit alone (signed)</caption>"
    return "<table>" + caption + "\n".join(out) + "</table>"


def _circuit(result: EvaluationResult, circuit: CircuitResult, plots: bool) -> str:
    parts = [
        f"<h2>circuit {escape(circuit.name)}</h2>",
        f"<p>{escape(view.task_text(circuit))}; {len(circuit.nodes)} nodes, "
        f"{len(circuit.edges)} edges; hash <code>{escape(circuit.circuit_hash)}</code>; "
        f"F(M) = {view.number(circuit.f_model)}, F(C) = {view.number(circuit.f_circuit)}, "
        f"F(&empty;) = {view.number(circuit.f_empty)} ({escape(circuit.metric)})</p>",
        f'<p class="setup"><b>Ablation set-up</b> (every number below): '
        f"{escape(view.ablation_setup(circuit))}</p>",
        _claims_table(circuit),
        *(f'<p class="basis">{escape(b)}</p>' for b in view.basis_lines(circuit)),
        *(f'<p class="harmful">&#9888; {escape(h)}</p>' for h in view.harmful_lines(circuit)),
        _removals_table(circuit),
    ]
    notes = [view.failure_text(c, circuit, result.source) for c in circuit.claims
             if c.verdict != "pass"]  # fmt: skip
    if notes:
        parts.append("<pre>" + escape("\n\n".join(notes)) + "</pre>")
    parts += [f'<p class="skipped">warning: {escape(w)}</p>' for w in circuit.warnings]
    if plots:
        for fig in circuit_figures(result, circuit):
            setup = (
                f" Ablation set-up: {escape(view.ablation_setup(circuit))}." if fig.ablated else ""
            )
            parts.append(
                f"<figure>{_img(fig.png, fig.title)}<figcaption><b>{escape(fig.title)}.</b> "
                f"{escape(fig.caption)}{setup}</figcaption></figure>"
            )
    return "\n".join(parts)


def html_report(result: EvaluationResult, *, plots: bool = True) -> str:
    n = view.counts(result)
    verdict = "pass" if n.total and n.passed == n.total else "fail"
    body = [
        f"<h1>seqcirc report: {escape(view.short_source(result.source))}</h1>",
        f'<p class="{verdict}">{escape(view.summary_line(result))}</p>',
        f'<p class="prov">Source {escape(result.source)}. Produced by '
        f"{escape(view.provenance(result))}.</p>",
        *(_circuit(result, c, plots) for c in result.circuits),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>seqcirc: {escape(view.short_source(result.source))}</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_html(result: EvaluationResult, path: str | Path) -> Path:
    return write_text(path, html_report(result), "HTML report")
