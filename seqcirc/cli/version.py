"""`seqcirc version`."""

from __future__ import annotations

import typer

from seqcirc import __version__


def version() -> None:
    """Print seqcirc's version.

    Example:  seqcirc version
    """
    typer.echo(f"seqcirc {__version__}")
