"""The `seqcirc` command. Commands are thin: parse options, call the library, print.
Heavy imports (torch, transformer_lens) happen inside commands, never at import time."""

from __future__ import annotations

import sys

import typer

from seqcirc import __version__
from seqcirc.errors import EXIT_RUNTIME, SeqcircError

app = typer.Typer(
    name="seqcirc",
    help=(
        "Test circuit hypotheses about transformer language models.\n\n"
        "Example:  seqcirc check hypotheses/months.circ"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Test circuit hypotheses about transformer language models."""


@app.command()
def version() -> None:
    """Print seqcirc's version.

    Example:  seqcirc version
    """
    typer.echo(f"seqcirc {__version__}")


def main() -> None:
    """Console entry point: every SeqcircError becomes its message and exit code."""
    try:
        app(standalone_mode=False)
    except SeqcircError as err:
        typer.echo(err.render(), err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # click's usage errors and the like
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        typer.echo(f"error: internal failure: {type(err).__name__}: {err}", err=True)
        typer.echo("help: this is a bug in seqcirc; please report it with the command you ran", err=True)
        sys.exit(EXIT_RUNTIME)
