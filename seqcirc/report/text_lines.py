"""Lines for the terminal that fit its width: prose wrapped only between words with a
hanging indent, rich renderables printed without the padding rich leaves at the end of
a line, and the stacked layout of claims (one block per claim, every value labelled)
that the terminal report uses where its table does not fit, and `--format plain` always.
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

from seqcirc.report import view
from seqcirc.results import ClaimResult

_NBSP = "\u00a0"  # textwrap breaks only at ASCII whitespace
VERDICT_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skipped": "yellow"}


def wrap(text: str, width: int | None, indent: int = 0, hang: int = 2) -> list[str]:
    """`text` in lines of at most `width` cells, broken only at spaces (a word longer
    than the width stays whole); continuation lines indented by `hang` more; None: one line."""
    first = " " * indent
    if width is None:
        return [first + text]
    return textwrap.wrap(
        text, width=max(width, indent + hang + 1), initial_indent=first,
        subsequent_indent=" " * (indent + hang), break_long_words=False,
        break_on_hyphens=False,
    ) or [first]  # fmt: skip


def emit(
    console: Console, text: str, *, plain: bool, style: str | None = None, indent: int = 0,
    hang: int = 2,
) -> None:  # fmt: skip
    """Print `text` wrapped to the console's width (plain: unwrapped, unstyled)."""
    for line in wrap(text, None if plain else console.width, indent, hang):
        console.print(
            line, style=None if plain else style, highlight=False, markup=False, soft_wrap=True
        )


def print_trimmed(console: Console, renderable: Any) -> None:
    """Print a renderable (a table) line by line without trailing spaces."""
    for line in console.render_lines(renderable, console.options, pad=False):
        segments = list(line)
        while segments and not segments[-1].control and not segments[-1].text.strip():
            segments.pop()
        if segments:
            last = segments[-1]
            segments[-1] = Segment(last.text.rstrip(), last.style, last.control)
        text = Text()
        for seg in segments:
            text.append(seg.text, seg.style)
        console.print(text, soft_wrap=True)


def claim_block(claim: ClaimResult) -> tuple[str, list[str]]:
    """A claim as its head line ("FAIL  expect ... (line 21)") and the labelled values
    that the table shows in columns: measured, interval, threshold, p, p (Holm)."""
    word = view.VERDICT_WORDS[claim.verdict]
    head = f"{word:<5} {claim.text or claim.id}"
    if claim.line:
        head += f" (line {claim.line})"
    values = [f"measured {view.measured(claim)}"]
    if view.interval(claim) != view.MISSING:
        values.append(f"interval {view.interval(claim)}")
    values.append(f"threshold {view.threshold(claim)}")
    if view.p_values(claim) is not None:
        values.append(f"p {view.p_text(claim)}")
        if view.p_text(claim, adjusted=True) != view.MISSING:
            values.append(f"p (Holm) {view.p_text(claim, adjusted=True)}")
    return head, values


def _block_lines(claim: ClaimResult, width: int | None) -> tuple[list[str], list[str]]:
    """A claim's head lines and value lines, wrapped to `width`."""
    head, values = claim_block(claim)
    # each "label value" stays on one line where it can: glued with no-break spaces
    room = None if width is None else width - 8
    glued = [v.replace(" ", _NBSP) if room is None or len(v) <= room else v for v in values]
    body = wrap("; ".join(glued), width, indent=6, hang=2)
    return wrap(head, width, hang=6), [line.replace(_NBSP, " ") for line in body]


def stacked_height(claims: tuple[ClaimResult, ...], width: int) -> int:
    """Lines print_stacked takes at `width`."""
    return sum(len(a) + len(b) for a, b in (_block_lines(c, width) for c in claims))


def print_stacked(console: Console, claims: tuple[ClaimResult, ...], *, plain: bool) -> None:
    """One block per claim: the verdict and claim, then its values on indented lines."""
    for claim in claims:
        head, body = _block_lines(claim, None if plain else console.width)
        for i, line in enumerate(head):
            text = Text(line)
            if i == 0 and not plain:
                verdict = view.VERDICT_WORDS[claim.verdict]
                text.stylize(VERDICT_STYLES[claim.verdict], 0, len(verdict))
            console.print(text, highlight=False, soft_wrap=True)
        for line in body:
            console.print(line, highlight=False, markup=False, soft_wrap=True)
