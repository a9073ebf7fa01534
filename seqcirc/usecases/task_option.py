"""The prompts a command that inspects one model reads (`seqcirc lens`, `seqcirc
attention`), from its `--task` and `--prompts` options:

- `--task SET`: an ordered set's generated prompts, `--prompts N` of them (default 66,
  one third per template) drawn with `--seed`, as `seqcirc roles --attends` builds them;
- `--task FILE.jsonl|.csv` or `--prompts FILE`: a prompt file, as `task t =
  file("...")` reads it (named positions included);
- `--task FILE.circ:TASK`: that file's task exactly as it states it (its own prompt
  count, seed and `filter correct`).
`--filter` applies the paper's filter (the model's top-1 right and p(correct) >
2 p(incorrect)) where the task does not already say so. Everything that can be checked
without the model is checked before it loads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError, did_you_mean
from seqcirc.plan import TaskSpec, params
from seqcirc.usecases.limits import check_option_sizes

DEFAULT_PROMPTS = 66  # as `seqcirc roles --prompts`: 22 per template
_FILE_SUFFIXES = (".jsonl", ".ndjson", ".csv")
_EXAMPLE = "e.g. --task months, --task prompts.jsonl or --task hypotheses/months.circ:months"


@dataclass(frozen=True)
class TaskOption:
    spec: TaskSpec
    base_dir: Path  # where a prompt file's relative path is read from
    seed: int


def _count_or_file(prompts: str | None) -> tuple[int | None, str | None]:
    """--prompts: a whole number (prompts generated for --task SET) or a prompt file."""
    if prompts is None:
        return None, None
    text = prompts.strip()
    return (int(text), None) if text.isdigit() else (None, text)


def _from_circ(ref: str, seed: int) -> TaskOption:
    from seqcirc.plan.compile import compile_file

    file, _, name = ref.rpartition(":")
    plan = compile_file(file)
    specs = {c.task.name: c.task for c in plan.circuits}
    if name not in specs:
        raise InputError(
            f"{file}: no circuit is evaluated on a task named {name!r}",
            code="T403",
            hint=did_you_mean(name, specs) + "tasks: " + ", ".join(sorted(specs)),
        )
    return TaskOption(specs[name], Path(file).parent, plan.seed)


def _from_set(name: str, count: int | None, seed: int) -> TaskOption:
    from seqcirc.tasks.generate import parse_config
    from seqcirc.tasks.sets import ORDERED_SETS

    if name not in ORDERED_SETS:
        raise InputError(
            f"--task {name!r} is not an ordered set, a prompt file or FILE.circ:TASK",
            code="E361",
            hint=did_you_mean(name, ORDERED_SETS) + _EXAMPLE,
        )
    n = DEFAULT_PROMPTS if count is None else count
    if n < 1:
        raise InputError("--prompts must be at least 1", code="E361")
    spec = TaskSpec(name=name, generator=name, params=params(prompts=n, seed=seed))
    parse_config(spec, seed)  # a count that is no multiple of 3, before the model loads
    return TaskOption(spec, Path.cwd(), seed)


def _from_file(path: str, seed: int) -> TaskOption:
    from seqcirc.tasks.prompt_files import load_prompt_file

    load_prompt_file(path)  # every problem of the file, before the model loads
    return TaskOption(TaskSpec(name=Path(path).stem, file=path), Path.cwd(), seed)


def resolve_task(
    task: str | None, prompts: str | None, *, seed: int = 0, filter_correct: bool = False
) -> TaskOption:
    """The task `--task`/`--prompts` name (see the module docstring), checked."""
    count, file = _count_or_file(prompts)
    check_option_sizes("E361", seed=(seed, "seed"), prompts=(count or 0, "prompts"))
    if file is not None and task is not None:
        raise InputError(
            "give --task or --prompts FILE, not both", code="E361",
            hint="--prompts N counts the prompts generated for --task SET",
        )  # fmt: skip
    if task is None and file is None:
        raise InputError("no prompts: give --task or --prompts FILE", code="E361", hint=_EXAMPLE)
    if task is not None and ":" in task and task.rpartition(":")[0].endswith(".circ"):
        if count is not None:
            raise InputError("--prompts N is for --task SET; FILE.circ:TASK states its "
                             "own prompts", code="E361")  # fmt: skip
        option = _from_circ(task, seed)
    elif file is not None or (task is not None and task.endswith(_FILE_SUFFIXES)):
        option = _from_file(str(file or task), seed)
    else:
        assert task is not None
        option = _from_set(task, count, seed)
    if filter_correct:
        option = replace(option, spec=replace(option.spec, filter_correct=True))
    return option


def build_for(option: TaskOption, loaded: Any) -> Any:
    """The task's prompts tokenized for `loaded` (a LoadedModel), filtered when it says
    `filter correct` (or --filter): a TokenizedTask and the filter's summary line."""
    from seqcirc.tasks.for_model import task_for_model

    task, report = task_for_model(
        option.spec, loaded, seed=option.seed, base_dir=option.base_dir,
        none_kept=InputError(
            f"task {option.spec.name}: the filter kept no prompts", code="T406",
            hint="the model gets none right with p(correct) > 2 p(incorrect); drop --filter",
        ),
    )  # fmt: skip
    return task, (None if report is None else report.summary())
