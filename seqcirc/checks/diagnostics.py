"""How the checks word and show problems: `did you mean` hints, and the error that
carries every diagnostic of one file (those in an imported file show its lines)."""

from __future__ import annotations

import difflib
from pathlib import Path

from seqcirc.errors import Diagnostic, DiagnosticsError


def suggest(name: str, candidates: object) -> str | None:
    """`did you mean ...?` from difflib, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)  # type: ignore[call-overload]
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


class CheckError(DiagnosticsError):
    """Diagnostics of one file; those pointing into an imported file show its lines."""

    def __init__(self, diagnostics: object, source_text: str, path: str) -> None:
        super().__init__(diagnostics, source_text)  # type: ignore[arg-type]
        self.path = path

    def render(self) -> str:
        return render_diagnostics(self.diagnostics, self.path, self.source_text or "")


def render_diagnostics(diags: tuple[Diagnostic, ...], path: str, text: str) -> str:
    out = []
    for d in diags:
        own = d.span is None or d.span.path == path
        out.append(d.render(text if own else _read_or_none(d.span.path if d.span else "")))
    return "\n\n".join(out)


def _read_or_none(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
