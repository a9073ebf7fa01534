"""Tokenizers for the task tests, built in code (no hub here).

word_level_tokenizer: a WordLevel vocabulary over seqcirc.tasks.sets (the bundled
model's kind). bpe_tokenizer: a GPT-2-like byte-level BPE whose merges make exactly the
given words single tokens (with "Ġ" for a leading space), so tests choose which members
split and into what. random_task: random token ids with given answer positions, for
forward tests that need no meaning.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from seqcirc.tasks.sets import NAMES, ORDERED_SETS, TEMPLATES
from seqcirc.tasks.types import TokenizedTask

BOS = "<bos>"
UNK = "[UNK]"


def task_vocabulary(exclude: Iterable[str] = ()) -> list[str]:
    words: list[str] = [UNK, BOS, ".", ","]
    for members in ORDERED_SETS.values():
        words.extend(members)
    words.extend(NAMES)
    for text in TEMPLATES.values():
        words.extend(text.split())
    words.extend(["was", "In"])
    skip = set(exclude)
    out: list[str] = []
    for w in words:
        if w not in out and w not in skip:
            out.append(w)
    return out


def word_level_tokenizer(
    exclude: Iterable[str] = (), extra: Iterable[str] = (), punctuation: bool = True
) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(task_vocabulary(exclude) + list(extra))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    splits = [pre_tokenizers.WhitespaceSplit()]
    if punctuation:
        splits.append(pre_tokenizers.Punctuation())
    tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, unk_token=UNK)


def prefix_merges(words: Iterable[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges that build each word (its first character already in `vocab`) one
    character at a time; the new tokens are added to `vocab`. Every merge extends a
    prefix by one character, so merges never compete."""
    merges: list[tuple[str, str]] = []
    for word in words:
        left = word[0]
        for ch in word[1:]:
            if left + ch not in vocab:
                merges.append((left, ch))
                vocab[left + ch] = len(vocab)
            left += ch
    return merges


def bpe_tokenizer(spaced: Iterable[str], *, trim_offsets: bool = False) -> PreTrainedTokenizerFast:
    """Byte-level BPE: each word in `spaced` is one token " word" (as "Ġword"); everything
    else falls apart into smaller pieces. Like GPT-2 with add_prefix_space=True, the
    prompt's first word also gets its "Ġ" (so no bare-word merges can collide)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {"<|endoftext|>": 0}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    merges = prefix_merges(["Ġ" + w for w in spaced], vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=trim_offsets)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>")


def gpt2_like(
    exclude: Iterable[str] = (), *, trim_offsets: bool = False
) -> PreTrainedTokenizerFast:
    """Every task word is one token with its leading space, except those in `exclude`."""
    skip = set(exclude)
    words = [w for w in task_vocabulary() if w not in (UNK, BOS, ".", ",") and w not in skip]
    return bpe_tokenizer(words, trim_offsets=trim_offsets)


def random_task(seed: int, vocab: int, seq: int, **positions: list[int]) -> TokenizedTask:
    """Random clean and corrupted ids [n, seq] and answers (drawn in that order from
    default_rng(seed)); n = len(positions["END"]), each named position one per prompt."""
    rng, n = np.random.default_rng(seed), len(positions["END"])
    return TokenizedTask(
        name="random",
        clean=rng.integers(0, vocab, (n, seq)),
        corrupted=rng.integers(0, vocab, (n, seq)),
        correct=rng.integers(0, vocab, n),
        incorrect=rng.integers(0, vocab, n),
        positions={name: np.array(p) for name, p in positions.items()},
    )
