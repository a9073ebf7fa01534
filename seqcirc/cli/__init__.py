"""The `seqcirc` command: the typer app, assembled from one module per command group, and
the console entry point. Commands are thin: parse options, call a use case, print. Heavy
imports (torch, transformer_lens, lark) happen inside commands, never at import time."""

from __future__ import annotations

import sys
import warnings
from typing import TextIO

import typer

from seqcirc.cli import (
    attention,
    attribute,
    compare,
    data,
    discover,
    interop,
    language,
    lens,
    roles,
    test,
    version,
)
from seqcirc.cli.help import Command, Group
from seqcirc.errors import EXIT_RUNTIME, SeqcircError, SeqcircWarning

app = typer.Typer(
    name="seqcirc",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    _version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=version.print_version,
        help="print seqcirc's version and exit",
    ),
) -> None:
    """Test circuit hypotheses about transformer language models.

    Example:  seqcirc check hypotheses/months.circ
    """


# Registration order is the order `seqcirc --help` lists the commands in.
app.command(cls=Command)(version.version)
app.command(cls=Command)(roles.roles)
app.command(cls=Command)(lens.lens)
app.command(cls=Command)(attention.attention)
app.command(cls=Command)(language.check)
app.command(cls=Command)(language.plan)
app.command(cls=Command)(language.fmt)
app.command("test", cls=Command)(test.test_cmd)
app.command(cls=Command)(discover.discover)
app.command(cls=Command)(attribute.attribute)
app.command(cls=Command)(compare.compare)
app.command(cls=Command)(interop.export)
app.command("import", cls=Command)(interop.import_cmd)
app.command(cls=Command)(interop.draw)
app.add_typer(data.data_app, name="data")


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """seqcirc's own warnings as one line on stderr, `warning[CODE]: message` like
    `seqcirc check` prints its W-codes; other warnings as Python prints them."""
    if issubclass(category, SeqcircWarning):
        typer.echo(f"warning[{category.code}]: {message}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """Console entry point: every SeqcircError becomes its message and exit code."""
    warnings.showwarning = _show_warning
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of exiting.
        code = app(standalone_mode=False)
    except SeqcircError as err:
        typer.echo(err.render(), err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # click's usage errors and the like
        # click's exception classes, from click or from typer's vendored copy (typer._click)
        mro = type(err).__mro__
        kinds = {t.__name__ for t in mro if t.__module__.split(".")[0] in ("click", "typer")}
        if "Exit" in kinds:
            sys.exit(getattr(err, "exit_code", 0))
        if "ClickException" in kinds:
            err.show()  # type: ignore[attr-defined]
            sys.exit(2)
        if "Abort" in kinds:
            sys.exit(130)
        typer.echo(f"error: internal failure: {type(err).__name__}: {err}", err=True)
        typer.echo(
            "help: this is a bug in seqcirc; please report it with the command you ran", err=True
        )
        sys.exit(EXIT_RUNTIME)
    sys.exit(code if isinstance(code, int) else 0)
