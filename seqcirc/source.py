"""Source files, spans, and the caret snippet renderer used by every diagnostic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A range in a source file; lines and columns are 1-based, end is inclusive."""

    path: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


def caret_snippet(text: str, span: Span) -> str:
    """The source line of `span` with a caret under the spanned columns.

    Returns "" when the line does not exist (e.g. an empty file).
    """
    lines = text.splitlines()
    if not 1 <= span.line <= len(lines):
        return ""
    line = lines[span.line - 1]
    start = max(span.col, 1)
    if span.end_line == span.line and span.end_col is not None and span.end_col >= start:
        width = span.end_col - start + 1
    else:
        width = 1
    gutter = f"{span.line:>4} | "
    pad = " " * (len(gutter) - 2) + "| "
    return f"{gutter}{line}\n{pad}{' ' * (start - 1)}{'^' * width}"
