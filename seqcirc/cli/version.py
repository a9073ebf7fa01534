"""`seqcirc version` and `seqcirc --version`."""

from __future__ import annotations

import typer

from seqcirc import __version__


def version() -> None:
    """Print seqcirc's version (also: seqcirc --version).

    Example:  seqcirc version
    """
    typer.echo(f"seqcirc {__version__}")


def print_version(value: bool) -> None:
    """The root option `--version`: print the version and stop before any command."""
    if value:
        version()
        raise typer.Exit()
