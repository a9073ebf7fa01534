"""The .circ front end: parse(text, path) -> Program (AST dataclasses with spans)."""

from __future__ import annotations

from seqcirc.language.parser import get_parser, parse

__all__ = ["get_parser", "parse"]
