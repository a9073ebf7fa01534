"""One exception tree for seqcirc. Every error a user can cause carries a code, a
message, optionally a source span and a hint, and an exit code for the CLI."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from seqcirc.source import Span, caret_snippet

# Exit codes of the `seqcirc` command (documented in README).
EXIT_OK = 0
EXIT_CLAIM_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 3


def did_you_mean(word: str, choices: Iterable[str], *, quote: bool = False) -> str:
    """A hint prefix naming the closest of `choices` ("did you mean months? "), or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    if not close:
        return ""
    return f"did you mean {close[0]!r}? " if quote else f"did you mean {close[0]}? "


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a user's input: `path:line:col: error[CODE]: message`."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"

    def render(self, source_text: str | None = None) -> str:
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{self.severity}[{self.code}]: {self.message}"]
        if self.span is not None and source_text is not None:
            snippet = caret_snippet(source_text, self.span)
            if snippet:
                out.append(snippet)
        if self.hint:
            out.append(f"help: {self.hint}")
        return "\n".join(out)


class SeqcircError(Exception):
    """Base of every error seqcirc raises on purpose; the CLI prints it, never a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        code: str = "E000",
        span: Span | None = None,
        hint: str | None = None,
        source_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.span = span
        self.hint = hint
        self.source_text = source_text

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return (Diagnostic(self.code, self.message, self.span, self.hint),)

    def render(self) -> str:
        return "\n\n".join(d.render(self.source_text) for d in self.diagnostics)


class InputError(SeqcircError):
    """The user's input (a .circ file, a prompt file, an option) is wrong: exit 2."""

    exit_code = EXIT_BAD_INPUT


class DiagnosticsError(InputError):
    """Several problems found in one pass over a file, reported together."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source_text: str | None = None) -> None:
        diags = tuple(diagnostics)
        if not diags:
            raise ValueError("DiagnosticsError needs at least one diagnostic")
        first = diags[0]
        super().__init__(
            first.message,
            code=first.code,
            span=first.span,
            hint=first.hint,
            source_text=source_text,
        )
        self._diagnostics = diags

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self._diagnostics


class ModelUnavailableError(SeqcircError):
    """A model cannot be loaded here (offline, no cache, typo, unsafe weights): exit 3."""

    exit_code = EXIT_RUNTIME


class EvaluationError(SeqcircError):
    """A run failed (e.g. an intervention that changes nothing): exit 3."""

    exit_code = EXIT_RUNTIME


class SeqcircWarning(UserWarning):
    """A problem seqcirc worked around (e.g. a damaged cache file, recomputed); `code` is
    its W-code (docs/errors.md). The CLI prints it as `warning[CODE]: message`."""

    code = "W000"
