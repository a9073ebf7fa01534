"""The results JSON: EvaluationResult.to_json(), versioned (its `version` field), strict
JSON (non-finite numbers as strings); EvaluationResult.from_json reads it back."""

from __future__ import annotations

from pathlib import Path

from seqcirc.report.files import write_text
from seqcirc.results import EvaluationResult


def write_json(result: EvaluationResult, path: str | Path) -> Path:
    return write_text(path, result.to_json() + "\n", "JSON report")
