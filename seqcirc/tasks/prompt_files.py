"""User prompt files: JSONL or CSV rows of clean, corrupted, correct, incorrect.

JSONL: one JSON object per line (blank lines are skipped), e.g.
  {"clean": "John born in 4. Mary born in", "corrupted": "John born in 9. Mary born in",
   "correct": "5", "incorrect": "4"}
CSV: a header row naming the four columns, then one prompt per row.
Optional fields: `id` (a label), `template` (a name such as "born_in": the prompt's
template in exports and results), `members` (a list of the shown members, or one
string in CSV) and `positions` (a JSON object, in CSV a JSON text). `members` is kept
as a label (PromptRecord.info), not checked against the text. `positions` names the
words that role claims and per-position choices read, as the generator's S1.., N1..:
  "positions": {"S1": "January", "N1": "Van", "S2": [28, 36]}
a name maps to a word of the clean prompt that occurs there exactly once as a whole
word, or to [start, end] character offsets of it (end exclusive). The corrupted twin's
position is the token at the same index (twins align token by token; tokenization
checks that every named word is one token). END is always the last token and cannot be
named. Any other field is an error (T201), so a misspelt field is never silently dropped.

correct/incorrect are the next word. A value starting with whitespace is used exactly
as written (" 5"); otherwise one space is put before it when the prompt does not end in
whitespace, as in "... born in" -> " 5". Exports record the exact continuation used.
Every problem is found in one pass and reported with its line number; the first
MAX_SHOWN are shown, then a count of the rest. Lines end at "\n" (or "\r\n") only, as
JSONL defines them: U+2028 and other Unicode line breaks are text inside a string. A
UTF-8 byte order mark at the start of the file is dropped.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

from seqcirc.errors import Diagnostic, DiagnosticsError, InputError, did_you_mean
from seqcirc.language.vocab import POSITION
from seqcirc.source import Span
from seqcirc.tasks.records import PromptRecord, WordSpan

FIELDS = ("clean", "corrupted", "correct", "incorrect")
# labels kept as they are (PromptRecord.template and .info); see the module docstring
OPTIONAL_FIELDS = ("id", "template", "members", "positions")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
MAX_SHOWN = 20  # problems shown of a bad file; the rest are counted
_SHOWN_WIDTH = 200  # characters of a line quoted under a problem
# Half of a UTF-16 surrogate pair: JSON can write one ("\ud800"), but it is no text.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What str.splitlines() (and so the caret snippet) would break a quoted line at.
_LINE_BREAKS = dict.fromkeys(map(ord, "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), " ")


def continuation(prompt: str, answer: str) -> str:
    """The exact text `answer` adds after `prompt` (see the module docstring)."""
    if answer[:1].isspace() or prompt[-1:].isspace():
        return answer
    return " " + answer


@functools.lru_cache(maxsize=256)  # a file may repeat one misspelt field 100,000 times
def _fields_hint(key: str) -> str:
    return did_you_mean(key, FIELDS, quote=True) + "fields: " + ", ".join(FIELDS + OPTIONAL_FIELDS)


def _check_row(row: object, path: str, line: int, diags: list[Diagnostic]) -> PromptRecord | None:
    def bad(msg: str, hint: str | None = None) -> None:
        diags.append(Diagnostic("T201", msg, Span(path, line, 1), hint))

    if not isinstance(row, dict):
        bad(f"expected an object with {', '.join(FIELDS)}, got {type(row).__name__}")
        return None
    ok = True
    for key in row:
        if key not in FIELDS and key not in OPTIONAL_FIELDS:
            bad(f"unknown field {_clip(repr(key))}", _fields_hint(str(key)))
            ok = False
    for key in FIELDS:
        value = row.get(key)
        if key not in row:
            bad(f"missing field {key!r}", "each prompt needs " + ", ".join(FIELDS))
            ok = False
        elif not isinstance(value, str):
            bad(f"field {key!r} must be a string, got {_short_json(value)}")
            ok = False
        elif not value.strip():
            bad(f"field {key!r} is empty")
            ok = False
    ok = _labels_ok(row, bad) and ok
    if not ok or not _is_text(row, path, line, diags):
        return None
    clean, corrupted = row["clean"], row["corrupted"]
    words = _positions(row.get("positions"), clean, path, line, diags)
    if words is None:
        return None
    info = {key: row[key] for key in ("id", "members") if key in row}
    return PromptRecord(
        clean=clean,
        corrupted=corrupted,
        correct=continuation(clean, row["correct"]),
        incorrect=continuation(clean, row["incorrect"]),
        clean_words=words,
        template=row.get("template", ""),
        source=path,
        line=line,
        info=info,
    )


def _positions(
    value: object, clean: str, path: str, line: int, diags: list[Diagnostic]
) -> tuple[WordSpan, ...] | None:
    """The `positions` field as word spans of the clean prompt (T210), None if bad."""
    if value is None:
        return ()
    if isinstance(value, str):  # a CSV cell holds the object as JSON text
        try:
            value = json.loads(value) if value.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            value = None
    hint = 'e.g. "positions": {"S1": "January", "N1": [0, 3]}'
    if not isinstance(value, dict):
        diags.append(
            Diagnostic("T210", "field 'positions' must be an object", Span(path, line, 1), hint)
        )
        return None
    spans: list[WordSpan] = []
    for name, where in value.items():
        span_or_error = _word_span(str(name), where, clean)
        if isinstance(span_or_error, str):
            diags.append(Diagnostic("T210", span_or_error, Span(path, line, 1), hint))
        else:
            spans.append(span_or_error)
    if len(spans) < len(value):
        return None
    return tuple(sorted(spans, key=lambda s: s[1]))


def _word_span(name: str, where: object, clean: str) -> WordSpan | str:
    """(name, start, end) of a named word in the clean prompt, or what is wrong."""
    if name == "END" or POSITION.fullmatch(name) is None:
        why = "END is always the last token" if name == "END" else "names are S1.., N1.."
        return f"position name {_clip(repr(name))} cannot be given: {why}"
    if isinstance(where, str):
        hits = [m.start() for m in re.finditer(rf"(?<!\w){re.escape(where)}(?!\w)", clean)]
        if len(hits) != 1 or not where.strip():
            found = "is not a word of" if not hits else f"occurs {len(hits)} times in"
            return (
                f"{name}: {_clip(repr(where))} {found} the clean prompt; give [start, end] offsets"
            )
        return name, hits[0], hits[0] + len(where)
    ok = (
        isinstance(where, list)
        and len(where) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in where)
        and 0 <= where[0] < where[1] <= len(clean)
    )
    if not ok:
        return (
            f"{name}: {_short_json(where)} is neither a word nor [start, end] offsets "
            f"inside the clean prompt ({len(clean)} characters)"
        )
    assert isinstance(where, list)
    return name, where[0], where[1]


def _labels_ok(row: dict, bad: Callable[[str], None]) -> bool:
    """`template` is a string; `members` a string or a list of strings (`id`: any)."""
    ok = True
    if "template" in row and not isinstance(row["template"], str):
        bad(f"field 'template' must be a string, got {_short_json(row['template'])}")
        ok = False
    members = row.get("members", "")
    if not isinstance(members, str) and not (
        isinstance(members, list) and all(isinstance(m, str) for m in members)
    ):
        bad(f"field 'members' must be a list of strings, got {_short_json(members)}")
        ok = False
    return ok


def _is_text(row: dict, path: str, line: int, diags: list[Diagnostic]) -> bool:
    """No string field holds a lone surrogate (tokenizers and UTF-8 files reject them)."""
    # json.loads joins an escaped pair into one character, so every surrogate in a str
    # is a lone one, and one search over the joined fields finds them all.
    values = [v for key in (*FIELDS, *OPTIONAL_FIELDS) for v in _strings(row.get(key))]
    if not _LONE_SURROGATE.search("".join(values)):
        return True
    ok = True
    for key in (*FIELDS, *OPTIONAL_FIELDS):
        half = _LONE_SURROGATE.search("".join(_strings(row.get(key))))
        if half:
            diags.append(
                Diagnostic(
                    "T209",
                    f"field {key!r} is not text: it holds the lone surrogate "
                    f"\\u{ord(half.group()):04x} (half of a UTF-16 pair, written as a JSON escape)",
                    Span(path, line, 1),
                    "write the character itself, or escape both halves of its pair "
                    "(\\ud83d\\ude00 is one emoji)",
                )
            )
            ok = False
    return ok


def _strings(value: object) -> list[str]:
    """The strings of a field: itself, or the items of a list of them (`members`)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _short_json(value: object) -> str:
    """A field's value as JSON for a message, cut short (it may be huge or deep)."""
    try:
        return _clip(json.dumps(value))
    except (RecursionError, ValueError):
        return type(value).__name__


def _lines(text: str) -> list[str]:
    """The file's lines: split at "\n" only, a "\r" before it dropped (JSONL, RFC 8259)."""
    return [raw.removesuffix("\r") for raw in text.split("\n")]


def _rows_jsonl(text: str, path: str, diags: list[Diagnostic]) -> list[tuple[int, object]]:
    rows = []
    for line, raw in enumerate(_lines(text), start=1):
        if not raw.strip(" \t\r"):  # JSON whitespace only: U+2028 is no blank
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
        except RecursionError:  # e.g. [[[[...]]]] 100,000 deep
            diags.append(
                Diagnostic(
                    "T208",
                    "JSON nested too deeply to read",
                    Span(path, line, 1),
                    "each line must be one flat JSON object of strings",
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
        text = file.read_text(encoding="utf-8-sig")  # -sig: drops a byte order mark
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
        _raise_shown(diags, text, shown)
    return records


def _raise_shown(diags: list[Diagnostic], text: str, shown: str) -> None:
    """Raise the first MAX_SHOWN problems and a count of the rest.

    The source text handed on for the caret snippets holds only the quoted lines (cut
    to a readable width, other line breaks blanked so line numbers stay right): a
    snippet splits that text once per problem, which for the whole of a big file
    would take minutes."""
    first, rest = diags[:MAX_SHOWN], len(diags) - MAX_SHOWN
    lines = _lines(text)
    quoted: dict[int, str] = {}
    for d in first:
        if d.span is not None and 1 <= d.span.line <= len(lines):
            width = max(_SHOWN_WIDTH, d.span.col + 40)
            quoted[d.span.line] = _clip(lines[d.span.line - 1].translate(_LINE_BREAKS), width)
    source = "\n".join(quoted.get(n, "") for n in range(1, max(quoted, default=0) + 1))
    if rest > 0:
        first.append(Diagnostic("T200", f"... and {rest} more problems in {shown}"))
    raise DiagnosticsError(first, source_text=source)
