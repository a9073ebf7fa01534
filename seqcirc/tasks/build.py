"""TaskSpec -> TokenizedTask: the one entry point the evaluator and the CLI call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.language.vocab import MULTI_TOKEN_METRICS
from seqcirc.plan import TaskSpec
from seqcirc.tasks.generate import generate_prompts, parse_config
from seqcirc.tasks.prompt_files import load_prompt_file
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.tokenization import tokenize_records
from seqcirc.tasks.types import TokenizedTask


def prompt_records(
    spec: TaskSpec, *, base_dir: Path | None = None, seed: int | None = None
) -> tuple[list[PromptRecord], dict[str, object]]:
    """The task's text prompts and the meta describing where they came from.

    `seed` is the file-level default; a seed in the task's own parameters wins.
    """
    if (spec.generator is None) == (spec.file is None):
        raise InputError(
            f"task {spec.name}: give either a built-in sequence or a prompt file, "
            + ("not both" if spec.file else "neither was given"),
            code="T100",
        )
    if spec.file is not None:
        records = load_prompt_file(spec.file, base_dir)
        return records, {"source": "file", "file": spec.file, "n_prompts": len(records)}
    cfg = parse_config(spec, seed)
    records = generate_prompts(spec, seed)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.template] = counts.get(r.template, 0) + 1
    meta: dict[str, object] = {
        "source": "generator",
        "generator": cfg.generator,
        "params": cfg.as_params(),
        "seed": cfg.seed,
        "template_counts": counts,
        "correct": spec.correct,
        "incorrect": spec.incorrect,
    }
    return records, meta


def build_task(
    spec: TaskSpec,
    tokenizer: Any,
    *,
    prepend_bos: bool,
    base_dir: Path | None = None,
    seed: int | None = None,
) -> TokenizedTask:
    """Generate or load the task's prompts and tokenize them with the model's tokenizer.

    tokenizer: a Hugging Face fast tokenizer (PreTrainedTokenizerBase). prepend_bos is
    the model's default; the task's `bos` setting overrides it (spec.effective_bos).
    Positions count the BOS token when one is prepended. An answer may be several tokens
    when the task's metric reads them all (MULTI_TOKEN_METRICS). Raises InputError on any
    tokenization problem.
    """
    records, meta = prompt_records(spec, base_dir=base_dir, seed=seed)
    meta["filter_correct"] = spec.filter_correct
    meta["metric"] = spec.metric
    bos = spec.effective_bos(prepend_bos)
    meta["bos"] = "on" if bos else "off"
    generation = spec.generation
    if generation is not None:
        meta["generation"] = generation.to_meta()
    return tokenize_records(
        records, tokenizer, name=spec.name, prepend_bos=bos, meta=meta,
        multi_token=spec.metric in MULTI_TOKEN_METRICS, generates=generation is not None,
    )  # fmt: skip
