"""`seqcirc attribute` and `seqcirc discover --method ...` on the bundled model: the JSON
in the EAP-IG/MIB graph format, the heatmap, bad input as exit 2, and a discovered edge
circuit that `seqcirc test` passes as written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cli_in_process import seqcirc

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"
needs_mini = pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model is not built")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args)  # in process: the imports and the model load once


@needs_mini
def test_attribute_writes_mib_json_and_a_heatmap(tmp_path: Path) -> None:
    out, png = tmp_path / "scores.json", tmp_path / "scores.png"
    run = _run("attribute", "seqcirc-mini", "--task", "months", "--prompts", "12", "--nodes",
               "--json", str(out), "-o", str(png), "--top", "5")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout and "eap: 175 edges of seqcirc-mini" in run.stdout
    doc = json.loads(out.read_text())
    assert doc["cfg"] == {"n_layers": 4, "n_heads": 2, "d_model": 128, "parallel_attn_mlp": False}
    edges, nodes = doc["edges"], doc["nodes"]
    assert len(edges) == 175  # 4 layers x 2 heads: the EAP-IG library's graph too
    for name in ("input->a0.h0<q>", "a0.h1->m0", "m0->a1.h0<k>", "a3.h1->logits", "m3->logits"):
        assert set(edges[name]) == {"score", "in_graph"} and edges[name]["in_graph"] is False
    heads = {f"a{layer}.h{h}" for layer in range(4) for h in (0, 1)}
    assert set(nodes) == {"input", "logits"} | heads | {f"m{layer}" for layer in range(4)}
    out_of_m0 = [v["score"] for k, v in edges.items() if k.startswith("m0->")]
    assert nodes["m0"]["score"] == pytest.approx(float(np.sum(out_of_m0)))
    meta = doc["seqcirc"]
    assert (meta["method"], meta["metric"], meta["model"]) == ("eap", "logit_diff", "seqcirc-mini")
    assert meta["sum_of_scores"] == pytest.approx(sum(v["score"] for v in edges.values()))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_attribution_options_exit_2_without_traceback() -> None:
    for args in (["--method", "shapley"], ["--metric", "accuracy"], ["--steps", "3"],
                 ["--ablate", "noise"], ["--prompts", "0"], ["--method", "eap-ig-inputs",
                 "--steps", "0"]):  # fmt: skip
        run = _run("attribute", "seqcirc-mini", "--task", "months", *args, timeout=120)
        assert run.returncode == 2, (args, run.stderr)
        assert "Traceback" not in run.stderr and "error[E365]" in run.stderr, run.stderr


def test_bad_discover_method_options_exit_2() -> None:
    cases = (
        ["--method", "acdc"],
        ["--method", "prune", "--steps", "3"],
        ["--method", "eap", "--metric", "kl"],
        ["--method", "acdc", "--threshold", "0.1", "--selection", "greedy"],
        ["--method", "mcts"],
        ["--method", "eap", "--ablate", "noise"],
        ["--method", "eap", "--edges"],
    )
    for args in cases:
        run = _run("discover", "--task", "months", *args, timeout=120)
        assert run.returncode == 2, (args, run.stderr)
        assert "Traceback" not in run.stderr and "error[E340]" in run.stderr, run.stderr


@needs_mini
def test_discover_eap_ig_writes_an_edge_circuit_that_test_passes(tmp_path: Path) -> None:
    out = tmp_path / "edges.circ"
    run = _run("discover", "--task", "months", "--method", "eap-ig", "--prompts", "12",
               "-o", str(out))  # fmt: skip
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert "ablate edges mean" in text and "  edge " in text and "# Found by: seqcirc" in text
    test = _run("test", str(out), "-q")
    assert test.returncode == 0, test.stdout + test.stderr
