"""Text prompts -> TokenizedTask, with the checks that make per-position claims sound.

Every named word (members S_i, names N_i) must be exactly one token together with the
whitespace before it, answers must be one token, no word may become the unknown token,
and all prompts of a task, clean and corrupted, must have one token length with named
positions at the same index. Any violation is an InputError naming the word and the
tokens it became; nothing is dropped or padded.

The tokenizer is a Hugging Face fast tokenizer (character offsets are needed to map
words to tokens): GPT-2's byte-level BPE, or the bundled model's word-level one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from seqcirc.errors import Diagnostic, DiagnosticsError, InputError
from seqcirc.source import Span
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.types import TokenizedTask

# TokenizedTask.meta entries with one value per prompt (kept aligned by keep_prompts).
PER_PROMPT_META = ("correct_text", "incorrect_text", "templates")

# Distinct problems shown before "and N more": enough to see a pattern, not a flood.
_MAX_DIAGNOSTICS = 20


def _encode(
    tokenizer: Any, texts: list[str]
) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
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


def tokenize_records(
    records: Sequence[PromptRecord],
    tokenizer: Any,
    *,
    name: str,
    prepend_bos: bool,
    meta: dict[str, object] | None = None,
) -> TokenizedTask:
    """Check and tokenize prompt pairs into an aligned TokenizedTask.

    Positions are token indices counting the BOS token when prepend_bos is set; "END" is
    the last token of each prompt (the one whose next-token prediction is scored).
    """
    if not records:
        raise InputError(f"task {name}: no prompts", code="T302")
    bos: list[int] = []
    if prepend_bos:
        if tokenizer.bos_token_id is None:
            raise InputError(
                f"task {name}: the model prepends BOS but its tokenizer has no bos_token",
                code="T303",
                hint="set bos_token on the tokenizer, or load the model with prepend_bos off",
            )
        bos = [int(tokenizer.bos_token_id)]
    unk = tokenizer.unk_token_id
    problems = _Problems()

    clean_ids, clean_off = _encode(tokenizer, [r.clean for r in records])
    corr_ids, corr_off = _encode(tokenizer, [r.corrupted for r in records])
    answer_texts = sorted({r.correct for r in records} | {r.incorrect for r in records})
    answer_ids, _ = _encode(tokenizer, answer_texts)
    answer_token: dict[str, int] = {}
    for text, ids in zip(answer_texts, answer_ids, strict=True):
        if len(ids) == 1 and ids[0] != unk:
            answer_token[text] = ids[0]
            continue
        what = (
            "the unknown token" if ids == [unk] else f"{len(ids)} tokens: {_show(tokenizer, ids)}"
        )
        rec = next(r for r in records if text in (r.correct, r.incorrect))
        problems.add(
            "T310",
            f"task {name}: answer {text!r} is {what}; an answer must be one token",
            rec,
            "choose members the tokenizer keeps whole (with their leading space)",
        )

    positions: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        for twin, ids, offs, words, text in (
            ("clean", clean_ids[i], clean_off[i], rec.clean_words, rec.clean),
            ("corrupted", corr_ids[i], corr_off[i], rec.corrupted_words, rec.corrupted),
        ):
            if unk is not None and unk in ids:
                bad = [text[a:b] for (a, b), t in zip(offs, ids, strict=True) if t == unk]
                problems.add(
                    "T311",
                    f"task {name}: {', '.join(map(repr, bad))} not in the tokenizer's "
                    f"vocabulary (became {tokenizer.unk_token!r})",
                    rec,
                    "use words the model's tokenizer knows",
                )
                continue
            for pos, start, end in words:
                tok, hits = _word_token(text, offs, start, end)
                if tok is None:
                    word = text[start:end]
                    problems.add(
                        "T312",
                        f"task {name}: {pos} {word!r} is not one token: the {twin} prompt "
                        f"splits it into {_show(tokenizer, [ids[h] for h in hits])}",
                        rec,
                        "every member and name must be a single token with its leading space",
                    )
                elif twin == "clean":
                    positions.setdefault(pos, [-1] * len(records))[i] = tok + len(bos)
                elif (at := positions.get(pos, [-1] * len(records))[i]) not in (-1, tok + len(bos)):
                    problems.add(
                        "T313",
                        f"task {name}: {pos} is at token {at} in the clean prompt but "
                        f"{tok + len(bos)} in the corrupted one: "
                        f"{rec.clean!r} vs {rec.corrupted!r}",
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
    problems.raise_if_any()

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
    common = lengths[0]
    for i, rec in enumerate(records):
        if lengths[i] != common:
            first = records[0].where or "prompt 0"
            problems.add(
                "T315",
                f"task {name}: prompt {rec.where or i} has {lengths[i]} tokens but "
                f"{first} has {common}: {rec.clean!r}",
                rec,
                "all prompts of a task must have the same token length (positions are "
                "compared across prompts); split differing prompts into separate tasks",
            )
    problems.raise_if_any()

    n = len(records)
    pos_arrays = {k: np.asarray(v, dtype=np.int64) for k, v in positions.items()}
    pos_arrays["END"] = np.full(n, common - 1 + len(bos), dtype=np.int64)
    task_meta = dict(meta or {})
    task_meta.update(
        prepend_bos=prepend_bos,
        correct_text=tuple(r.correct for r in records),
        incorrect_text=tuple(r.incorrect for r in records),
        templates=tuple(r.template for r in records),
    )
    return TokenizedTask(
        name=name,
        clean=np.asarray([bos + x for x in clean_ids], dtype=np.int64).reshape(n, -1),
        corrupted=np.asarray([bos + x for x in corr_ids], dtype=np.int64).reshape(n, -1),
        correct=np.asarray([answer_token[r.correct] for r in records], dtype=np.int64),
        incorrect=np.asarray([answer_token[r.incorrect] for r in records], dtype=np.int64),
        positions=pos_arrays,
        clean_text=tuple(r.clean for r in records),
        corrupted_text=tuple(r.corrupted for r in records),
        meta=task_meta,
    )
