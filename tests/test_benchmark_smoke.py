"""The benchmark's code path on a tiny model, so benchmarks/run.py cannot rot. Nothing
here is timed: the figures themselves come from running the benchmark (README)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if str(ROOT) not in sys.path:  # benchmarks/ is not installed: import it from the checkout
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.run")


def test_benchmark_tiny_in_process(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    # one thread: at this size two threads only add synchronisation (seconds under load)
    threads = torch.get_num_threads()
    report = bench.main(["--tiny", "--in-process", "--threads", "1", "--out", str(out),
                         "--engine", "fast", "--families", "gpt2"])  # fmt: skip
    assert torch.get_num_threads() == threads  # the benchmark gives the test's count back
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    machine = report["machine"]
    assert machine["torch_threads"] == 1 and machine["cores"] >= 1
    assert {"torch", "transformer-lens", "transformers"} <= set(machine["versions"])
    by_item = {r["item"]: r for r in report["results"]}
    assert set(by_item) == set(bench.ITEMS)
    memory = by_item.pop("memory")
    assert "error" not in memory, memory
    assert memory["passed"] and memory["limit_mb"] == 4096
    assert memory["memory"]["peak_mb"] >= memory["memory"]["after_model_mb"] > 0
    # the tiny model's whole baseline fits one chunk; the evaluation is the node item's
    assert memory["detail"]["chunks"] == 1
    assert memory["detail"]["n_random"] == report["config"]["n_random"]
    for r in by_item.values():
        assert "error" not in r, r
        assert r["item_wall_s"] > 0 and r["bare_wall_s"] > 0
        assert r["ratio_wall"] == pytest.approx(r["item_wall_s"] / r["bare_wall_s"])
        assert r["memory"]["peak_mb"] >= r["memory"]["before_mb"] > 0
    n = report["config"]["n_prompts"]
    # node: corrupted sweep + clean sweep + the circuit, plus the bridge check's 2 rows
    assert by_item["node"]["detail"]["forward_rows"] == 3 * n + 2
    assert by_item["edge"]["detail"]["n_edges_kept"] == round(
        0.1 * by_item["edge"]["detail"]["n_edges"]
    )
    base = by_item["baseline"]["detail"]
    assert base["forward_passes"] == report["config"]["n_random"] == base["n_circuits"]
    disc = by_item["discovery"]["detail"]
    # on a CPU discovery scores one candidate at a time: no pass beyond what it needs
    assert disc["masks_run"] == disc["masks_needed"]
    assert disc["forward_rows"] == disc["forward_passes_needed"] * disc["n_prompts"] + 2
    # attribution: the corrupted sweep + 2 bridge rows (EAP's forward, or EAP-IG's clean
    # reference, is the clean sweep), then EAP's forward and backward; EAP-IG's clean
    # reference and one forward and backward per step
    prep = 1 + 2 / n
    eap, ig = by_item["eap"]["detail"], by_item["eap_ig"]["detail"]
    assert (eap["forward_passes"], eap["backward_passes"]) == (pytest.approx(prep + 1), 1)
    assert (ig["forward_passes"], ig["backward_passes"]) == (pytest.approx(prep + 6), 5)
    found = by_item["eap_ig_discovery"]["detail"]
    assert found["passes"] == pytest.approx(prep + 6 + found["bisection_passes"] + 5)
    assert found["pruning_passes_at_least"] == 2 + found["n_edges"] and found["score"] > 0.8
    table = bench.render_table(report["results"], bench.Config.from_dict(report["config"]))
    assert all(item in table for item in bench.ITEMS)
    assert "4096MB  yes" in table


def test_benchmark_runs_the_generic_engine_on_every_family(bench: ModuleType, tmp_path: Path):  # type: ignore[no-untyped-def]
    report = bench.main(["--tiny", "--in-process", "--threads", "1", "--out", str(tmp_path / "r"),
                         "--items", "bare,node,edge,baseline"])  # fmt: skip
    rows = {(r["family"], r["engine"], r["item"]): r for r in report["results"]}
    for family in ("gpt2", "neox", "llama"):
        for item in ("node", "edge", "baseline"):
            assert "error" not in rows[(family, "generic", item)], rows[(family, "generic", item)]
    # the fast engine has no GPT-NeoX forward and no Llama edge forward: a row says so
    assert rows[("neox", "fast", "node")]["error"].startswith("[E302]")
    assert rows[("llama", "fast", "edge")]["error"].startswith("[E302]")
    assert "error" not in rows[("llama", "fast", "node")]
    n = report["config"]["n_prompts"]
    assert rows[("neox", "generic", "node")]["detail"]["forward_rows"] == 3 * n + 2
    table = bench.side_by_side(report["results"], bench.Config.from_dict(report["config"]))
    assert "generic/fast" in table and "neox" in table


def _save_tiny_task(cfg: Any, path: Path, checksum_offset: float = 0.0) -> None:
    """The parent's side of a worker run: the tiny model's task, saved with its checksum
    (shifted by `checksum_offset` to pose as another model's)."""
    from benchmarks.gpt2_shape import TINY, build_model, random_task, save_task, weights_checksum

    hf_model, _ = build_model(TINY, cfg.seed)
    task = random_task(hf_model, cfg.n_prompts, cfg.seq_len)
    save_task(task, path, weights_checksum(hf_model) + checksum_offset)


def test_worker_rebuilds_the_parents_model(bench: ModuleType, tmp_path: Path) -> None:
    from benchmarks.gpt2_shape import TINY

    cfg = bench.Config(shape=TINY, n_prompts=4, seq_len=5, repeats=1, threads=1)
    path = tmp_path / "task.npz"
    _save_tiny_task(cfg, path)
    res = bench.worker("node", cfg, path)
    assert res["detail"]["forward_rows"] == 3 * 4 + 2
    _save_tiny_task(cfg, path, checksum_offset=1.0)
    with pytest.raises(SystemExit, match="different weights"):
        bench.worker("node", cfg, path)


def test_memory_worker_reports_the_whole_process_peak(bench: ModuleType, tmp_path: Path) -> None:
    from benchmarks.gpt2_shape import TINY

    cfg = bench.Config(shape=TINY, n_prompts=4, seq_len=5, n_random=7, threads=1)
    path = tmp_path / "task.npz"
    _save_tiny_task(cfg, path)
    res = bench.worker("memory", cfg, path)
    assert res["item"] == "memory" and res["passed"]
    assert res["detail"]["n_random"] == 7
    # prepare (2 sweeps + 2 check rows), the circuit, the 7 baseline circuits
    assert res["detail"]["forward_rows"] == 2 * 4 + 2 + 4 + 7 * 4
    assert res["memory"]["peak_mb"] >= res["memory"]["after_model_mb"]
