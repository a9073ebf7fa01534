"""Run the `seqcirc` command in the test's own process, as the console script would.

A subprocess pays ~5 s of imports (torch, transformers, TransformerLens) and a model
load on every call; in process they are paid once per worker. The entry point is the
console script's own (`seqcirc.cli.main`), so error rendering and exit codes are the
same; stdout and stderr are captured apart, the working folder and environment are set
for the call and restored, and warnings are shown once per call as in a fresh process.
Tests about the process itself (the console script, tracebacks of an interpreter, a
disk cache reused across runs) keep a real subprocess (tests/test_entry_*.py and a few
others).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

ENV = {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def seqcirc(
    *args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`seqcirc ARGS` in process: (returncode, stdout, stderr) like subprocess.run."""
    from seqcirc.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_show = warnings.showwarning  # main() installs its own one-line form
    code: int
    try:
        os.environ.update({**ENV, **(env or {})})
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["seqcirc", *args]
        with (
            warnings.catch_warnings(),  # new filters: each warning shows again, once
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            warnings.simplefilter("default")
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else int(done.code is not None)
    finally:
        warnings.showwarning = saved_show
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["seqcirc", *args], code, out.getvalue(), err.getvalue())
