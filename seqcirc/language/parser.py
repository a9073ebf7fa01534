"""parse(text, path) -> Program. The Lark parser is built once, lazily, in strict mode.

Syntax errors become InputError with a span and words a researcher knows ("a head such
as 9.1"), never Lark's internal terminal names.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import resources

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import LarkError, VisitError
from lark.lark import PostLex

from seqcirc.errors import InputError, SeqcircError
from seqcirc.language.ast import Program
from seqcirc.language.transform import ToAst
from seqcirc.source import Span

# What each named terminal means, in the user's words.
_TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "DECIMAL": "a head such as 9.1",
    "COMPONENT": "a head or MLP such as a9.h1 or blocks.9.hook_mlp_out",
    "INT": "a whole number",
    "SIGNED_NUMBER": "a number",
    "STRING": 'a quoted string such as "file.circ"',
    "MODEL_NAME": "a model name such as gpt2-small",
    "COMPARE": "a comparison (>=, <=, >, <)",
    "GRANULARITY": "`nodes` or `edges`",
    "ABLATION_VALUE": "`mean`, `resample` or `zero`",
    "$END": "the end of the file",
}

# Common mistakes, recognised by the parser state they leave (Lark's match_examples).
_EXAMPLES: dict[str, list[str]] = {
    "a claim needs a comparison and a threshold, e.g. `expect faithfulness >= 0.8`": [
        "circuit c on m { expect faithfulness 0.8 }",
        "circuit c on m { expect faithfulness }",
        "circuit c on m { role 9.1 successor 0.8 }",
    ],
    "a circuit is written `circuit months on gpt2-small { ... }`": [
        "circuit c gpt2 {",
        "circuit c {",
    ],
    "heads are written layer.head, e.g. 9.1 (or L9H1, a9.h1, blocks.9.attn.hook_z[1]); "
    "MLPs as `mlp 9` (or mlp9, m9, blocks.9.hook_mlp_out)": [
        "group g = 9",
        "circuit c on m { heads 9 }",
    ],
    "MLP layers are whole numbers or ranges such as `mlp 0..4, 6..10`": [
        "circuit c on m { mlp 1.5 }",
        "circuit c on m { mlp a }",
    ],
}


BOM = "\ufeff"  # a UTF-8 byte order mark some editors write first; not part of the text
_WORD = re.compile(r"\w+")
_TEXT: ContextVar[str] = ContextVar("circ_text", default="")  # the text being parsed
# Named terminals that are words of the language, besides its quoted keywords.
_WORD_TERMINALS = frozenset({"GRANULARITY", "ABLATION_VALUE"})


class _GluedKeyword(Exception):
    """A keyword the lexer took from the front of a longer word (`taskx` -> `task` `x`)."""

    def __init__(self, token: Token, word: str) -> None:
        super().__init__(word)
        self.token, self.word = token, word


class _KeywordsStandAlone(PostLex):
    """Where the grammar allows no name, the lexer matches a keyword at the front of any
    word: `taskmonths = ...` would read as `task months = ...`. A keyword must end where
    its word ends; otherwise the word is a misspelling, reported as such."""

    always_accept = ()

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        text = _TEXT.get()
        for tok in stream:
            end = tok.end_pos or 0
            if tok.type in _keyword_types() and end < len(text) and _WORD.match(text, end):
                word = _WORD.match(text, tok.start_pos or 0)
                raise _GluedKeyword(tok, word.group() if word else str(tok))
            yield tok


def _grammar_text() -> str:
    """The grammar, which lives beside this module (in a checkout and in the wheel)."""
    return resources.files("seqcirc.language").joinpath("circ.lark").read_text(encoding="utf-8")


@functools.cache
def get_parser() -> Lark:
    return Lark(
        _grammar_text(),
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=_KeywordsStandAlone(),
    )


@functools.cache
def _keyword_types() -> frozenset[str]:
    """Terminal names of the language's words (`task`, `circuit`, `mean`, ...)."""
    words = {t.name for t in get_parser().terminals if _is_keyword(t.pattern)}
    return frozenset(words) | _WORD_TERMINALS


def _is_keyword(pattern: object) -> bool:
    value = getattr(pattern, "value", "")
    return getattr(pattern, "type", "") == "str" and str(value).isidentifier()


def _describe_terminal(parser: Lark, name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return "something else"
    return f"`{pattern.value}`" if pattern.type == "str" else "something else"


def _expected(parser: Lark, names: set[str] | frozenset[str]) -> str:
    words = sorted({_describe_terminal(parser, n) for n in names})
    if "COMPARE" in names and "NAME" in names:  # a claim's name: its measure may follow
        words = [w if w != "a name" else "a lens measure such as rank(correct)" for w in words]
    if len(words) > 8:
        words = [*words[:8], "..."]
    return ", ".join(words)


@functools.cache
def _example_states() -> tuple[tuple[int, str, str], ...]:
    """(parser state, offending token type, label) of each example mistake."""
    out = []
    for label, examples in _EXAMPLES.items():
        for example in examples:
            try:
                _lark_parse(get_parser(), example)
            except UnexpectedToken as err:
                out.append((err.state.position, err.token.type, label))
    return tuple(out)


def _match_example(err: UnexpectedInput) -> str | None:
    """The label of an example that fails in the same parser state on the same kind of
    token. (Lark's match_examples also compares stack depth, which grows with every
    statement before the mistake, so it misses most real files.)"""
    if not isinstance(err, UnexpectedToken) or err.state is None:
        return None
    for position, token_type, label in _example_states():
        if position == err.state.position and token_type == err.token.type:
            return label
    return None


def _syntax_error(err: UnexpectedInput, parser: Lark, text: str, path: str) -> InputError:
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedToken):
        tok: Token = err.token
        expected = _expected(parser, err.accepts or err.expected)
        if tok.type == "$END":
            code, message = "E102", "unexpected end of file"
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        else:
            code, message = "E100", f"unexpected `{tok}`"
        width = len(str(tok)) if tok.type != "$END" else 1
        span = Span(path, line, col, line, col + max(width, 1) - 1)
        hint = f"expected {expected}"
        close = _misspelled_keyword(parser, tok, err.accepts or err.expected)
        if close:
            hint = f"{close} {hint}"
    elif isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        code, message = "E101", f"unexpected character {char!r}"
        span = Span(path, line, col, line, col)
        hint = f"expected {_expected(parser, err.allowed)}" if err.allowed else ""
    else:  # pragma: no cover - the LALR parser raises only the two above
        code, message, span, hint = "E100", "syntax error", Span(path, line, col), ""
    label = _match_example(err) or _hook_label(text, line, col)
    if label is not None:
        hint = f"{label}; {hint}" if hint else label
    return InputError(message, code=code, span=span, hint=hint or None, source_text=text)


_HOOK = re.compile(r"blocks\.\d+\.[\w.]*(\[[^\]\n]*\])?")


def _hook_label(text: str, line: int, col: int) -> str | None:
    """A TransformerLens hook name the language does not take as a component (no head
    index, or another hook): say which ones it takes."""
    lines = text.splitlines()
    row = lines[line - 1] if 1 <= line <= len(lines) else ""
    for m in _HOOK.finditer(row):
        if m.start() < col <= m.end() + 1:
            return (
                f"`{m.group()}` is not a component: a head is blocks.L.attn.hook_z[H] "
                "(hook_result too; H the head index), an MLP blocks.L.hook_mlp_out"
            )
    return None


def _misspelled_keyword(parser: Lark, tok: Token, accepted: set[str] | frozenset[str]) -> str:
    """`did you mean `circuit`?` when a word stands where a keyword close to it belongs."""
    if tok.type not in ("NAME", "MODEL_NAME"):
        return ""
    keywords = {
        str(parser.get_terminal(name).pattern.value)
        for name in accepted
        if name in _keyword_types() and name not in _WORD_TERMINALS
    }
    close = difflib.get_close_matches(str(tok), sorted(keywords), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


def _glued_error(err: _GluedKeyword, text: str, path: str) -> InputError:
    tok, word = err.token, err.word
    line, col = tok.line or 1, tok.column or 1
    return InputError(
        f"unexpected `{word}`",
        code="E100",
        span=Span(path, line, col, line, col + len(word) - 1),
        hint=f"did you mean `{tok}`? a keyword is a word of its own: `{tok} {word[len(tok) :]}`",
        source_text=text,
    )


def _lark_parse(parser: Lark, text: str) -> Tree:
    """Lark's parse, with the text where the keyword check (_KeywordsStandAlone) sees it."""
    token = _TEXT.set(text)
    try:
        return parser.parse(text)
    finally:
        _TEXT.reset(token)


def parse(text: str, path: str = "<string>") -> Program:
    """Parse .circ source into a Program; raise InputError (E100-E103) on bad syntax.

    A leading byte order mark is dropped, so columns on the first line count from the
    first character a reader sees."""
    text = text.removeprefix(BOM)
    parser = get_parser()
    try:
        tree = _lark_parse(parser, text)
    except UnexpectedInput as err:
        raise _syntax_error(err, parser, text, path) from None
    except _GluedKeyword as err:
        raise _glued_error(err, text, path) from None
    except LarkError as err:  # pragma: no cover - defensive: never leak Lark errors
        raise InputError(f"cannot parse: {err}", code="E100", source_text=text) from None
    try:
        items = ToAst(path).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SeqcircError):
            if err.orig_exc.source_text is None:
                err.orig_exc.source_text = text
            raise err.orig_exc from None
        raise InputError(f"cannot read: {err.orig_exc}", code="E100", source_text=text) from None
    comments = tuple(
        (i + 1, line[col:].rstrip())
        for i, line in enumerate(text.splitlines())
        if (col := _comment_start(line)) is not None
    )
    return Program(path, text, items, comments)


def _comment_start(line: str) -> int | None:
    """Column of a `#` comment outside a string literal, or None."""
    in_string = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return i
    return None
