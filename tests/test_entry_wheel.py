"""The built wheel carries the grammar and the bundled model, and an installed seqcirc
finds its grammar without the repository."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_grammar_and_bundled_model_and_checks_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("seqcirc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "seqcirc/language/circ.lark" in names
    for part in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"):
        assert f"seqcirc/bundled/seqcirc-mini/{part}" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "seqcirc = seqcirc.cli:main" in text and "[pytest11]" in text

    # Run the unpacked wheel from a folder with no repository around it.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "hypotheses" / "months.circ", work / "months.circ")
    # its gpt2-small section reads the authors' prompts, shipped beside it
    shutil.copytree(ROOT / "hypotheses" / "data", work / "data")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import seqcirc, seqcirc.cli;"
        "assert seqcirc.__file__.startswith(sys.argv[1]), seqcirc.__file__;"
        "sys.argv = ['seqcirc', 'check', 'months.circ']; seqcirc.cli.main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site)], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
