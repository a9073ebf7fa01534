"""`seqcirc test` through the real console script: verdicts, reports, exit codes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cli_in_process import seqcirc
from tests.mini_circuits import TASK, heads_but_last, needs_bundled

SEQCIRC = shutil.which("seqcirc", path=str(Path(sys.executable).parent)) or "seqcirc"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


def _process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script in a process of its own (runs that must not share one)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [SEQCIRC, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@needs_bundled
def test_holding_and_failing_claims_exit_0_and_1_with_reports(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(
        TASK + f"circuit most on seqcirc-mini {{\n  heads {heads_but_last()}\n"
        "  expect faithfulness >= 0.5\n}\n"
    )
    ok = _process("test", "ok.circ", "--json", "ok.json", "--html", "ok.html", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED: 1 of 1 claim" in ok.stdout
    result = json.loads((tmp_path / "ok.json").read_text())
    assert result["circuits"][0]["claims"][0]["verdict"] == "pass"
    assert "data:image/png;base64" in (tmp_path / "ok.html").read_text()
    assert "Traceback" not in ok.stderr

    (tmp_path / "bad.circ").write_text(
        TASK + "circuit one on seqcirc-mini {\n  heads 0.0\n"
        "  expect faithfulness(bound=point) >= 0.99\n}\n"
    )
    bad = _run("test", "bad.circ", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout


def test_typo_gives_a_pointed_error_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "typo.circ").write_text(
        TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n  expect faithfulnes >= 0.5\n}\n"
    )
    proc = _run("test", "typo.circ", cwd=tmp_path)
    assert proc.returncode == 2
    assert "typo.circ:7:" in proc.stderr
    assert "help:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unavailable_model_exits_3_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "hub.circ").write_text(
        TASK + "circuit c on gpt2-small {\n  heads 9.1\n  expect faithfulness >= 0.5\n}\n"
    )
    proc = _run("test", "hub.circ", cwd=tmp_path)
    assert proc.returncode == 3
    assert "gpt2-small" in proc.stderr and "seqcirc-mini" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_on_selects_circuits_and_names_the_models_when_none_match(tmp_path: Path) -> None:
    (tmp_path / "hub.circ").write_text(
        TASK + "circuit c on gpt2-small {\n  heads 9.1\n  expect faithfulness >= 0.5\n}\n"
    )
    proc = _run("test", "hub.circ", "--on", "seqcirc-mini", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no circuit on seqcirc-mini" in proc.stderr
    assert "gpt2-small" in proc.stderr


@needs_bundled
def test_cache_dir_reuses_the_means_across_runs_and_a_new_seed_misses(tmp_path: Path) -> None:
    (tmp_path / "ok.circ").write_text(
        TASK + f"circuit most on seqcirc-mini {{\n  heads {heads_but_last()}\n"
        "  expect faithfulness >= 0.5\n}\n"
    )

    def run(name: str, *extra: str) -> dict:  # type: ignore[type-arg]
        proc = _process(
            "test", "ok.circ", "--cache-dir", "cache", "--json", name, *extra, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        circuit = json.loads((tmp_path / name).read_text())["circuits"][0]
        return {"cache": circuit["checks"]["means_cache"], "claim": circuit["claims"][0]}

    first, second = run("a.json"), run("b.json")
    assert (first["cache"], second["cache"]) == ("stored", "hit")
    assert first["claim"]["value"] == second["claim"]["value"]
    assert first["claim"]["per_prompt"] == second["claim"]["per_prompt"]
    assert run("c.json", "--seed", "4")["cache"] == "stored"  # other prompts: a miss
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_unknown_or_missing_device_is_error_e405_without_traceback(tmp_path: Path) -> None:
    import torch

    (tmp_path / "ok.circ").write_text(
        TASK + "circuit c on seqcirc-mini {\n  heads 0.0\n  expect faithfulness >= 0.5\n}\n"
    )
    devices = ["tpu9"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        proc = _run("test", "ok.circ", "--device", device, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "error[E405]" in proc.stderr and "help: " in proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
