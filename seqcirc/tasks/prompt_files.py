"""User prompt files: JSONL or CSV rows of clean, corrupted, correct, incorrect.

JSONL: one JSON object per line (blank lines are skipped), e.g.
  {"clean": "John born in 4. Mary born in", "corrupted": "John born in 9. Mary born in",
   "correct": "5", "incorrect": "4"}
CSV: a header row naming the four columns, then one prompt per row.

correct/incorrect are the next word. A value starting with whitespace is used exactly
as written (" 5"); otherwise one space is put before it when the prompt does not end in
whitespace, as in "... born in" -> " 5". Exports record the exact continuation used.
Every problem is reported with its line number, all of them at once.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from seqcirc.errors import Diagnostic, DiagnosticsError, InputError, did_you_mean
from seqcirc.source import Span
from seqcirc.tasks.records import PromptRecord

FIELDS = ("clean", "corrupted", "correct", "incorrect")
OPTIONAL_FIELDS = ("id",)  # a user's own label, kept in PromptRecord.info
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def continuation(prompt: str, answer: str) -> str:
    """The exact text `answer` adds after `prompt` (see the module docstring)."""
    if answer[:1].isspace() or prompt[-1:].isspace():
        return answer
    return " " + answer


def _check_row(row: object, path: str, line: int, diags: list[Diagnostic]) -> PromptRecord | None:
    def bad(msg: str, hint: str | None = None) -> None:
        diags.append(Diagnostic("T201", msg, Span(path, line, 1), hint))

    if not isinstance(row, dict):
        bad(f"expected an object with {', '.join(FIELDS)}, got {type(row).__name__}")
        return None
    ok = True
    for key in row:
        if key not in FIELDS and key not in OPTIONAL_FIELDS:
            bad(
                f"unknown field {key!r}",
                did_you_mean(str(key), FIELDS, quote=True)
                + "fields: "
                + ", ".join(FIELDS + OPTIONAL_FIELDS),
            )
            ok = False
    for key in FIELDS:
        value = row.get(key)
        if key not in row:
            bad(f"missing field {key!r}", "each prompt needs " + ", ".join(FIELDS))
            ok = False
        elif not isinstance(value, str):
            bad(f"field {key!r} must be a string, got {json.dumps(value)}")
            ok = False
        elif not value.strip():
            bad(f"field {key!r} is empty")
            ok = False
    if not ok:
        return None
    clean, corrupted = row["clean"], row["corrupted"]
    info = {"id": row["id"]} if "id" in row else {}
    return PromptRecord(
        clean=clean,
        corrupted=corrupted,
        correct=continuation(clean, row["correct"]),
        incorrect=continuation(clean, row["incorrect"]),
        source=path,
        line=line,
        info=info,
    )


def _rows_jsonl(text: str, path: str, diags: list[Diagnostic]) -> list[tuple[int, object]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((line, json.loads(raw)))
        except json.JSONDecodeError as err:
            diags.append(
                Diagnostic(
                    "T202",
                    f"not valid JSON: {err.msg}",
                    Span(path, line, err.colno),
                    "each line must be one JSON object",
                )
            )
    return rows


def _rows_csv(text: str, path: str, diags: list[Diagnostic]) -> list[tuple[int, object]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    header = [h.strip() for h in header]
    missing = [f for f in FIELDS if f not in header]
    if missing:
        diags.append(
            Diagnostic(
                "T203",
                f"the header row lacks column(s) {', '.join(missing)}: got {', '.join(header)}",
                Span(path, 1, 1),
                "the first row must name the columns " + ", ".join(FIELDS),
            )
        )
        return []
    rows: list[tuple[int, object]] = []
    start = reader.line_num + 1
    try:
        for values in reader:
            line, start = start, reader.line_num + 1
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                diags.append(
                    Diagnostic(
                        "T204",
                        f"{len(values)} values but the header has {len(header)} columns",
                        Span(path, line, 1),
                        "quote values that contain commas",
                    )
                )
                continue
            rows.append((line, dict(zip(header, values, strict=True))))
    except csv.Error as err:
        diags.append(Diagnostic("T204", f"malformed CSV: {err}", Span(path, start, 1)))
    return rows


def load_prompt_file(path: str | Path, base_dir: Path | None = None) -> list[PromptRecord]:
    """Read and validate a JSONL or CSV prompt file; raise every problem at once."""
    file = Path(path)
    if base_dir is not None and not file.is_absolute():
        file = base_dir / file
    shown = str(path)
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{shown}: unknown prompt file type {file.suffix or '(none)'!r}",
            code="T205",
            hint="use a .jsonl or .csv file",
        )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"prompt file {shown} not found (looked at {file})",
            code="T206",
            hint="paths in a .circ file are relative to that file",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read prompt file {shown}: {err}", code="T206") from None
    diags: list[Diagnostic] = []
    rows = (_rows_jsonl if fmt == "jsonl" else _rows_csv)(text, shown, diags)
    records = [r for line, row in rows if (r := _check_row(row, shown, line, diags))]
    if not diags and not records:
        diags.append(Diagnostic("T207", "the prompt file has no prompts", Span(shown, 1, 1)))
    if diags:
        diags.sort(key=lambda d: d.span.line if d.span else 0)  # stable: file order
        raise DiagnosticsError(diags, source_text=text)
    return records
