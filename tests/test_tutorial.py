"""docs/tutorial.md cannot drift: every command in it is rerun and its output compared.

scripts/tutorial.py does the work (it also rewrites the doc: `python scripts/tutorial.py`).
What may differ between the doc and a run, and nothing else (scripts/tutorial.py,
`normalise`): durations ("in 8.96s", a progress line's "in 0.41 s"), library and
interpreter versions, pytest's environment header lines (platform, plugins, cachedir,
hypothesis profile), the message pytest's short summary truncates to the terminal width,
the temporary folder (shown as /tmp/months), and whitespace, since rich rewraps a line
when a version string's length changes. Exit codes are compared exactly: `$ echo $?`
shows the one before it, and any other command must exit 0.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.mini_circuits import needs_bundled

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "seqcirc_tutorial_script", ROOT / "scripts" / "tutorial.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


tutorial = _load_script()


@needs_bundled
@pytest.mark.xdist_group("tutorial")  # one worker: the run is long and single-threaded
def test_every_command_of_the_tutorial_prints_what_the_doc_shows(tmp_path: Path) -> None:
    doc = tutorial.DOC.read_text()
    steps = tutorial.run(doc, tmp_path)
    commands = [c for s in steps for c in s.commands]
    assert len(commands) >= 12, "the tutorial lost its commands"
    found = tutorial.problems(steps)
    assert not found, "docs/tutorial.md drifted; rerun `python scripts/tutorial.py`\n\n" + (
        "\n\n".join(found)
    )
    # Commands that fail on purpose, with the codes the doc shows (README's exit codes).
    codes = {c.line: c.returncode for c in commands if c.returncode}
    assert set(codes.values()) == {1, 2}, codes
    # The shipped hypothesis is the one the doc ends with, and it is tidy.
    for name, text in tutorial.final_files(steps, tmp_path).items():
        assert tutorial.SHIPPED[name].read_text() == text, f"rerun scripts/tutorial.py ({name})"
    # A number the prose quotes comes from an output shown (so a refreshed output with
    # other numbers fails here until the prose is rewritten).
    outputs = "".join(c.actual for c in commands)
    for number in tutorial.prose_numbers(doc):
        assert number in outputs, f"the prose quotes {number}, which no output shows"


def _doc(*blocks: str) -> str:
    return "\n".join(["# t", *blocks])


def test_drift_and_unshown_exit_codes_are_caught(tmp_path: Path) -> None:
    py = "python -c \"import sys; print('a  b'); sys.exit(int(sys.argv[1]))\""
    doc = _doc(
        "```console",
        f"$ {py} 0",
        "a b",  # whitespace differences are allowed
        f"$ {py} 3",
        "a b",
        "$ echo $?",
        "3",
        f"$ {py} 2",
        "a c",
        "```",
        "",
    )
    steps = tutorial.run(doc, tmp_path)
    found = tutorial.problems(steps)
    assert len(found) == 2, found
    assert found[0].startswith(f"$ {py} 2: exit 2, but the doc shows no `echo $?`")
    assert found[1].startswith(f"$ {py} 2: output differs") and "+a  b" in found[1]
    # Rendering writes the real output back, and then nothing differs but the exit code.
    again = tutorial.run(tutorial.render(doc, steps), tmp_path)
    (only,) = tutorial.problems(again)
    assert "exit 2, but the doc shows no `echo $?`" in only


def test_files_and_edits_are_applied_in_order(tmp_path: Path) -> None:
    doc = _doc(
        "<!-- tutorial: file sub/x.circ -->",
        "```circ",
        "one",
        "two",
        "",
        "three",
        "```",
        "<!-- tutorial: edit sub/x.circ -->",
        "```diff",
        " two",
        "",
        "-three",
        "+THREE",
        "```",
        "```console",
        "$ cat sub/x.circ",
        "one",
        "two",
        "",
        "THREE",
        "```",
        "",
    )
    steps = tutorial.run(doc, tmp_path)
    assert [s.kind for s in steps] == ["file", "edit", "console"]
    assert tutorial.problems(steps) == []
    assert (tmp_path / "sub" / "x.circ").read_text() == "one\ntwo\n\nTHREE\n"
    with pytest.raises(ValueError, match="occur 0 times"):
        tutorial.apply_diff("a\n", "-b\n+c\n", "x.circ")


def test_normalise_forgives_durations_and_versions_only() -> None:
    shown = "== 3 passed in 8.96s ==\nnumpy 2.4.6, torch 2.13.0+cpu\nF(C)/F(M) = 0.926"
    later = "== 3 passed in 10.1s ==\nnumpy 2.5.0,\ntorch 2.14.1+cu128\nF(C)/F(M) = 0.926"
    assert tutorial.normalise(shown) == tutorial.normalise(later)
    assert tutorial.normalise(shown) != tutorial.normalise(shown.replace("0.926", "0.927"))
    assert tutorial.normalise("3 passed") != tutorial.normalise("2 passed")
    # pytest pads its summary line to the terminal width: the padding follows the digits
    # of the duration, and past a minute it adds "(0:01:05)"
    fast = "========== 3 passed in 8.21s ==========="
    slow = "========= 3 passed in 65.24s (0:01:05) =========="
    assert tutorial.normalise(fast) == tutorial.normalise(slow)
    assert tutorial.normalise(fast) != tutorial.normalise(fast.replace("3 passed", "3 failed"))


def test_prose_numbers_skip_code() -> None:
    doc = "Head 2.0 scores 0.34 (`0.99` is code), 95% of it.\n```console\n$ x\n0.5\n```\n"
    assert tutorial.prose_numbers(doc) == ["2.0", "0.34", "95%"]


def test_readme_links_the_tutorial() -> None:
    assert re.search(r"\]\(docs/tutorial\.md\)", (ROOT / "README.md").read_text())
