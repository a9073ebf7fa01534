"""A TokenizedTask as JSONL: the exact prompts, token ids and answers a run used.

One JSON object per prompt, keys sorted, so anyone can reproduce a result outside
seqcirc (and diff two exports byte for byte). The first line holds no prompt: it is
{"task": ..., "meta": {...}} with the generator, parameters and seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from seqcirc.tasks.tokenization import PER_PROMPT_META
from seqcirc.tasks.types import TokenizedTask


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _per_prompt(task: TokenizedTask, key: str) -> list[Any] | None:
    """meta[key] when it has one entry per prompt. TokenizedTask.subset copies meta
    unchanged, so after filtering these lists no longer match the prompts."""
    value = task.meta.get(key)
    if isinstance(value, tuple | list) and len(value) == task.n_prompts:
        return list(value)
    return None


def _answers(task: TokenizedTask, key: str, ids: Any, tokenizer: Any) -> list[str]:
    texts = _per_prompt(task, key)
    if texts is not None:
        return texts
    if tokenizer is None:
        raise ValueError(
            f"task {task.name}: meta[{key!r}] does not match the {task.n_prompts} prompts "
            "(a subset?); pass the tokenizer to decode the answer ids"
        )
    return [tokenizer.decode([int(t) for t in row[:n]]) for row, n in zip(*ids, strict=True)]


def export_lines(task: TokenizedTask, tokenizer: Any = None) -> list[str]:
    """The JSONL lines (without newlines) describing `task`.

    Answer texts come from the task's meta; for a subset of a task (whose meta still
    lists every prompt's answer) the tokenizer decodes the answer ids instead.
    """
    meta = {k: v for k, v in task.meta.items() if k not in PER_PROMPT_META}
    lines = [json.dumps({"task": task.name, "meta": _plain(meta)}, sort_keys=True)]
    correct_ids, incorrect_ids = task.answer_ids("correct"), task.answer_ids("incorrect")
    correct_text = _answers(task, "correct_text", correct_ids, tokenizer)
    incorrect_text = _answers(task, "incorrect_text", incorrect_ids, tokenizer)
    templates = _per_prompt(task, "templates")
    for i in range(task.n_prompts):
        row: dict[str, Any] = {
            "index": i,
            "clean": task.clean_text[i] if task.clean_text else None,
            "corrupted": task.corrupted_text[i] if task.corrupted_text else None,
            "correct": correct_text[i],
            "incorrect": incorrect_text[i],
            "clean_ids": task.real_ids(i, "clean"),  # without the right padding
            "corrupted_ids": task.real_ids(i, "corrupted"),
            "correct_id": int(task.correct[i]),
            "incorrect_id": int(task.incorrect[i]),
            "positions": {k: int(v[i]) for k, v in sorted(task.positions.items())},
        }
        if task.multi_token:  # every answer token (correct_id: the first)
            for key, (ids, n) in (("correct_ids", correct_ids), ("incorrect_ids", incorrect_ids)):
                row[key] = ids[i, : n[i]].tolist()
        if templates is not None:
            row["template"] = templates[i]
        lines.append(json.dumps(row, sort_keys=True, ensure_ascii=False))
    return lines


def write_export(task: TokenizedTask, out: str | Path | TextIO, tokenizer: Any = None) -> int:
    """Write `task` as JSONL to a path or an open text stream; returns the prompt count."""
    text = "".join(line + "\n" for line in export_lines(task, tokenizer))
    if isinstance(out, str | Path):
        Path(out).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return task.n_prompts
