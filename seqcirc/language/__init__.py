"""The .circ front end: parse(text, path) -> Program (AST dataclasses with spans).

The parser (and lark) load on first use: the run-time stages import the vocabulary
(seqcirc.language.vocab) and should not pay for the grammar.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqcirc.language.parser import get_parser, parse

__all__ = ["get_parser", "parse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("seqcirc.language.parser"), name)
    raise AttributeError(f"module 'seqcirc.language' has no attribute {name!r}")
