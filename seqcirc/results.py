"""Evaluation results: per claim the measured value, its interval, threshold and verdict;
per circuit the exact nodes/edges evaluated (and their hash), the ablation set-up, the
per-prompt values, seeds, model identity, versions and timings. JSON in and out.

Non-finite floats (an unbounded interval) are written as the strings "inf", "-inf",
"nan" so the JSON stays strict; from_json turns them back into floats.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "fail", "error", "skipped"]
RESULTS_VERSION = 1


@dataclass(frozen=True)
class ClaimResult:
    """One claim, checked. `compared` is the statistic held against the threshold: the
    point value, or the lower/upper confidence bound, as the claim's `bound` says."""

    id: str
    kind: str
    text: str
    line: int
    col: int
    op: str
    threshold: float
    bound: str
    verdict: Verdict
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    compared: float | None = None
    per_prompt: tuple[float, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    seed: int | None = None  # the claim's own seed (derived from the plan's)


@dataclass(frozen=True)
class CircuitResult:
    name: str
    circuit_hash: str
    granularity: str
    nodes: tuple[str, ...]
    edges: tuple[str, ...]
    groups: dict[str, list[str]]
    ablation: dict[str, Any]  # the full set-up (docs/language.md), incl. where the means come from
    task: dict[str, Any]  # name, prompts, length, generator meta
    metric: str
    f_model: float  # E m(M)
    f_circuit: float  # E m(C)
    f_empty: float  # E m(empty)
    per_prompt: dict[str, list[float]]  # "model", "circuit", "empty"
    faithfulness: dict[str, dict[str, Any]]  # variant -> value, interval, seed, ...
    claims: tuple[ClaimResult, ...]
    checks: dict[str, Any]  # liveness and the forward-vs-bridge check
    timings: dict[str, float]
    forward_rows: int  # prompt-rows pushed through forward passes
    warnings: tuple[str, ...] = ()
    # Node circuits: each node and role group taken out of C, signed, with the paired
    # bootstrap interval of the rise and the `harmful` list (seqcirc.claims.removals).
    # Optional in schema v1: None for edge circuits and for results written before it.
    removals: dict[str, Any] | None = None

    @property
    def harmful(self) -> list[dict[str, Any]]:
        """The nodes and groups whose removal raises F(C)/F(M) beyond the bootstrap
        interval (each with its values and interval); [] when not measured."""
        return list((self.removals or {}).get("harmful", []))

    @property
    def passed(self) -> bool:
        return all(c.verdict == "pass" for c in self.claims)

    @property
    def performance_ratio(self) -> Estimate:
        """F(C)/F(M) with its bootstrap interval: `result["months"].performance_ratio.lower`."""
        return Estimate.from_dict(self.faithfulness, "performance_ratio")

    @property
    def normalized_faithfulness(self) -> Estimate:
        """(E m(C) - E m(empty)) / (E m(M) - E m(empty)) with its bootstrap interval."""
        return Estimate.from_dict(self.faithfulness, "normalized_faithfulness")

    def claim(self, claim_id: str) -> ClaimResult:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise KeyError(f"circuit {self.name!r} has no claim {claim_id!r}")


@dataclass(frozen=True)
class Estimate:
    """A point value and its confidence interval, for attribute access in Python tests."""

    value: float
    lower: float
    upper: float
    level: float

    @classmethod
    def from_dict(cls, faithfulness: dict[str, dict[str, Any]], variant: str) -> Estimate:
        f = faithfulness.get(variant, {})
        if "error" in f or "value" not in f:
            raise ValueError(f"{variant} is undefined here: {f.get('error', 'not measured')}")
        return cls(float(f["value"]), float(f["lower"]), float(f["upper"]), float(f["level"]))


@dataclass(frozen=True)
class EvaluationResult:
    source: str
    seed: int
    model: dict[str, Any]
    versions: dict[str, str]
    circuits: tuple[CircuitResult, ...]
    timings: dict[str, float]
    version: int = RESULTS_VERSION

    @property
    def passed(self) -> bool:
        """Every claim of every circuit passed (a skipped or errored claim is not a pass)."""
        return all(c.passed for c in self.circuits)

    def __getitem__(self, circuit: str) -> CircuitResult:
        """The result of one circuit by name: `result["months"]`."""
        for c in self.circuits:
            if c.name == circuit:
                return c
        names = ", ".join(c.name for c in self.circuits)
        raise KeyError(f"no circuit {circuit!r} in this result (circuits: {names})")

    def claims(self) -> list[tuple[str, ClaimResult]]:
        return [(c.name, cl) for c in self.circuits for cl in c.claims]

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> EvaluationResult:
        raw = _unfinite(json.loads(text))
        circuits = []
        for c in raw["circuits"]:
            claims = tuple(
                ClaimResult(**{**cl, "per_prompt": tuple(cl["per_prompt"])}) for cl in c["claims"]
            )
            circuits.append(
                CircuitResult(
                    **{
                        **c,
                        "claims": claims,
                        "nodes": tuple(c["nodes"]),
                        "edges": tuple(c["edges"]),
                        "warnings": tuple(c["warnings"]),
                    }
                )
            )
        return cls(**{**raw, "circuits": tuple(circuits)})


def _finite(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays in task metadata
        obj = obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _unfinite(obj: Any) -> Any:
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _unfinite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unfinite(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    """Versions of everything that changes the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("seqcirc", "torch", "transformer-lens", "transformers", "numpy", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
