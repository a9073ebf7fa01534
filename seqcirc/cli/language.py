"""The .circ language commands: check, plan, fmt (lark is imported inside the commands)."""

from __future__ import annotations

import typer

from seqcirc.cli import options
from seqcirc.errors import SeqcircError


def check(
    files: list[str] = typer.Argument(..., help=".circ files to check", metavar="FILE..."),  # noqa: B008
) -> None:
    """Parse and check .circ files against their models' shapes (no weights loaded).

    Prints every problem as `path:line:col: error[CODE]: message`; exit 0 clean, 2 errors.

    Example:  seqcirc check hypotheses/months.circ
    """
    from seqcirc.checks import check_file
    from seqcirc.checks.diagnostics import render_diagnostics

    failed = False
    for path in files:
        try:
            module = check_file(path)
        except SeqcircError as err:
            failed = True
            typer.echo(err.render(), err=True)
            continue
        if module.warnings:
            warnings = render_diagnostics(tuple(module.warnings), path, module.program.text)
            typer.echo(warnings, err=True)
        typer.echo(f"{path}: ok")
    if failed:
        raise SystemExit(2)


def plan(
    file: str = typer.Argument(..., help="a .circ file", metavar="FILE"),
    output: str | None = options.output("the plan JSON"),
) -> None:
    """Print the intervention plan a .circ file compiles to, as JSON.

    Example:  seqcirc plan hypotheses/months.circ
    """
    from seqcirc.plan import plan_to_json
    from seqcirc.plan.compile import compile_file
    from seqcirc.report.files import is_stdout, write_text

    options.check_outputs({"output": "plan"}, output=output)
    text = plan_to_json(compile_file(file)) + "\n"
    if output is None or is_stdout(output):
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {write_text(output, text, 'plan')}", err=True)


def fmt(
    files: list[str] = typer.Argument(..., help=".circ files", metavar="FILE..."),  # noqa: B008
    write: bool = typer.Option(False, "--write", "-w", help="rewrite the files in place"),
    check_only: bool = typer.Option(
        False, "--check", help="exit 1 if a file is not in the canonical layout"
    ),
) -> None:
    """Print .circ files in the canonical layout (comments kept).

    Example:  seqcirc fmt --write hypotheses/*.circ
    """
    from pathlib import Path

    from seqcirc.errors import InputError
    from seqcirc.language.fmt import format_text

    changed = False
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read {path}: {err}", code="E110") from None
        formatted = format_text(text, path)
        if check_only:
            if formatted != text:
                changed = True
                typer.echo(f"{path}: would reformat")
        elif write:
            if formatted != text:
                Path(path).write_text(formatted, encoding="utf-8")
        else:
            typer.echo(formatted, nl=False)
    if changed:
        raise SystemExit(1)
