"""The options every command shares, written once so they read alike everywhere:

- `--json PATH`, `--markdown PATH`, `--html PATH` (and `--junit PATH`): write that report
  to PATH; `-` writes it to standard output, and what the command would print there
  goes to standard error instead.
- `-o/--output PATH`: the command's main output (what it prints on standard output:
  plan JSON, role table, discovered .circ file, comparison tables, exported JSONL)
  written to PATH instead.
- `--device`, `--seed`, `--prompts` wherever a model runs; `-q` silences progress.
"""

from __future__ import annotations

from typing import Any

import typer

from seqcirc.errors import InputError

DEVICE_HELP = "torch device: auto (a GPU if present, else cpu), cpu, cuda, cuda:1, mps"


def device() -> Any:
    return typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP)


def seed(default: int | None, help: str) -> Any:
    return typer.Option(default, "--seed", metavar="N", help=help)


def prompts(default: int | None, help: str) -> Any:
    return typer.Option(default, "--prompts", metavar="N", help=help)


def quiet() -> Any:
    """`-q/--quiet`: no progress on stderr (seqcirc.report.progress)."""
    return typer.Option(False, "--quiet", "-q", help="no progress on stderr")


def report(flag: str, what: str) -> Any:
    """`--json PATH` and the like: write `what` to PATH, `-` for stdout."""
    return typer.Option(None, flag, metavar="PATH", help=f"write {what} to PATH (- for stdout)")


def output(what: str, *aliases: str) -> Any:
    """`-o/--output PATH`: the command's main output to PATH instead of stdout."""
    return typer.Option(
        None, "--output", *aliases, "-o", metavar="PATH",
        help=f"write {what} to PATH instead of stdout",
    )  # fmt: skip


def stdout_taken(**paths: str | None) -> bool:
    """True when one of the outputs (option name -> path) is `-`, standard output; two
    outputs cannot share it (E904), and a path that looks like an option is refused."""
    from seqcirc.report.files import is_stdout

    for name, path in paths.items():
        if path is not None and path.startswith("-") and not is_stdout(path):
            # `roles --json --plot x.png` would otherwise write the JSON to "--plot"
            raise typer.BadParameter(
                f"takes a PATH, not {path!r} (- for stdout)", param_hint=_flag(name)
            )
    taken = [name for name, path in paths.items() if is_stdout(path)]
    if len(taken) > 1:
        flags = " and ".join(_flag(name) for name in taken)
        raise InputError(
            f"{flags} both write to standard output (-)",
            code="E904",
            hint="give all but one of them a file path",
        )
    return bool(taken)


def _flag(name: str) -> str:
    return "-o" if name == "output" else "--" + name.replace("_", "-")


def check_outputs(what: dict[str, str], **paths: str | None) -> bool:
    """stdout_taken, then every file path checked writable before any work (E901);
    `what` names each output for the error message. True when one goes to stdout."""
    from seqcirc.report.files import check_writable, is_stdout

    to_stdout = stdout_taken(**paths)
    for name, path in paths.items():
        if path is not None and not is_stdout(path):
            check_writable(path, what.get(name, "output"))
    return to_stdout
