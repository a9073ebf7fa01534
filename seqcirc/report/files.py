"""Writing a report file: parent folders made, failures raised as SeqcircError."""

from __future__ import annotations

from pathlib import Path

from seqcirc.errors import InputError


def write_text(path: str | Path, text: str, what: str) -> Path:
    """Write `text` to `path` (UTF-8); an unwritable path is the user's input error."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(
            f"cannot write the {what} to {out}: {err.strerror or err}",
            code="E901",
            hint="choose a path in a folder you can write to",
        ) from err
    return out
