"""The paper's mixed prompts for attention patterns (`seqcirc attention --builtin mixed`):
sequence members in order and in a random order, bare, as the authors' notebooks probe
their heads (apartresearch/seqcont_circuits):

- digits and months in order, "1 2 3 4" and "January February March April"
  (notebooks/gpt2_expms/logit_lens; the Llama-2 notebooks' f"{i} {i+1} {i+2} {i+3}"),
  and the same members in a random order, "3 1 4 2" (never the in-order sequence);
- number words interleaved with months, both in order, "one January two February three
  March four April five", and the authors' random-order number words between in-order
  months, "nine January seven February nine March six April six": r1 and r3 and r5
  random, r2 from five..nine and r4 the word before r2
  (notebooks/llama2_expms/attn_pats/Llama2_inAndRandOrder_attnPat.ipynb).

Named positions: S1..S4 the sequence members (the months where words are interleaved),
N1..N5 the interleaved number words, END the last token. The random orders are drawn
from `seed`, so a run can be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcirc.errors import InputError
from seqcirc.roles.patterns import PromptGroup, token_strings
from seqcirc.tasks.sets import ORDERED_SETS

BUILTINS = ("mixed",)
_DIGITS = [str(i) for i in range(1, 10)]
_MONTHS = list(ORDERED_SETS["months"])
_WORDS = list(ORDERED_SETS["number_words"][:9])  # one..nine, as the authors' list


@dataclass(frozen=True)
class TextPrompt:
    text: str
    words: tuple[tuple[str, int, int], ...]  # (position name, char start, char end)


def _prompt(parts: list[tuple[str, str]]) -> TextPrompt:
    """Words joined by spaces; `parts` is (position name or "", word)."""
    text, words = "", []
    for name, word in parts:
        start = len(text) + (1 if text else 0)
        text = f"{text} {word}" if text else word
        if name:
            words.append((name, start, start + len(word)))
    return TextPrompt(text, tuple(words))


def _members(seq: list[str]) -> TextPrompt:
    return _prompt([(f"S{i + 1}", w) for i, w in enumerate(seq)])


def _shuffled(seq: list[str], rng: np.random.Generator) -> list[str]:
    while True:
        out = [seq[i] for i in rng.permutation(len(seq))]
        if out != seq:
            return out


def _interleaved(words: list[str], months: list[str]) -> TextPrompt:
    parts: list[tuple[str, str]] = []
    for i, month in enumerate(months):
        parts += [(f"N{i + 1}", words[i]), (f"S{i + 1}", month)]
    return _prompt([*parts, ("N5", words[4])])


def mixed_prompts(seed: int = 0) -> dict[str, list[TextPrompt]]:
    """The groups of `--builtin mixed`, by name, in the order they are drawn."""
    rng = np.random.default_rng(seed)
    digit_runs = [_DIGITS[i : i + 4] for i in range(6)]  # 1 2 3 4 .. 6 7 8 9
    month_runs = [_MONTHS[i : i + 4] for i in range(6)]  # January .. June-September
    r = [str(rng.choice(_WORDS)), str(rng.choice(_WORDS[4:])), str(rng.choice(_WORDS))]
    random_words = [r[0], r[1], r[2], _WORDS[_WORDS.index(r[1]) - 1], str(rng.choice(_WORDS))]
    return {
        "digits in order": [_members(s) for s in digit_runs],
        "digits in random order": [_members(_shuffled(s, rng)) for s in digit_runs],
        "months in order": [_members(s) for s in month_runs],
        "months in random order": [_members(_shuffled(s, rng)) for s in month_runs],
        "number words and months in order": [
            _interleaved(_WORDS[i : i + 5], _MONTHS[i : i + 4]) for i in range(5)
        ],
        "random number words, months in order": [
            _interleaved(random_words, _MONTHS[i : i + 4]) for i in range(5)
        ],
    }


def _word_token(offsets: list[tuple[int, int]], start: int, end: int) -> int:
    """The last token overlapping characters [start, end) (a word split into pieces is
    read at its last piece, where it has been seen whole)."""
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    return hits[-1]


def tokenize_group(
    name: str, prompts: list[TextPrompt], tokenizer: Any, bos: int | None
) -> list[PromptGroup]:
    """`prompts` tokenized, split by token length (a heatmap averages prompts of one
    length); named positions at their words' last tokens, END at the last token."""
    enc = tokenizer([p.text for p in prompts], add_special_tokens=False,
                    return_offsets_mapping=True)  # fmt: skip
    lead = [] if bos is None else [bos]
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(enc["input_ids"]):
        by_len.setdefault(len(ids), []).append(i)
    groups = []
    for length, members in sorted(by_len.items()):
        positions: dict[str, list[int]] = {}
        for i in members:
            offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"][i]]
            for pos, start, end in prompts[i].words:
                positions.setdefault(pos, []).append(_word_token(offsets, start, end) + len(lead))
            positions.setdefault("END", []).append(length - 1 + len(lead))
        tokens = np.asarray([lead + list(enc["input_ids"][i]) for i in members], dtype=np.int64)
        label = name if len(by_len) == 1 else f"{name} ({length} tokens)"
        groups.append(PromptGroup(
            name=label, tokens=tokens,
            positions={k: np.asarray(v, dtype=np.int64) for k, v in positions.items()},
            token_text=token_strings(tokenizer, tokens[0].tolist()),
            texts=tuple(prompts[i].text for i in members),
        ))  # fmt: skip
    return groups


def builtin_groups(which: str, tokenizer: Any, bos: int | None, seed: int = 0) -> list[PromptGroup]:
    """The prompt groups of `--builtin NAME` for a model's tokenizer."""
    if which not in BUILTINS:
        raise InputError(
            f"--builtin {which!r} is not a built-in prompt set", code="E361",
            hint="built-in: " + ", ".join(BUILTINS),
        )  # fmt: skip
    out: list[PromptGroup] = []
    for name, prompts in mixed_prompts(seed).items():
        out += tokenize_group(name, prompts, tokenizer, bos)
    return out
