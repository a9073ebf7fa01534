"""Hand-built EvaluationResults for the report tests: no model, every verdict, and a
result with the optional parts missing."""

from __future__ import annotations

from typing import Any

from seqcirc.results import CircuitResult, ClaimResult, EvaluationResult

SOURCE = "hypotheses/months.circ"
ABLATION: dict[str, Any] = {
    "granularity": "node",
    "value": "mean",
    "positions": None,
    "direction": "ablate_complement",
    "means_from": "64 corrupted prompts of task 'months'",
}


def _claim(**kw: Any) -> ClaimResult:
    base: dict[str, Any] = {"col": 3, "bound": "point", "op": ">="}
    return ClaimResult(**{**base, **kw})


def full_result() -> EvaluationResult:
    points = [
        {"knocked_out": ["0.1"], "source": "random", "f_model_minus": 2.9,
         "f_circuit_minus": 2.4, "incompleteness": 0.125},
        {"knocked_out": ["0.1", "1.0"], "source": "random", "f_model_minus": 2.1,
         "f_circuit_minus": 1.9, "incompleteness": 0.05},
        {"knocked_out": ["1.0"], "source": "group:successor", "f_model_minus": 3.2,
         "f_circuit_minus": 3.0, "incompleteness": 0.05},
        {"knocked_out": ["1.0", "mlp0"], "source": "greedy", "f_model_minus": 1.0,
         "f_circuit_minus": 0.2, "incompleteness": 0.2},
    ]  # fmt: skip
    claims = (
        _claim(
            id="months:20:faithfulness", kind="faithfulness", line=20, threshold=0.8,
            text="expect faithfulness(bound=point) >= 0.8", verdict="pass", value=0.8123,
            lower=0.7412, upper=0.8867, level=0.95, compared=0.8123,
            detail={"variant": "performance_ratio", "metric": "logit_diff", "seed": 0,
                    "n_boot": 1000},
        ),
        _claim(
            id="months:21:normalized_faithfulness", kind="normalized_faithfulness", line=21,
            threshold=0.9, bound="lower", text="expect normalized_faithfulness >= 0.9",
            verdict="fail", value=0.8511, lower=0.7702, upper=0.9301, level=0.95,
            compared=0.7702, detail={"variant": "normalized_faithfulness",
                                     "metric": "logit_diff"},
        ),
        _claim(
            id="months:22:completeness", kind="completeness", line=22, op="<=", threshold=0.3,
            text="expect completeness <= 0.3", verdict="pass", value=0.2, compared=0.2,
            detail={"statistic": "worst", "worst": 0.2, "mean": 0.10625,
                    "worst_knocked_out": ["1.0", "mlp0"], "seed": 0, "points": points},
        ),
        _claim(
            id="months:23:minimality", kind="minimality", line=23, threshold=0.01,
            text="expect minimality >= 0.01", verdict="pass", value=0.05, compared=0.05,
            detail={"per_node": {
                "0.1": {"drop_alone": 0.3, "group": None, "drop_in_group": None, "score": 0.3},
                "1.0": {"drop_alone": 0.05, "group": "successor", "drop_in_group": 0.04,
                        "score": 0.05},
                "mlp0": {"drop_alone": 0.6, "group": None, "drop_in_group": None,
                         "score": 0.6}}},
        ),
        _claim(
            id="months:24:random_baseline", kind="random_baseline", line=24, op="<",
            threshold=0.01, text="expect beats random(n=200) at p < 0.01", verdict="fail",
            value=0.00995, compared=0.0199,
            # one random circuit (0.9) beats the circuit: rank 2 of 201, p = 2/201
            detail={"statistic": 0.8123, "statistic_name": "performance_ratio",
                    "random_values": [0.1 + 0.0035 * i for i in range(199)] + [0.9],
                    "holm": {"p_raw": 0.00995, "p_adjusted": 0.0199, "family_size": 2,
                             "decided_on": "adjusted", "floor": 1 / 201}},
        ),
        _claim(
            id="months:25:equivalence", kind="equivalence", line=25, threshold=0.05,
            text="expect equivalence(epsilon=0.1) at p >= 0.05", verdict="pass",
            value=0.4312, compared=0.4312,
            detail={"p_raw": 0.4312, "p_adjusted": 0.4312, "family_size": 2,
                    "decided_on": "raw"},
        ),
        _claim(
            id="months:26:role", kind="role", line=26, threshold=0.25,
            text="role 1.0 successor(top=5) >= 0.25", verdict="skipped",
            message="no evaluator for claim kind 'role' was given to this run",
        ),
        _claim(
            id="months:28:role", kind="role", line=28, threshold=0.25,
            text="role 0.1 attends(from=S3, to=S2) >= 0.25", verdict="pass", value=0.61,
            compared=0.61,
            detail={"head": "0.1", "role": "attends", "attention": {
                "labels": ["<bos>", "S1", "S2", "S3", "END"],
                "pattern": [[1, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0.2, 0.5, 0.3, 0, 0],
                            [0.1, 0.1, 0.61, 0.19, 0], [0.1, 0.2, 0.2, 0.2, 0.3]]}},
        ),
        _claim(
            id="months:27:minimality_test", kind="minimality_test", line=27, op="<",
            threshold=0.05, text="expect minimality_test at p < 0.05", verdict="error",
            message="[E312] F(M) = E kl of the full model is 0: relative measures are undefined",
        ),
    )  # fmt: skip
    circuit = CircuitResult(
        name="months", circuit_hash="0123456789abcdef", granularity="node",
        nodes=("0.1", "1.0", "mlp0"), edges=(), groups={"successor": ["1.0"]},
        ablation=ABLATION, task={"name": "months", "n_prompts": 64, "seq_len": 12, "meta": {}},
        metric="logit_diff", f_model=3.25, f_circuit=2.64, f_empty=-0.5,
        per_prompt={"model": [3.0, 3.5], "circuit": [2.5, 2.78], "empty": [-0.5, -0.5]},
        faithfulness={
            "performance_ratio": {"value": 0.8123, "lower": 0.7412, "upper": 0.8867,
                                  "level": 0.95, "seed": 0},
            "normalized_faithfulness": {"value": 0.8511, "lower": 0.7702, "upper": 0.9301,
                                        "level": 0.95, "seed": 0},
        },
        claims=claims, checks={"bridge_max_abs_diff": 1e-6, "dead_nodes": []},
        timings={"prepare_s": 1.5, "circuit_s": 0.25, "claims_s": 0.5}, forward_rows=640,
        warnings=("intervening on 1.3 changes nothing (its replacement equals its output)",),
    )  # fmt: skip
    return EvaluationResult(
        source=SOURCE, seed=7,
        model={"name": "seqcirc-mini", "resolved": "/x/mini", "source": "bundled",
               "revision": None, "weights_sha256": "ab" * 32,
               "shape": {"n_layers": 2, "n_heads": 4}},
        versions={"seqcirc": "0.1.0", "torch": "2.13.0", "transformer-lens": "4.3.0"},
        circuits=(circuit, sparse_circuit()), timings={"total_s": 3.0},
    )  # fmt: skip


def sparse_circuit() -> CircuitResult:
    """An edge circuit with every optional part missing: no interval, no detail, no
    faithfulness variants, no ablation provenance."""
    return CircuitResult(
        name="edges on months", circuit_hash="fedcba9876543210", granularity="edge",
        nodes=("0.1", "1.0"), edges=("embed->0.1[v]", "0.1->1.0[k]", "1.0->logits[resid]"),
        groups={}, ablation={"granularity": "edge", "value": "zero", "positions": ["S1", "END"],
                             "direction": "patch_circuit"},
        task={"name": "months"}, metric="prob", f_model=0.5, f_circuit=0.4, f_empty=0.1,
        per_prompt={}, faithfulness={"performance_ratio": {"error": "[E312] F(M) is 0"}},
        claims=(
            _claim(id="e:30:minimality", kind="minimality", line=30, threshold=0.0,
                   text="expect minimality >= 0", verdict="fail", value=-0.01,
                   compared=-0.01),
        ),
        checks={}, timings={}, forward_rows=0,
    )  # fmt: skip


def minimal_result() -> EvaluationResult:
    """Only required fields; the model dict carries nothing but a name."""
    return EvaluationResult(
        source="x.circ", seed=0, model={"name": "tiny"}, versions={},
        circuits=(sparse_circuit(),), timings={},
    )  # fmt: skip
