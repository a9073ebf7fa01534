"""`seqcirc data export`: a .circ file's task, tokenized for one of its models, as JSONL.

The task's prompts are tokenized with the tokenizer of the model a circuit pairs them
with (positions depend on it), and, when the task says `filter correct`, filtered by
that model exactly as an evaluation would, so the export is the prompt set a result used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from seqcirc.errors import InputError, did_you_mean
from seqcirc.plan import ModelRef, Plan, TaskSpec


@dataclass(frozen=True)
class ExportSummary:
    task: str
    model: str
    n_prompts: int
    filter: str | None  # the filter's summary line, None when not applied


def select_task(plan: Plan, task: str | None, model: str | None) -> tuple[TaskSpec, ModelRef]:
    """The named task and the model it is evaluated on in `plan`."""
    pairs: dict[str, dict[str, tuple[TaskSpec, ModelRef]]] = {}
    for c in plan.circuits:
        pairs.setdefault(c.task.name, {}).setdefault(c.model.name, (c.task, c.model))
    if not pairs:
        raise InputError(f"{plan.source}: no circuit uses a task", code="T401")
    if task is None:
        if len(pairs) > 1:
            raise InputError(
                f"{plan.source} has several tasks: {', '.join(sorted(pairs))}",
                code="T402",
                hint="choose one with --task NAME",
            )
        task = next(iter(pairs))
    if task not in pairs:
        raise InputError(
            f"{plan.source}: no circuit is evaluated on a task named {task!r}",
            code="T403",
            hint=did_you_mean(task, pairs) + "tasks: " + ", ".join(sorted(pairs)),
        )
    models = pairs[task]
    if model is None:
        if len(models) > 1:
            raise InputError(
                f"task {task} is evaluated on several models: {', '.join(sorted(models))}; "
                "their tokenizers give different token ids",
                code="T404",
                hint="choose one with --model NAME",
            )
        model = next(iter(models))
    if model not in models:
        raise InputError(
            f"task {task} is not evaluated on model {model!r}",
            code="T405",
            hint="models for this task: " + ", ".join(sorted(models)),
        )
    return models[model]


def export_circ_task(
    circ_file: str | Path,
    out: str | Path | TextIO,
    *,
    task: str | None = None,
    model: str | None = None,
    apply_filter: bool = True,
    tokenizer: str | Path | None = None,
    seed: int | None = None,
    prompts: int | None = None,
    device: str = "auto",
) -> ExportSummary:
    """Compile `circ_file`, build the task for its model, filter if asked, write JSONL.
    `seed` and `prompts` override the file's as `seqcirc test --seed/--prompts` do.

    With `tokenizer` (a folder), no model is loaded: see export_with_tokenizer."""
    from seqcirc.models.load import load_model
    from seqcirc.plan.compile import compile_file
    from seqcirc.report.files import check_writable, write_text
    from seqcirc.tasks.export import export_lines, write_export
    from seqcirc.tasks.for_model import task_for_model
    from seqcirc.usecases.session import Options, apply_options

    if isinstance(out, str | Path):  # before the model loads: a bad path fails fast
        check_writable(out, "exported prompts")
    plan = apply_options(compile_file(circ_file), Options(seed=seed, prompts=prompts))
    spec, ref = select_task(plan, task, model)
    base = Path(circ_file).parent
    if tokenizer is not None:
        return export_with_tokenizer(spec, ref, out, Path(tokenizer), base, plan.seed, apply_filter)
    loaded = load_model(ref.name, base_dir=base, device=device)
    data, report = task_for_model(
        spec, loaded, seed=plan.seed, base_dir=base, apply_filter=apply_filter,
        none_kept=InputError(
            f"task {spec.name}: the filter kept no prompts on {ref.name}", code="T406",
            hint="the model gets none right with p(correct) > 2 p(incorrect); "
            "use --unfiltered to export the generated prompts",
        ),
    )  # fmt: skip
    data.meta["model"] = loaded.identity.to_dict()
    if isinstance(out, str | Path):
        text = "".join(line + "\n" for line in export_lines(data, loaded.tokenizer))
        write_text(out, text, "exported prompts")
    else:
        write_export(data, out, loaded.tokenizer)
    summary = None if report is None else report.summary()
    return ExportSummary(spec.name, ref.name, data.n_prompts, summary)


def export_with_tokenizer(
    spec: TaskSpec, ref: ModelRef, out: str | Path | TextIO, folder: Path, base: Path,
    seed: int, apply_filter: bool,
) -> ExportSummary:  # fmt: skip
    """The task tokenized with the tokenizer in `folder` alone (offline, no weights).

    `bos auto` resolves to on, as TransformerLens prepends BOS for every model seqcirc
    loads; `bos on|off` is honoured. A task with `filter correct` needs `--unfiltered`
    (T407): the filter runs the model, and an unfiltered export must not pass for the
    filtered prompt set a result used."""
    from seqcirc.tasks.build import build_task
    from seqcirc.tasks.export import write_export

    if spec.filter_correct and apply_filter:
        raise InputError(
            f"task {spec.name} says `filter correct`, which runs the model; "
            "--tokenizer exports without one",
            code="T407",
            hint="add --unfiltered to export every prompt, or drop --tokenizer",
        )
    tok = load_tokenizer(folder)
    data = build_task(spec, tok, prepend_bos=True, base_dir=base, seed=seed)
    data.meta["model"] = {"name": ref.name, "tokenizer": str(folder), "weights": None}
    write_export(data, out, tok)
    return ExportSummary(spec.name, f"{ref.name}, tokenizer {folder}", data.n_prompts, None)


def load_tokenizer(folder: Path) -> Any:
    """A Hugging Face tokenizer from a local folder only (never the hub)."""
    from transformers import AutoTokenizer

    if not folder.is_dir():
        raise InputError(f"tokenizer folder {folder} not found", code="T408")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise InputError(
            f"no tokenizer in {folder}: {err}",
            code="T408",
            hint="the folder needs tokenizer.json (and tokenizer_config.json), "
            "as tokenizer.save_pretrained(folder) writes them",
        ) from None
