"""A task's prompts for one loaded model: built with its tokenizer and, when the task
says `filter correct`, filtered by it (the paper's p(correct) > 2 p(incorrect)). Every
command that needs a model's prompts (test, discover, data export, compare) builds them
here, so they are the same prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.plan import TaskSpec
from seqcirc.progress import phase
from seqcirc.tasks.build import build_task
from seqcirc.tasks.filtering import FilterReport, keep_prompts, model_filter
from seqcirc.tasks.generate import partner_spec
from seqcirc.tasks.types import TokenizedTask


def task_for_model(
    spec: TaskSpec,
    loaded: Any,
    *,
    none_kept: InputError,
    seed: int | None = None,
    base_dir: Path | None = None,
    apply_filter: bool = True,
) -> tuple[TokenizedTask, FilterReport | None]:
    """The task built for `loaded` (a seqcirc.models.load.LoadedModel) and its filter's
    report (None when not filtered). `none_kept` is raised when the filter keeps no prompt:
    each command words it for its own user (a hint that fits its options). A generated
    task with `filter_with=SEQ` is filtered jointly: prompt i is kept only if its version
    in SEQ (the same draws) passes too."""
    task = build_task(
        spec, loaded.tokenizer, prepend_bos=loaded.identity.prepend_bos, base_dir=base_dir,
        seed=seed,
    )  # fmt: skip
    if not (spec.filter_correct and apply_filter):
        return task, None
    with phase(f"filter {spec.name}", total=task.n_prompts, unit="prompts"):
        kept, report = model_filter(task, loaded.bridge)
    partner = dict(spec.params).get("filter_with")
    if partner is not None:  # the joint filter: prompt i's version in `partner` passes too
        other = build_task(
            partner_spec(spec), loaded.tokenizer, prepend_bos=loaded.identity.prepend_bos,
            base_dir=base_dir, seed=seed,
        )  # fmt: skip
        with phase(f"filter {spec.name} ({partner})", total=other.n_prompts, unit="prompts"):
            _, other_report = model_filter(other, loaded.bridge)
        report = report.joined(other_report, str(partner))
        kept = keep_prompts(task, report.kept)
        kept.meta["filter"] = report.as_dict()
    if report.n_kept == 0:
        raise none_kept
    return kept, report
