"""The package stays cheap to import and its console script answers quickly."""

import json
import subprocess
import sys
import time


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_import_does_not_import_torch():
    out = _run(
        "import sys, seqcirc; print(json.dumps(sorted(sys.modules)))".replace(
            "import sys", "import sys, json"
        )
    )
    modules = set(json.loads(out))
    assert "seqcirc" in modules
    for heavy in ("torch", "transformer_lens", "transformers", "lark", "matplotlib"):
        assert heavy not in modules, f"import seqcirc pulled in {heavy}"


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "seqcirc", "--help"], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "version" in proc.stdout
    # A cold interpreter plus typer/rich takes well under a second; torch alone takes ~2 s.
    assert elapsed < 3.0, f"seqcirc --help took {elapsed:.2f}s"


def test_help_does_not_import_torch():
    out = _run(
        "import sys, json\n"
        "from seqcirc import cli\n"
        "try:\n    cli.app(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(json.loads(out.splitlines()[-1]))
    assert "torch" not in modules
