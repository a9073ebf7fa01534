"""Text prompts -> TokenizedTask, with the checks that make per-position claims sound.

Every named word (members S_i, names N_i) must be exactly one token together with the
whitespace before it, answers must be one token (or, with `multi_token` or where the
metric generates, several; a generating metric also names a word of several tokens at
its last token), no word may become the unknown token, and each clean prompt and its
corrupted twin must have one token length with named
positions at the same index. Any violation is an InputError naming the word and the
tokens it became; nothing is dropped. Prompts of different lengths are padded on the
right to the longest (TokenizedTask.lengths); what cannot use them refuses (T315).

The tokenizer is a Hugging Face fast tokenizer (character offsets are needed to map
words to tokens): GPT-2's byte-level BPE, or the bundled model's word-level one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from seqcirc.errors import Diagnostic, DiagnosticsError, InputError
from seqcirc.source import Span
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.types import ANSWER_PAD, TokenizedTask

# TokenizedTask.meta entries with one value per prompt (kept aligned by keep_prompts).
PER_PROMPT_META = ("correct_text", "incorrect_text", "templates")

# Distinct problems shown before "and N more": enough to see a pattern, not a flood.
_MAX_DIAGNOSTICS = 20


Encoded = tuple[list[list[int]], list[list[tuple[int, int]]]]  # token ids, char offsets


def _encode(tokenizer: Any, texts: list[str]) -> Encoded:
    try:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as err:  # slow (Python) tokenizers have no offsets
        raise InputError(
            f"tokenizer {type(tokenizer).__name__} gives no character offsets",
            code="T301",
            hint="load the model's fast tokenizer (AutoTokenizer, use_fast=True)",
        ) from err
    ids = [list(map(int, x)) for x in enc["input_ids"]]
    offsets = [[(int(a), int(b)) for a, b in x] for x in enc["offset_mapping"]]
    return ids, offsets


def _show(tokenizer: Any, ids: Sequence[int]) -> str:
    return " + ".join(repr(t) for t in tokenizer.convert_ids_to_tokens(list(ids)))


class _Problems:
    """Distinct problems, deduplicated by message, reported together."""

    def __init__(self) -> None:
        self.items: dict[str, Diagnostic] = {}
        self.count = 0

    def add(self, code: str, message: str, record: PromptRecord | None, hint: str) -> None:
        if message in self.items:
            return
        self.count += 1
        if len(self.items) < _MAX_DIAGNOSTICS:
            span = None
            if record is not None and record.source is not None:
                span = Span(record.source, record.line or 1, 1)
            self.items[message] = Diagnostic(code, message, span, hint)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        diags = list(self.items.values())
        if self.count > len(diags):
            diags.append(
                Diagnostic("T300", f"... and {self.count - len(diags)} more distinct problems")
            )
        raise DiagnosticsError(diags)


def _word_token(
    text: str, offsets: list[tuple[int, int]], start: int, end: int
) -> tuple[int | None, list[int]]:
    """The token index holding text[start:end] with its leading whitespace, else None.

    Also returns the indices of every token overlapping the word and its leading
    whitespace, for the error message.
    """
    lead = start
    while lead > 0 and text[lead - 1].isspace():
        lead -= 1
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > lead]
    # The word and its leading space must be one token that stays inside them (a token
    # that also covers the "." after a member would not be the member's own token).
    word_hits = [i for i in hits if offsets[i][0] < end and offsets[i][1] > start]
    if len(hits) == 1 and len(word_hits) == 1:
        a, b = offsets[hits[0]]
        if a >= lead and b <= end:
            return hits[0], hits
    return None, hits


def _last_token(
    offsets: list[tuple[int, int]], hits: list[int], start: int, end: int
) -> int | None:
    """Where a word of several tokens is named (generating tasks): its last token, when
    its tokens are consecutive, hold nothing outside the word and its leading whitespace
    (no "." merged in), and the last one ends the word."""
    if not hits or hits != list(range(hits[0], hits[-1] + 1)):
        return None
    if any(offsets[i][1] > end for i in hits) or offsets[hits[-1]][1] != end:
        return None
    return hits[-1] if offsets[hits[-1]][0] >= start else None


def tokenize_records(
    records: Sequence[PromptRecord],
    tokenizer: Any,
    *,
    name: str,
    prepend_bos: bool,
    meta: dict[str, object] | None = None,
    multi_token: bool = False,
    generates: bool = False,
) -> TokenizedTask:
    """Check and tokenize prompt pairs into an aligned TokenizedTask.

    Positions are token indices counting the BOS token when prepend_bos is set; "END" is
    the last token of each prompt (the one whose next-token prediction is scored).
    `multi_token`: an answer may be several tokens (T310 otherwise); each answer is
    tokenized alone, with its leading whitespace, as the continuation of its prompt.
    `generates`: the metric decodes a continuation and reads the answers as text, so an
    answer may be several tokens and the task keeps the tokenizer's decode; a named
    word may be several tokens too (Llama-2's "▁" + "5"), named at its last token.
    """
    if not records:
        raise InputError(f"task {name}: no prompts", code="T302")
    bos = _bos(tokenizer, name) if prepend_bos else []
    problems = _Problems()
    clean = _encode(tokenizer, [r.clean for r in records])
    corrupted = _encode(tokenizer, [r.corrupted for r in records])
    answer_token = _answer_tokens(
        records, tokenizer, name, problems, multi_token or generates, generates=generates
    )
    positions = _named_positions(
        records, tokenizer, name, clean, corrupted, len(bos), problems, several=generates
    )
    problems.raise_if_any()
    lengths = _twin_lengths(records, clean[0], corrupted[0], name, problems)
    problems.raise_if_any()

    pos_arrays = {k: np.asarray(v, dtype=np.int64) for k, v in positions.items()}
    pos_arrays["END"] = np.asarray(lengths, dtype=np.int64) - 1 + len(bos)
    task_meta = dict(meta or {})
    task_meta.update(
        prepend_bos=prepend_bos,
        correct_text=tuple(r.correct for r in records),
        incorrect_text=tuple(r.incorrect for r in records),
        templates=tuple(r.template for r in records),
    )
    ragged = len(set(lengths)) > 1
    pad = _pad_id(tokenizer)
    correct_ids, correct_len = _padded_answers([answer_token[r.correct] for r in records])
    incorrect_ids, incorrect_len = _padded_answers([answer_token[r.incorrect] for r in records])
    several = bool(max(correct_len.max(), incorrect_len.max()) > 1)
    return TokenizedTask(
        name=name,
        clean=_padded([bos + x for x in clean[0]], pad),
        corrupted=_padded([bos + x for x in corrupted[0]], pad),
        correct=correct_ids[:, 0].copy(),
        incorrect=incorrect_ids[:, 0].copy(),
        positions=pos_arrays,
        clean_text=tuple(r.clean for r in records),
        corrupted_text=tuple(r.corrupted for r in records),
        meta=task_meta,
        lengths=np.asarray(lengths, dtype=np.int64) + len(bos) if ragged else None,
        decode=tokenizer.decode if generates else None,
        correct_ids=correct_ids if several else None,
        incorrect_ids=incorrect_ids if several else None,
        correct_len=correct_len if several else None,
        incorrect_len=incorrect_len if several else None,
    )


def _pad_id(tokenizer: Any) -> int:
    """The id padding is written with. Right padding is never attended by a real token,
    so its value does not matter; the tokenizer's pad (or EOS) keeps exports readable."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def _padded(rows: list[list[int]], pad: int) -> npt.NDArray[np.int64]:
    """[n, longest] token ids, each row padded on the right with `pad`."""
    longest = max(len(r) for r in rows)
    return np.asarray([r + [pad] * (longest - len(r)) for r in rows], dtype=np.int64).reshape(
        len(rows), longest
    )


def _padded_answers(answers: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token-id lists as [n, A] padded with ANSWER_PAD, and their lengths [n]."""
    lengths = np.asarray([len(a) for a in answers], dtype=np.int64)
    out = np.full((len(answers), int(lengths.max())), ANSWER_PAD, dtype=np.int64)
    for i, a in enumerate(answers):
        out[i, : len(a)] = a
    return out, lengths


def _bos(tokenizer: Any, name: str) -> list[int]:
    if tokenizer.bos_token_id is None:
        raise InputError(
            f"task {name}: the model prepends BOS but its tokenizer has no bos_token",
            code="T303",
            hint="set bos_token on the tokenizer, or load the model with prepend_bos off",
        )
    return [int(tokenizer.bos_token_id)]


def _answer_tokens(
    records: Sequence[PromptRecord],
    tokenizer: Any,
    name: str,
    problems: _Problems,
    multi_token: bool = False,
    *,
    generates: bool = False,
) -> dict[str, list[int]]:
    """answer text -> its token ids, for every answer that is one known token, or with
    `multi_token` one or more known tokens (T310); `generates` words the refusal for a
    generating metric."""
    unk = tokenizer.unk_token_id
    answer_texts = sorted({r.correct for r in records} | {r.incorrect for r in records})
    answer_ids, _ = _encode(tokenizer, answer_texts)
    answer_token: dict[str, list[int]] = {}
    for text, ids in zip(answer_texts, answer_ids, strict=True):
        known = bool(ids) and (unk is None or unk not in ids)
        if known and (len(ids) == 1 or multi_token):
            answer_token[text] = list(ids)
            continue
        if ids == [unk]:
            what = "the unknown token"
        elif ids and not known:
            what = f"{len(ids)} tokens with the unknown one: {_show(tokenizer, ids)}"
        else:
            what = f"{len(ids)} tokens" + (f": {_show(tokenizer, ids)}" if ids else "")
        rec = next(r for r in records if text in (r.correct, r.incorrect))
        if generates:  # generation: only an answer the model could not write is refused
            what = f"{_show(tokenizer, ids)}, with the unknown token" if ids else "no tokens"
        problems.add(
            "T310",
            f"task {name}: answer {text!r} is {what}; an answer must be "
            + ("known tokens" if multi_token else "one token"),
            rec,
            "use answers the tokenizer can write" if generates else
            "choose members the tokenizer keeps whole (with their leading space)"
            + ("" if multi_token else ", or use the metric logit_diff, logprob or accuracy, "
               "or score by generation: metric accuracy(generate, max_new_tokens=N)"),
        )  # fmt: skip
    return answer_token


def _named_positions(
    records: Sequence[PromptRecord],
    tokenizer: Any,
    name: str,
    clean: Encoded,
    corrupted: Encoded,
    n_bos: int,
    problems: _Problems,
    *,
    several: bool = False,
) -> dict[str, list[int]]:
    """Named position -> its token index in each prompt (T311-T313, T316): every named
    word one known token (`several`: or its last token, _last_token), at the same index
    in the clean and corrupted twins."""
    n = len(records)
    positions: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        for twin, ids, offs, words, text in (
            ("clean", clean[0][i], clean[1][i], rec.clean_words, rec.clean),
            ("corrupted", corrupted[0][i], corrupted[1][i], rec.corrupted_words, rec.corrupted),
        ):
            if _unknown_words(tokenizer, name, rec, ids, offs, text, problems):
                continue
            if twin == "corrupted" and not words and rec.clean_words:
                continue  # file prompts name clean words; the twin is at the same index
            for pos, start, end in words:
                tok, hits = _word_token(text, offs, start, end)
                if tok is None and several:
                    tok = _last_token(offs, hits, start, end)
                if tok is None:
                    problems.add(
                        "T312",
                        f"task {name}: {pos} {text[start:end]!r} is not one token: the {twin} "
                        f"prompt splits it into {_show(tokenizer, [ids[h] for h in hits])}",
                        rec,
                        "every member and name must be a single token with its leading space",
                    )
                elif twin == "clean":
                    positions.setdefault(pos, [-1] * n)[i] = tok + n_bos
                elif (at := positions.get(pos, [-1] * n)[i]) not in (-1, tok + n_bos):
                    problems.add(
                        "T313",
                        f"task {name}: {pos} is at token {at} in the clean prompt but "
                        f"{tok + n_bos} in the corrupted one: {rec.clean!r} vs {rec.corrupted!r}",
                        rec,
                        "clean and corrupted prompts must align token by token",
                    )
    for pos, indices in positions.items():
        for i in (j for j, p in enumerate(indices) if p < 0):
            problems.add(
                "T316",
                f"task {name}: prompt {records[i].where or i} has no position {pos}, "
                "which other prompts of the task have",
                records[i],
                "all prompts of a task must share one template",
            )
    return positions


def _unknown_words(
    tokenizer: Any,
    name: str,
    rec: PromptRecord,
    ids: list[int],
    offs: list[tuple[int, int]],
    text: str,
    problems: _Problems,
) -> bool:
    """Whether the prompt holds the unknown token (T311: its words are then not placed)."""
    unk = tokenizer.unk_token_id
    if unk is None or unk not in ids:
        return False
    bad = [text[a:b] for (a, b), t in zip(offs, ids, strict=True) if t == unk]
    problems.add(
        "T311",
        f"task {name}: {', '.join(map(repr, bad))} not in the tokenizer's "
        f"vocabulary (became {tokenizer.unk_token!r})",
        rec,
        "use words the model's tokenizer knows",
    )
    return True


def _twin_lengths(
    records: Sequence[PromptRecord],
    clean_ids: list[list[int]],
    corr_ids: list[list[int]],
    name: str,
    problems: _Problems,
) -> list[int]:
    """Each prompt's token length, which its corrupted twin must share (T314)."""
    lengths = [len(x) for x in clean_ids]
    for i, rec in enumerate(records):
        if len(corr_ids[i]) != lengths[i]:
            problems.add(
                "T314",
                f"task {name}: the clean prompt has {lengths[i]} tokens, the corrupted "
                f"{len(corr_ids[i])}: {rec.clean!r} vs {rec.corrupted!r}",
                rec,
                "clean and corrupted prompts must have the same token length",
            )
    return lengths
