"""The shared-circuit analysis: overlap by hand, the cross-task matrix against the
evaluator's own cross-task plans (`expect A on T`), the heatmap, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqcirc.plan import Node
from seqcirc.usecases.compare import iou, overlap

SEQCIRC = str(Path(sys.executable).parent / "seqcirc")
BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"
needs_mini = pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model is not built")


def test_overlap_by_hand() -> None:
    a = [Node(0, 1), Node(0, None), Node(1, 0)]
    b = [Node(0, 1), Node(0, None), Node(2, 1), Node(3, None)]
    c = [Node(0, 1), Node(3, None)]
    assert iou(a, b) == pytest.approx(2 / 5)
    assert iou(a, c) == pytest.approx(1 / 4)
    assert iou([], []) == 1.0
    ov = overlap(["a", "b", "c"], [a, b, c])
    assert ov.sizes == (3, 4, 2)
    assert ov.intersection.tolist() == [[3, 2, 1], [2, 4, 2], [1, 2, 2]]
    assert np.allclose(ov.iou, [[1, 2 / 5, 1 / 4], [2 / 5, 1, 2 / 4], [1 / 4, 2 / 4, 1]])
    assert ov.shared == (Node(0, 1),)


CIRCS = {
    "num.circ": """seed 0
task numerals = sequence(numerals, prompts=12, seed=1)
circuit numerals on seqcirc-mini {
  heads 0.0, 1.1
  mlp 0..1
}
""",
    "mon.circ": """seed 0
task months = sequence(months, prompts=12, seed=2)
circuit months on seqcirc-mini {
  heads 0.0, 2.1
  mlp 0, 2
}
""",
}
# The same cross-task question asked through the language and the evaluator.
CROSS = """import "num.circ"
import "mon.circ"
circuit shared on seqcirc-mini = numerals & months
expect numerals on months: faithfulness(bound=point) >= -1
expect months on numerals: faithfulness(bound=point) >= -1
expect shared on numerals: faithfulness(bound=point) >= -1
expect shared on months: faithfulness(bound=point) >= -1
"""


@needs_mini
def test_cross_task_matrix_matches_the_evaluator(tmp_path: Path) -> None:
    from seqcirc.usecases.compare import compare, plot_comparison
    from seqcirc.usecases.session import Session

    for name, text in CIRCS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "cross.circ").write_text(CROSS)
    files = [str(tmp_path / "num.circ"), str(tmp_path / "mon.circ")]
    cmp = compare(files)
    assert cmp.rows == ("numerals", "months", "shared") and cmp.columns == ("numerals", "months")
    assert cmp.overlap.shared == (Node(0, 0), Node(0, None))
    assert cmp.overlap.iou[0, 1] == pytest.approx(2 / 6)
    own = Session().evaluate_file(files[0]).circuits + Session().evaluate_file(files[1]).circuits
    cross = Session().evaluate_file(str(tmp_path / "cross.circ")).circuits
    value = {c.name: c.f_circuit / c.f_model for c in (*own, *cross)}
    want = np.array([
        [value["numerals"], value["numerals on months"]],
        [value["months on numerals"], value["months"]],
        [value["shared on numerals"], value["shared on months"]],
    ])  # fmt: skip
    assert np.allclose(cmp.performance, want, rtol=1e-6, atol=1e-9)
    table = cmp.table()
    assert f"| numerals | {100 * want[0, 0]:.1f} | {100 * want[0, 1]:.1f} |" in table
    png = plot_comparison(cmp, tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@needs_mini
def test_cli_compare_writes_table_json_and_plot(tmp_path: Path) -> None:
    for name, text in CIRCS.items():
        (tmp_path / name).write_text(text)
    run = subprocess.run(
        [SEQCIRC, "compare", "num.circ", "mon.circ", "--json", "c.json", "--plot", "c.png",
         "-o", "c.md"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["circuits"] == ["numerals", "months"] and data["shared"] == ["0.0", "mlp0"]
    assert (tmp_path / "c.md").read_text() == run.stdout
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_of_different_models_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.circ").write_text(CIRCS["num.circ"])
    (tmp_path / "b.circ").write_text(CIRCS["mon.circ"].replace("seqcirc-mini", "gpt2-small"))
    run = subprocess.run([SEQCIRC, "compare", "a.circ", "b.circ"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 2 and "different models" in run.stderr
    assert "Traceback" not in run.stderr
