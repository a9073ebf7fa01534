"""JUnit XML for CI systems: a testsuite per circuit, a testcase per claim named
`circuit::claim` with the .circ file and line; a failure carries the measured value,
interval, threshold and ablation set-up; errors and skipped claims are marked as such."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from seqcirc.report import view
from seqcirc.report.files import write_text
from seqcirc.results import CircuitResult, EvaluationResult


def _seconds(circuit: CircuitResult) -> float:
    """This circuit's own run and claims (preparation is shared between circuits)."""
    t = circuit.timings or {}
    return float(t.get("circuit_s", 0.0)) + float(t.get("claims_s", 0.0))


def _suite(result: EvaluationResult, circuit: CircuitResult) -> ET.Element:
    claims = circuit.claims
    suite = ET.Element(
        "testsuite",
        {
            "name": circuit.name,
            "tests": str(len(claims)),
            "failures": str(sum(c.verdict == "fail" for c in claims)),
            "errors": str(sum(c.verdict == "error" for c in claims)),
            "skipped": str(sum(c.verdict == "skipped" for c in claims)),
            "time": f"{_seconds(circuit):.3f}",
            "file": result.source,
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("model", view.model_text(result)),
        ("seed", str(result.seed)),
        ("ablation", view.ablation_setup(circuit)),
        ("task", view.task_text(circuit)),
        ("circuit_hash", circuit.circuit_hash),
        ("versions", view.versions_text(result)),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for claim in claims:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"{view.short_source(result.source)}.{circuit.name}",
                "name": f"{circuit.name}::{claim.text or claim.id}",
                "file": result.source,
                "line": str(claim.line),
            },
        )
        text = view.failure_text(claim, circuit, result.source)
        if claim.verdict == "fail":
            ci = view.interval(claim)
            shown = view.measured(claim)
            # beats random: the rank is measured, the p-value decides
            p = view.decided_p(claim) if view.p_values(claim) is not None else shown
            message = (
                f"measured {shown}{'' if ci == view.MISSING else ' ' + ci}"
                f"{'' if p == shown else '; p ' + p}, needs {view.threshold(claim)}"
            )
            ET.SubElement(case, "failure", {"message": message, "type": claim.kind}).text = text
        elif claim.verdict == "error":
            ET.SubElement(
                case, "error", {"message": claim.message or "error", "type": claim.kind}
            ).text = text
        elif claim.verdict == "skipped":
            ET.SubElement(case, "skipped", {"message": claim.message or "skipped"})
        else:
            ET.SubElement(case, "system-out").text = text
    return suite


def junit_xml(result: EvaluationResult) -> str:
    root = ET.Element("testsuites", {"name": f"seqcirc {view.short_source(result.source)}"})
    for circuit in result.circuits:
        root.append(_suite(result, circuit))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_junit(result: EvaluationResult, path: str | Path) -> Path:
    return write_text(path, junit_xml(result) + "\n", "JUnit report")
