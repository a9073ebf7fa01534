"""The shared-circuit analysis: overlap by hand, the cross-task matrix against the
evaluator's own cross-task plans (`expect A on T`), the heatmap, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqcirc.errors import InputError
from seqcirc.plan import Node
from seqcirc.usecases.compare import iou, overlap
from tests.cli_in_process import seqcirc

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
    # library-style files (LIBRARY, below): --on picks their seqcirc-mini sections, and
    # --rename the second `numerals`, which is the months circuit
    _library(tmp_path)
    run = seqcirc(
        "compare", "a.circ", "b.circ", "--on", "seqcirc-mini", "--rename",
        "b.circ:numerals=months", "--json", "c.json", "--plot", "c.png", "-o", "c.md",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["circuits"] == ["numerals", "months"] and data["shared"] == ["0.0", "mlp0"]
    # -o: the tables go to the file instead of stdout
    assert run.stdout == "" and "| circuit | numerals | months |" in (tmp_path / "c.md").read_text()
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_of_different_models_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.circ").write_text(CIRCS["num.circ"])
    (tmp_path / "b.circ").write_text(CIRCS["mon.circ"].replace("seqcirc-mini", "gpt2-small"))
    run = seqcirc("compare", "a.circ", "b.circ", cwd=tmp_path)
    assert run.returncode == 2 and "different models" in run.stderr
    assert "Traceback" not in run.stderr


LIBRARY = {  # two library-style files: a section per model, and one circuit name shared
    "a.circ": CIRCS["num.circ"]
    + "task numerals_gpt2 = sequence(numerals, prompts=12)\n"
    + "circuit numerals_gpt2 on gpt2-small {\n  task numerals_gpt2\n  heads 9.1\n}\n",
    "b.circ": CIRCS["mon.circ"].replace("circuit months", "circuit numerals")
    + "expect numerals on months: faithfulness(bound=point) >= -1\n",  # not compared
}


def _library(tmp_path: Path) -> list[str]:
    for name, text in LIBRARY.items():
        (tmp_path / name).write_text(text)
    return [str(tmp_path / name) for name in LIBRARY]


def _error(files: list[str], **kw: object) -> InputError:
    from seqcirc.usecases.compare import compare

    with pytest.raises(InputError) as err:
        compare(files, **kw)  # type: ignore[arg-type]
    return err.value


def test_mixed_models_say_which_and_point_to_on(tmp_path: Path) -> None:
    a, _ = _library(tmp_path)
    err = _error([a])
    assert err.code == "E351"
    assert "different models: gpt2-small (numerals_gpt2), seqcirc-mini (numerals)" in err.message
    assert "--on MODEL" in (err.hint or "") and "--model MODEL" in (err.hint or "")


def test_on_keeps_each_files_circuits_on_that_model(tmp_path: Path) -> None:
    from seqcirc.usecases.compare_inputs import load_circuits, parse_rename

    a, b = _library(tmp_path)
    entries = load_circuits([a], on="seqcirc-mini")
    assert [e.name for e in entries] == ["numerals"]
    assert [e.name for e in load_circuits([b])] == ["numerals"]  # not "numerals on months"
    # a file with no circuit on the model: E404, as `seqcirc test --on`
    with pytest.raises(InputError) as err:
        load_circuits([a, b], on="gpt2-small")
    assert err.value.code == "E404" and "seqcirc-mini" in (err.value.hint or "")
    # both files name a circuit `numerals`: E350 says where, and the way out
    with pytest.raises(InputError) as err:
        load_circuits([a, b], on="seqcirc-mini")
    assert err.value.code == "E350"
    assert f"circuit name numerals appears more than once ({a}, {b})" in err.value.message
    assert f"--rename {b}:numerals=numerals_2" in (err.value.hint or "")
    renamed = load_circuits([a, b], on="seqcirc-mini", renames=[parse_rename("b.circ:numerals=m")])
    assert [(e.name, e.circuit.name, Path(e.file).name) for e in renamed] == [
        ("numerals", "numerals", "a.circ"), ("m", "m", "b.circ"),
    ]  # fmt: skip
    assert renamed[1].circuit.nodes == load_circuits([b])[0].circuit.nodes


@pytest.mark.parametrize(
    ("rename", "text"),
    [
        ("numerals", "is not [FILE:]OLD=NEW"),
        ("b.circ:numerals=9x", "is not [FILE:]OLD=NEW"),
        ("numerals=n2", "circuit numerals is in 2 files"),
        ("c.circ:numerals=n2", "no file c.circ was given"),
        ("a.circ:months=n2", "no circuit named months in a.circ"),
    ],
)
def test_bad_renames_are_e352_with_the_fix(tmp_path: Path, rename: str, text: str) -> None:
    from seqcirc.usecases.compare_inputs import load_circuits, parse_rename

    a, b = _library(tmp_path)
    with pytest.raises(InputError) as err:
        load_circuits([a, b], on="seqcirc-mini", renames=[parse_rename(rename)])
    assert err.value.code == "E352" and text in err.value.message
    if "2 files" in text:
        assert err.value.hint == f"say which: --rename {b}:numerals=n2"


def test_a_file_given_twice_is_e350(tmp_path: Path) -> None:
    from seqcirc.usecases.compare_inputs import load_circuits

    a, _ = _library(tmp_path)
    with pytest.raises(InputError) as err:
        load_circuits([a, a])
    assert err.value.code == "E350" and "given twice" in err.value.message
