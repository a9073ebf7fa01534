"""Help written for the terminal: docstrings reflowed once, so typer's rich help never
keeps a source line break inside a sentence; flags shown without a `<bool>` metavar,
arguments by their metavar alone (`FILE...`, as click writes them, not `{FILE...}...`
with a `<list[str]>` type).

Every command and group of the app is built with these classes (cli/__init__.py).
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup


def reflow(doc: str | None) -> str | None:
    """A docstring as help text: each prose paragraph joined into one line (the terminal
    wraps it at its own width); a paragraph of commands (starting "Example" or with
    indented lines) keeps its lines, which rich markup mode prints as they are."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        verbatim = para.startswith(("Example", "\b")) or any(ln.startswith(" ") for ln in lines)
        out.append(para if verbatim else " ".join(ln.strip() for ln in lines))
    return "\n\n".join(out)


def _quiet_flags(params: list[Any]) -> list[Any]:
    """A flag takes no value: show no type for it (typer would print `<bool>`); an
    argument's metavar says what it is: no type beside it either."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and param.metavar is not None:
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 (a method, per object)
    return params


def _no_type(ctx: Any) -> None:
    return None


def _usage(command: Any, ctx: Any) -> list[str]:
    """The usage line's pieces: [OPTIONS], then each argument as its metavar
    (optional ones in brackets)."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.display_name_raw
            pieces.append(name if param.required else f"[{name}]")
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


class Command(TyperCommand):
    """A seqcirc command: reflowed help, no metavar on flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        super().__init__(*args, **kwargs)

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet_flags(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage(self, ctx)


class Group(TyperGroup):
    """A seqcirc command group (the app, `seqcirc data`): as Command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        super().__init__(*args, **kwargs)

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet_flags(super().get_params(ctx))
