"""A result as every report shows it: numbers formatted once, the ablation set-up in
words, p-values raw and Holm-adjusted, and the provenance (model, seed, versions).

Results come from the evaluator (seqcirc.results); optional parts are read defensively
so a report of an older or partial result shows "—" rather than failing:
- p-value claims: `detail["holm"]` (AdjustedClaim.to_json()) or top-level `p_raw`,
  `p_adjusted`, `floor`, `family_size` in `detail`; else the claim's value is the raw p.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.language.vocab import P_VALUE_KINDS
from seqcirc.plan import AblationSpec
from seqcirc.report.measures import MISSING, baseline_rank, number, role_measure
from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult

VERDICT_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "SKIP"}


def interval(claim: ClaimResult) -> str:
    """ "[0.712, 0.861] (95%)", or "—" when the measure has no interval."""
    if claim.lower is None and claim.upper is None:
        return MISSING
    level = f" ({claim.level:.0%})" if claim.level is not None else ""
    return f"[{number(claim.lower)}, {number(claim.upper)}]{level}"


def threshold(claim: ClaimResult) -> str:
    """What is compared: ">= 0.8" for a point value, "lower bound >= 0.8" for a CI bound,
    "p < 0.01" for a p-value claim."""
    thr = f"{claim.op} {claim.threshold:g}"
    if claim.kind in P_VALUE_KINDS:
        pv = p_values(claim)
        which = "Holm-adjusted p" if pv is not None and pv.decided_on == "adjusted" else "p"
        return f"{which} {thr}"
    if claim.bound in ("lower", "upper"):
        return f"{claim.bound} bound {thr}"
    return thr


def location(source: str, claim: ClaimResult) -> str:
    """file:line of the claim, as errors print it."""
    return f"{source}:{claim.line}" if claim.line else source


def short_source(source: str) -> str:
    return Path(source).name if source else "<string>"


def ablation_setup(circuit: CircuitResult) -> str:
    """The six choices of the ablation set-up (docs/language.md, `ablate`) in one line."""
    a: Mapping[str, Any] = circuit.ablation or {}
    # as recorded; a field the result lacks reads as MISSING ("value —")
    spec = AblationSpec(
        granularity=a.get("granularity", circuit.granularity),
        value=a.get("value", MISSING),
        positions=a.get("positions"),
        direction=a.get("direction", MISSING),
        per_position=a.get("per_position", True),
    )
    parts = [spec.describe(ragged=bool((circuit.task or {}).get("lengths"))).setup]
    if a.get("means_from"):
        parts.append(f"means from {a['means_from']}")
    parts.append(f"metric {circuit.metric}")
    gen = ((circuit.task or {}).get("meta") or {}).get("generation")
    if gen:  # accuracy of greedy continuations (docs/language.md, "Generation")
        steps = int(gen["max_new_tokens"])
        parts[-1] += f" of {steps} generated token{'s' if steps != 1 else ''}"
        parts[-1] += f" matching {gen['match']}" if gen.get("match") else ""
    bos = (circuit.task or {}).get("bos")
    if bos is not None:  # results from before the `bos` setting lack it
        parts.append(f"BOS {bos}")
    return "; ".join(parts)


def task_text(circuit: CircuitResult) -> str:
    t = circuit.task or {}
    n = t.get("n_prompts")
    return f"task {t.get('name', MISSING)}" + (f" ({n} prompts)" if n is not None else "")


def model_text(result: EvaluationResult) -> str:
    m = result.model or {}
    name = str(m.get("name", MISSING))
    extra = [str(m["source"])] if m.get("source") else []
    if m.get("revision"):
        extra.append(f"revision {str(m['revision'])[:12]}")
    if m.get("weights_sha256"):
        extra.append(f"weights sha256 {str(m['weights_sha256'])[:12]}")
    return name + (f" ({', '.join(extra)})" if extra else "")


def versions_text(result: EvaluationResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((result.versions or {}).items()))


def provenance(result: EvaluationResult) -> str:
    """Which model, seed and versions produced these numbers."""
    return (
        f"model {model_text(result)}; seed {result.seed}; results schema v{result.version}; "
        f"{versions_text(result)}"
    )


@dataclass(frozen=True)
class PValues:
    raw: float
    adjusted: float | None
    floor: float | None
    family_size: int | None
    decided_on: str | None


def p_values(claim: ClaimResult) -> PValues | None:
    """The claim's raw and Holm-adjusted p-values, or None if it is not a p-value claim."""
    detail = claim.detail or {}
    holm = detail.get("holm")
    src: Mapping[str, Any] = holm if isinstance(holm, Mapping) else detail
    raw = src.get("p_raw", detail.get("p_value"))
    if raw is None and claim.kind in P_VALUE_KINDS:
        raw = claim.value
    if raw is None:
        return None

    def opt(key: str) -> Any:
        return src.get(key, detail.get(key))

    adjusted, floor, size = opt("p_adjusted"), opt("floor"), opt("family_size")
    return PValues(
        float(raw),
        None if adjusted is None else float(adjusted),
        None if floor is None else float(floor),
        None if size is None else int(size),
        opt("decided_on"),
    )


def p_text(claim: ClaimResult, adjusted: bool = False) -> str:
    """A p-value printed honestly (seqcirc.stats.format_p): enough digits near the
    threshold, and its floor when it is the smallest the test can give."""
    from seqcirc.stats.reporting import format_p

    pv = p_values(claim)
    if pv is None:
        return MISSING
    if adjusted:
        if pv.adjusted is None:
            return MISSING
        return format_p(pv.adjusted, threshold=claim.threshold)
    return format_p(pv.raw, threshold=claim.threshold, floor=pv.floor)


def has_p_values(circuit: CircuitResult) -> bool:
    return any(p_values(c) is not None for c in circuit.claims)


def decided_p(claim: ClaimResult) -> str:
    """The p-value that decided a p-value claim (Holm-adjusted or raw), printed."""
    pv = p_values(claim)
    return p_text(claim, adjusted=pv is not None and pv.decided_on == "adjusted")


def measured(claim: ClaimResult) -> str:
    """The measured value; for `beats random`, the circuit's statistic and its rank among
    the random circuits ("F(C)/F(M) = 0.986, rank 1 of 280"); for another p-value
    claim, the p-value that decided it."""
    if claim.kind in P_VALUE_KINDS:
        rank = baseline_rank(claim)
        if rank is not None:
            return rank.text()
        if p_values(claim) is not None:
            return decided_p(claim)
    return number(claim.value)


def p_line(claim: ClaimResult) -> str:
    """ "0.00995 (floor 1/201); Holm-adjusted 0.02 over 2 p-value claims" (— without p)."""
    pv = p_values(claim)
    if pv is None:
        return MISSING
    out = p_text(claim)
    if pv.adjusted is not None:
        family = f" over {pv.family_size} p-value claims" if pv.family_size else ""
        out += f"; Holm-adjusted {p_text(claim, adjusted=True)}{family}"
    return out


def measure_name(claim: ClaimResult, circuit: CircuitResult) -> str:
    """What the value is, e.g. "performance_ratio of logit_diff"."""
    d = claim.detail or {}
    if d.get("variant"):
        return f"{d['variant']} of {d.get('metric', circuit.metric)}"
    if claim.kind == "completeness":
        return f"{d.get('statistic', 'worst')} incompleteness |F(C\\K) - F(M\\K)| / |F(M)|"
    if claim.kind == "minimality" and d.get("form") == "signed":
        return "smallest signed per-component drop (below 0: removing it helps), relative to F(M)"
    if claim.kind == "minimality":
        return "smallest per-component drop, relative to F(M)"
    if claim.kind == "role":
        return role_measure(d)
    rank = baseline_rank(claim)
    if rank is not None:
        return (
            f"the circuit's {rank.symbol} ranked among itself and {rank.of - 1} random circuits "
            "of its size; 1 = best"
        )
    if claim.kind in P_VALUE_KINDS:
        return f"{claim.kind} p-value"
    return claim.kind


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    errors: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped


def counts(result: EvaluationResult) -> Counts:
    verdicts = [c.verdict for _, c in result.claims()]
    return Counts(
        verdicts.count("pass"),
        verdicts.count("fail"),
        verdicts.count("error"),
        verdicts.count("skipped"),
    )


def summary_line(result: EvaluationResult) -> str:
    """One line: the overall verdict, the counts, and what produced them."""
    n = counts(result)
    if n.total == 0:
        head = "NO CLAIMS"
    elif n.passed == n.total:
        head = "PASSED"
    else:
        head = "FAILED"
    model = (result.model or {}).get("name", MISSING)
    tail = f"{short_source(result.source)} on {model}, seed {result.seed}"
    return (
        f"{head}: {n.passed} of {_plural(n.total, 'claim')} hold ({n.failed} failed, "
        f"{_plural(n.errors, 'error')}, {n.skipped} skipped) in "
        f"{_plural(len(result.circuits), 'circuit')}; {tail}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def note_text(claim: ClaimResult, source_path: str) -> str:
    """One line on a claim that did not pass, for the terminal (whose table caption
    already carries the ablation set-up)."""
    head = (
        f"{location(source_path, claim)}: {claim.text or claim.id}: {VERDICT_WORDS[claim.verdict]}"
    )
    if claim.verdict in ("error", "skipped") or claim.value is None:
        return f"{head}: {claim.message or 'no value'}"
    if claim.kind in P_VALUE_KINDS:
        rank = baseline_rank(claim)
        extra = f"; {rank.text()}" if rank is not None else ""
        return f"{head}: {threshold(claim)} does not hold (p = {decided_p(claim)}{extra})"
    shown = claim.compared if claim.compared is not None else claim.value
    what = "point value" if claim.bound == "point" else f"{claim.bound} bound"
    ci = interval(claim)
    extra = f", interval {ci}" if ci != MISSING else ""
    return (
        f"{head}: {what} {number(shown)} is not {claim.op} {claim.threshold:g} "
        f"(measured {number(claim.value)}{extra})"
    )


def failure_text(claim: ClaimResult, circuit: CircuitResult, source_path: str) -> str:
    """Why a claim did not pass, for the pytest plugin's repr_failure and the reports:
    file:line, measured value, interval (p-values for a test), threshold, and the
    ablation set-up, except for a role claim: a head's own score, which no ablation
    enters, says only what it measured."""
    where = location(source_path, claim)
    title = claim.text or claim.id
    lines = [f"{where}: {circuit.name}: {title}: {VERDICT_WORDS[claim.verdict]}"]
    if claim.message:
        lines.append(f"  {claim.message}")
    if claim.value is not None:
        lines.append(f"  measured: {measured(claim)} ({measure_name(claim, circuit)})")
        if claim.kind in P_VALUE_KINDS:
            lines.append(f"  p: {p_line(claim)}")
        elif claim.kind != "role":
            lines.append(f"  interval: {interval(claim)}")
        shown = claim.compared if claim.compared is not None else claim.value
        outcome = {"pass": "holds", "fail": "does not hold"}.get(claim.verdict, "undecided")
        if claim.kind in P_VALUE_KINDS:
            lines.append(f"  threshold: {threshold(claim)} ({outcome})")
        else:
            lines.append(
                f"  threshold: {threshold(claim)}; compared {number(shown)} "
                f"{claim.op} {claim.threshold:g} {outcome}"
            )
    if claim.kind != "role":
        lines.append(f"  ablation: {ablation_setup(circuit)}")
        lines.append(f"  {task_text(circuit)}; circuit hash {circuit.circuit_hash}")
    return "\n".join(lines)


FAITHFULNESS_KINDS = ("faithfulness", "normalized_faithfulness")


def basis_text(claim: ClaimResult) -> str | None:
    """Which statistic a faithfulness verdict compared with its threshold, and the other
    beside it; None for other claims and for claims with no value."""
    if claim.kind not in FAITHFULNESS_KINDS or claim.value is None:
        return None
    thr = f"{claim.op} {claim.threshold:g}"
    level = f"{claim.level:.0%} " if claim.level is not None else ""
    if claim.bound == "point":
        return (
            f"{thr} compared with the point value {number(claim.value)}; "
            f"{level}bootstrap interval {interval(claim)} (not compared)"
        )
    return (
        f"{thr} compared with the {claim.bound} {level}bootstrap bound {number(claim.compared)}; "
        f"point value {number(claim.value)}"
    )


def basis_lines(circuit: CircuitResult) -> list[str]:
    """One line per faithfulness verdict: "line 20: faithfulness PASS: >= 0.8 compared ..."."""
    out = []
    for claim in circuit.claims:
        text = basis_text(claim)
        if text is not None:
            out.append(f"line {claim.line}: {claim.kind} {VERDICT_WORDS[claim.verdict]}: {text}")
    return out


def _ratio(x: Any) -> str:
    return f"{float(x):.4f}" if isinstance(x, int | float) else MISSING


def harmful_text(entry: Mapping[str, Any], level: float | None = None) -> str:
    """ "removing 2.0 raises F(C)/F(M) from 0.9725 to 0.9857 [95% CI of the rise 0.0051,
    0.0213]: it works against the circuit" (a group: "removing group early (0.0, 0.1)")."""
    what = str(entry.get("removed", MISSING))
    if entry.get("kind") == "group":
        what = f"group {what} ({', '.join(entry.get('members', []))})"
    pct = f"{level:.0%} " if level is not None else ""
    return (
        f"removing {what} raises F(C)/F(M) from {_ratio(entry.get('f_circuit'))} to "
        f"{_ratio(entry.get('f_without'))} [{pct}CI of the rise {_ratio(entry.get('rise_lower'))}, "
        f"{_ratio(entry.get('rise_upper'))}]: it works against the circuit"
    )


def harmful_lines(circuit: CircuitResult) -> list[str]:
    """A line per node or group whose removal improves the circuit (the lower bound of the
    rise is above 0); [] when none is, or the result has no removal table."""
    table: Mapping[str, Any] = getattr(circuit, "removals", None) or {}
    level = table.get("level")
    return [harmful_text(e, level) for e in table.get("harmful", []) if isinstance(e, Mapping)]


def removal_rows(circuit: CircuitResult) -> list[tuple[str, str, str, str, bool]]:
    """(removed, F(C without it)/F(M), signed drop, interval of the rise, harmful) for each
    node and group of the removal table, for the HTML and Markdown tables."""
    table: Mapping[str, Any] = getattr(circuit, "removals", None) or {}
    rows = []
    for e in [*table.get("nodes", []), *table.get("groups", [])]:
        name = str(e.get("removed"))
        if e.get("kind") == "group":
            name = f"group {name} ({', '.join(e.get('members', []))})"
        rise = f"[{_ratio(e.get('rise_lower'))}, {_ratio(e.get('rise_upper'))}]"
        rows.append((name, _ratio(e.get("f_without")), _ratio(e.get("signed_drop")), rise,
                     bool(e.get("harmful"))))  # fmt: skip
    return rows
