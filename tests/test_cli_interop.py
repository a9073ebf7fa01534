"""`seqcirc export`, `import` and `draw` through the real console script, and an imported
circuit evaluated as written: a node circuit and the edges its graph JSON lists (written
back as edge lines) score the same on the bundled model, as EAP-IG's node level says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mini_circuits import needs_bundled

from tests.cli_in_process import seqcirc

TASK = "seed 3\ntask months = sequence(months, template=all, members=4, prompts=24)\n"
NODE = (
    "circuit n on seqcirc-mini {\n  ablate nodes ABL\n  heads 0.0, 1.0, 2.1, 3.0\n  mlp 0..2\n}\n"
)
EXPECT = "  expect faithfulness(bound=point) >= -1\n}\n"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args, cwd=cwd)  # in process: the imports and the model load once


def test_export_import_draw_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "n.circ").write_text(TASK + NODE.replace("ABL", "resample"), encoding="utf-8")
    out = _run("export", "n.circ", "-o", "g.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "n on seqcirc-mini (node circuit):" in out.stdout and "of 175 edges" in out.stdout
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["cfg"] == {"n_layers": 4, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 128}
    out = _run(
        "import",
        "g.json",
        "--model",
        "seqcirc-mini",
        "--task",
        "n.circ:months",
        "--edges",
        "--name",
        "e",
        "-o",
        "e.circ",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "e.circ").read_text()
    assert text.startswith("# Imported by: seqcirc import g.json --model seqcirc-mini")
    assert 'import "n.circ"' in text and "circuit e on seqcirc-mini" in text
    out = _run("draw", "e.circ", "-o", "e.svg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "e.svg").read_text().count('id="edge ') == text.count("  edge ")
    bad = _run("import", "g.json", "--model", "gpt2-small", "--task", "months", cwd=tmp_path)
    assert bad.returncode == 2 and "error[E613]" in bad.stderr and "Traceback" not in bad.stderr


@needs_bundled
def test_a_node_circuit_and_its_exported_edges_score_alike(tmp_path: Path) -> None:
    """EAP-IG's node level keeps every edge among a circuit's nodes; seqcirc's node
    ablation means the same. Both ablation values: resample (EAP-IG's patching) and the
    per-position mean. (The import carries the task file's `seed`: prompts depend on it.)"""
    import seqcirc
    from seqcirc.usecases.import_graph import import_graph
    from seqcirc.usecases.interop import export_circuit

    for abl in ("resample", "mean"):
        node = tmp_path / f"n_{abl}.circ"
        node.write_text(TASK + NODE.replace("ABL", abl).replace("}\n", EXPECT))
        (tmp_path / "g.json").write_text(json.dumps(export_circuit(str(node)).data))
        edges = import_graph(
            str(tmp_path / "g.json"),
            model="seqcirc-mini",
            task=f"{node}:months",
            name="e",
            ablation=abl,
            as_edges=True,
            output=str(tmp_path / "e.circ"),
        )
        # one file, both circuits: the imported section as written, then evaluated
        section = edges.text[edges.text.index("circuit e") :].replace("}\n", EXPECT)
        both = tmp_path / f"both_{abl}.circ"
        both.write_text(node.read_text() + section)
        result = seqcirc.evaluate(str(both))
        n, e = result["n"], result["e"]
        # 68 = into 0.0: 3, mlp0: 2, 1.0: 9, mlp1: 4, 2.1: 15, mlp2: 6, 3.0: 21, logits: 8
        assert e.granularity == "edge" and len(e.edges) == len(edges.selection.edges) == 68
        assert abs(n.f_circuit - e.f_circuit) <= 1e-5 * max(1.0, abs(n.f_circuit)), abl
        assert abs(n.f_circuit - n.f_empty) > 0.1  # the circuit does something to compare
