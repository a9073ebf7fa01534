"""Writing an output file (every report, `seqcirc data export -o`): paths checked before
any work starts, writes atomic, every failure an InputError E901 naming the path.

A regular file is written to a temporary file in its own folder and moved over the
target with os.replace, so a failed write (full disk, size limit) leaves the old file or
none, never a truncated one. A target that exists and is not a regular file (/dev/null,
/dev/stdout, a named pipe) is written in place: replacing it would replace the device.
The path `-` means standard output, as every command's `--json/--markdown/--html/-o`.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from seqcirc.errors import InputError

HINT = "choose a path in a folder you can write to"
STDOUT = "-"  # the path that means standard output


def is_stdout(path: str | Path | None) -> bool:
    """True for the path `-` (standard output)."""
    return path is not None and str(path) == STDOUT


def _error(what: str, out: Path, reason: str) -> InputError:
    return InputError(f"cannot write the {what} to {out}: {reason}", code="E901", hint=HINT)


def check_writable(path: str | Path, what: str) -> Path:
    """Raise E901 now if `path` cannot be written later: it is a folder, its folder is a
    file, or the nearest existing folder above it is not writable. Creates nothing."""
    out = Path(path)
    if is_stdout(path):
        return out
    if out.is_dir():
        raise _error(what, out, "it is a directory")
    if out.exists() and not stat.S_ISREG(out.stat().st_mode):
        if not os.access(out, os.W_OK):
            raise _error(what, out, "permission denied")
        return out
    folder = out.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise _error(what, out, f"{folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _error(what, out, f"permission denied in {folder}")
    return out


def write_text(path: str | Path, text: str, what: str) -> Path:
    """Write `text` to `path` (UTF-8), atomically; parent folders are made. An unwritable
    path is the user's input error (E901); `-` writes to standard output."""
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return Path(path)
    return write_bytes(path, text.encode("utf-8"), what)


def write_bytes(path: str | Path, data: bytes, what: str) -> Path:
    """write_text for bytes (a PNG, an SVG); `-` writes them to standard output."""
    out = Path(path)
    if is_stdout(path):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return out
    try:
        if out.exists() and not out.is_dir() and not stat.S_ISREG(out.stat().st_mode):
            with open(out, "wb") as fh:  # a device or pipe: in place
                fh.write(data)
            return out
        if out.is_dir():
            raise _error(what, out, "it is a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        _replace_with(out, data)
    except OSError as err:
        raise _error(what, out, err.strerror or str(err)) from None
    return out


def _replace_with(out: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if out.exists():  # keep the mode of the file it replaces
            os.chmod(tmp, stat.S_IMODE(out.stat().st_mode))
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
