"""The paper's prompt generators: "{N1} born in {S1}. ... {N5} born in" -> " {S5}".

generate_prompts(spec, seed) turns a TaskSpec naming a built-in ordered set into text
prompt pairs (clean, corrupted) with the answer continuations and named positions.
Everything random comes from one numpy Generator seeded by the task, drawn in prompt
order, so the same seed gives byte-identical prompts on every run and machine.

Parameters (TaskSpec.params):
  template  born_in | done_in | lost_in | all (equal thirds, interleaved) | a free
            template with {N} and {S} for one unit, e.g. "{N} was born in {S}."
  members   members shown (>= 2; default 4, the fifth is predicted)
  prompts   number of prompts (default 1536 = 3 x 512, as in the paper)
  seed      random seed (default: the seed passed in, else 0)
  interval  k in a, a+k, a+2k, ... (default 1)
  range     how many members of the set are used (default DEFAULT_RANGE)
  start     S1 is one of the first `start` members (default: as many as keep the
            answer inside the range; 8 for 12 members, 4 shown, k = 1)
  fillers   names (default: seqcirc's first names, which seqcirc-mini knows) | paper
            (the authors' object nouns for done/lost, their first names for born)
  s1        random (default: S1 drawn uniformly from the first `start` members) |
            balanced (the authors': within each template every one of the first `start`
            members is S1 equally often, counts differing by at most one, in a seeded order)
  filter_with  another sequence: with `filter correct`, prompt i is kept only if its
            version in that sequence (the same draws) passes too (the authors' joint
            filter of number words and months; seqcirc.tasks.for_model runs it)
  step      numerals only: the members are step, 2 step, ..., 100 step (default 1), so
            step=10 gives "10 20 30 40" -> " 50" (members_of)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from seqcirc.errors import InputError, did_you_mean
from seqcirc.language.vocab import (
    CORRECT_CHOICES,
    DEFAULT_MEMBERS,
    DEFAULT_PROMPTS,
    INCORRECT_CHOICES,
    LIMITS,
    S1_CHOICES,
    STEP_SEQUENCES,
    TASK_PARAMS,
    TEMPLATES,
)
from seqcirc.plan import TaskSpec
from seqcirc.tasks.corrupt import CorruptionSpec, corrupt_members, parse_corruption
from seqcirc.tasks.records import PromptRecord, WordSpan
from seqcirc.tasks.sets import DEFAULT_RANGE, ORDERED_SETS, fillers_for


@dataclass(frozen=True)
class GeneratorConfig:
    """A generator's parameters after validation, with every default filled in."""

    generator: str
    templates: tuple[tuple[str, str], ...]  # (template key, unit text with {N} and {S})
    members: int
    prompts: int
    seed: int
    interval: int
    start: int
    range: int
    corruption: CorruptionSpec
    fillers: str = "names"
    s1: str = "random"
    filter_with: str | None = None
    step: int = 1

    def as_params(self) -> dict[str, object]:
        """The resolved parameters, for TokenizedTask.meta and exports."""
        keys = [k for k, _ in self.templates]
        return {
            "template": keys[0] if len(keys) == 1 else "all",
            "templates": {k: unit for k, unit in self.templates},
            "members": self.members,
            "prompts": self.prompts,
            "seed": self.seed,
            "interval": self.interval,
            "start": self.start,
            "range": self.range,
            "corruption": self.corruption.kind,
            "no_successor_end": self.corruption.no_successor_end,
        } | self._options()

    def _options(self) -> dict[str, object]:
        """The options at other than their defaults (so earlier metas are unchanged)."""
        out: dict[str, object] = {"fillers": self.fillers, "s1": self.s1}
        out = {k: v for k, v in out.items() if v != {"fillers": "names", "s1": "random"}[k]}
        out |= {"step": self.step} if self.step != 1 else {}
        return out | ({"filter_with": self.filter_with} if self.filter_with else {})


def _unit(template_words: str) -> str:
    return "{N} " + template_words + " {S}."


def _int_param(task: str, raw: dict[str, object], key: str, default: int, low: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"task {task}: {key} must be an integer, got {value!r}", code="T102")
    if value < low:
        raise InputError(f"task {task}: {key} must be >= {low}, got {value}", code="T102")
    return value


def _parse_template(task: str, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, str):
        raise InputError(f"task {task}: template must be a string, got {value!r}", code="T103")
    if value == "all":
        return tuple((k, _unit(words)) for k, words in TEMPLATES.items())
    if value in TEMPLATES:
        return ((value, _unit(TEMPLATES[value])),)
    if "{N}" in value or "{S}" in value:
        if value.count("{N}") != 1 or value.count("{S}") != 1:
            raise InputError(
                f"task {task}: a free template needs exactly one {{N}} and one {{S}}: {value!r}",
                code="T103",
                hint='e.g. template="{N} was born in {S}."',
            )
        if not value[: value.index("{S}")].strip():
            raise InputError(
                f"task {task}: the template must have words before {{S}}: {value!r}",
                code="T103",
                hint="the last unit is cut just before {S}; that part ends the prompt",
            )
        return (("custom", value),)
    raise InputError(
        f"task {task}: unknown template {value!r}",
        code="T103",
        hint=did_you_mean(value, [*TEMPLATES, "all"])
        + "use born_in, done_in, lost_in, all, or a free template with {N} and {S}",
    )


def parse_config(spec: TaskSpec, seed: int | None = None) -> GeneratorConfig:
    """Validate spec.generator and spec.params; fill defaults. Errors name the task."""
    task = spec.name
    gen, raw = _check_names(spec)
    templates = _parse_template(task, raw.get("template", "all"))
    members = _int_param(task, raw, "members", DEFAULT_MEMBERS, 2)
    prompts = _int_param(task, raw, "prompts", DEFAULT_PROMPTS, 1)
    interval = _int_param(task, raw, "interval", 1, 1)
    seed_used = _int_param(task, raw, "seed", 0 if seed is None else seed, 0)
    n_range, start = _range_and_start(task, gen, raw, members, interval)
    if len(templates) > 1 and prompts % len(templates):
        raise InputError(
            f"task {task}: template=all splits prompts into equal thirds, "
            f"but prompts={prompts} is not a multiple of 3",
            code="T106",
            hint=f"use prompts={prompts - prompts % 3} or {prompts - prompts % 3 + 3}, "
            "or name one template",
        )
    fillers = raw.get("fillers", "names")
    if fillers not in ("names", "paper"):
        raise InputError(
            f"task {task}: unknown fillers {fillers!r}", code="T102", hint="fillers: names, paper"
        )
    pool = min(len(fillers_for(str(fillers), key)) for key, _ in templates)
    if members + 1 > pool:
        raise InputError(
            f"task {task}: {members + 1} distinct names needed, only {pool} exist",
            code="T105",
        )
    corruption = parse_corruption(task, spec.corruption, spec.corruption_params)
    return GeneratorConfig(
        gen, templates, members, prompts, seed_used, interval, start, n_range, corruption,
        str(fillers), _s1(task, raw), _filter_with(spec, gen, raw), _step(task, gen, raw),
    )  # fmt: skip


def _step(task: str, gen: str, raw: dict[str, object]) -> int:
    step = _int_param(task, raw, "step", 1, 1)
    if step > LIMITS["step"]:
        raise InputError(f"task {task}: step must be <= {LIMITS['step']}, got {step}", code="T102")
    if step != 1 and gen not in STEP_SEQUENCES:
        raise InputError(
            f"task {task}: step applies to {', '.join(STEP_SEQUENCES)}, not {gen}",
            code="T102",
            hint="leave step out, or use sequence(numerals, step=10)",
        )
    return step


def members_of(cfg: GeneratorConfig) -> tuple[str, ...]:
    """The ordered set a task draws from: the set itself, or its numerals times `step`
    (10, 20, ..., 1000 for step=10)."""
    words = ORDERED_SETS[cfg.generator]
    return words if cfg.step == 1 else tuple(str(cfg.step * int(w)) for w in words)


def _s1(task: str, raw: dict[str, object]) -> str:
    value = raw.get("s1", "random")
    if value not in S1_CHOICES:
        raise InputError(
            f"task {task}: unknown s1 {value!r}", code="T102", hint="s1: random, balanced"
        )
    return str(value)


def _filter_with(spec: TaskSpec, gen: str, raw: dict[str, object]) -> str | None:
    """The partner sequence of the joint filter, checked: a filter to join, another set
    whose prompts the same parameters generate (the partner's own config must parse)."""
    value = raw.get("filter_with")
    if value is None:
        return None
    task = spec.name
    if not isinstance(value, str) or value not in ORDERED_SETS or value == gen:
        raise InputError(
            f"task {task}: filter_with must name another sequence, got {value!r}",
            code="T102",
            hint=did_you_mean(str(value), ORDERED_SETS) + "e.g. filter_with=months",
        )
    if not spec.filter_correct:
        raise InputError(
            f"task {task}: filter_with={value} joins the filter, but the task has none",
            code="T102",
            hint="add `filter correct` to the task",
        )
    parse_config(partner_spec(spec))  # T105 where its set is too small for the parameters
    return value


def partner_spec(spec: TaskSpec) -> TaskSpec:
    """The task's prompts in its `filter_with` sequence: the same parameters and seed, so
    prompt i differs only in the members' set; no joint filter of its own."""
    params = dict(spec.params)
    partner = str(params.pop("filter_with"))
    return replace(
        spec, name=f"{spec.name}[{partner}]", generator=partner, params=tuple(params.items())
    )


def _s1_order(cfg: GeneratorConfig, rng: np.random.Generator) -> list[int] | None:
    """s1=balanced: prompt i's S1 index; within each template the first `start` members
    equally often (at most one apart), shuffled by the task's generator. None: random."""
    if cfg.s1 != "balanced":
        return None
    n_templates = len(cfg.templates)
    out = [0] * cfg.prompts
    for t in range(n_templates):
        slots = list(range(t, cfg.prompts, n_templates))
        values = rng.permutation(np.resize(np.arange(cfg.start), len(slots)))
        for i, v in zip(slots, values, strict=True):
            out[i] = int(v)
    return out


def _check_names(spec: TaskSpec) -> tuple[str, dict[str, object]]:
    """The generator and the raw parameters, once both name things that exist (and the
    answers are the ones generated tasks score)."""
    task = spec.name
    gen = spec.generator
    if gen is None or gen not in ORDERED_SETS:
        raise InputError(
            f"task {task}: unknown sequence {gen!r}",
            code="T101",
            hint=did_you_mean(str(gen), ORDERED_SETS)
            + "built-in sequences: "
            + ", ".join(ORDERED_SETS),
        )
    raw = dict(spec.params)
    for key in raw:
        if key not in TASK_PARAMS:
            raise InputError(
                f"task {task}: unknown parameter {key!r} for sequence {gen}",
                code="T102",
                hint=did_you_mean(key, TASK_PARAMS) + "parameters: " + ", ".join(TASK_PARAMS),
            )
    if spec.correct not in CORRECT_CHOICES or spec.incorrect not in INCORRECT_CHOICES:
        raise InputError(
            f"task {task}: unsupported answer tokens correct={spec.correct}, "
            f"incorrect={spec.incorrect}",
            code="T104",
            hint="generated tasks score correct=next against incorrect=last (the paper's metric)",
        )
    return gen, raw


def _range_and_start(
    task: str, gen: str, raw: dict[str, object], members: int, interval: int
) -> tuple[int, int]:
    """range= and start=, checked against the set's size and the members shown."""
    n_set = len(ORDERED_SETS[gen])
    n_range = _int_param(task, raw, "range", DEFAULT_RANGE[gen], 2)
    if n_range > n_set:
        raise InputError(
            f"task {task}: range={n_range} but {gen} has only {n_set} members",
            code="T105",
        )
    # The answer is member S1 + members*interval; it must stay inside the range.
    max_start = n_range - members * interval
    if max_start < 1:
        raise InputError(
            f"task {task}: {members} members at interval {interval} need at least "
            f"{members * interval + 1} members, but range={n_range}",
            code="T105",
            hint="show fewer members, use a smaller interval, or a larger range",
        )
    start = _int_param(task, raw, "start", max_start, 1)
    if start > max_start:
        raise InputError(
            f"task {task}: start={start} would put answers past member {n_range} "
            f"(range={n_range}, members={members}, interval={interval})",
            code="T105",
            hint=f"use start <= {max_start}",
        )
    return n_range, start


def render(
    unit: str, names: Sequence[str], members: Sequence[str]
) -> tuple[str, str, list[WordSpan]]:
    """The prompt text for `unit` repeated len(members) times plus the final cut unit.

    Returns (text, answer separator, named spans). len(names) == len(members) + 1; the
    final unit stops before {S}; the separator is the whitespace the answer follows.
    """
    parts: list[str] = []
    spans: list[WordSpan] = []
    length = 0

    def emit(piece: str, name: str | None) -> None:
        nonlocal length
        if name is not None:
            spans.append((name, length, length + len(piece)))
        parts.append(piece)
        length += len(piece)

    def emit_unit(text: str, n_i: int) -> None:
        # Split on the placeholders, keeping text order ({S} may come before {N}).
        i = 0
        while i < len(text):
            if text.startswith("{N}", i):
                emit(names[n_i], f"N{n_i + 1}")
                i += 3
            elif text.startswith("{S}", i):
                emit(members[n_i], f"S{n_i + 1}")
                i += 3
            else:
                j = i + 1
                while j < len(text) and not text.startswith(("{N}", "{S}"), j):
                    j += 1
                emit(text[i:j], None)
                i = j

    for i in range(len(members)):
        if i:
            emit(" ", None)
        emit_unit(unit, i)
    head = unit[: unit.index("{S}")]
    last = head.rstrip()
    emit(" ", None)
    emit_unit(last, len(members))
    return "".join(parts), head[len(last) :], spans


def generate_prompts(spec: TaskSpec, seed: int | None = None) -> list[PromptRecord]:
    """Text prompt pairs for a TaskSpec with a built-in generator.

    `seed` is used only when spec.params has no seed. Prompt i uses template
    i % len(templates), so any prefix of the list mixes the templates evenly.
    """
    cfg = parse_config(spec, seed)
    rng = np.random.default_rng(cfg.seed)
    words = members_of(cfg)
    n_templates = len(cfg.templates)
    steps = np.arange(cfg.members, dtype=np.int64) * cfg.interval
    balanced = _s1_order(cfg, rng)
    out: list[PromptRecord] = []
    for i in range(cfg.prompts):
        key, unit = cfg.templates[i % n_templates]
        s1 = int(rng.integers(0, cfg.start)) if balanced is None else balanced[i]
        clean_idx = s1 + steps
        pool = fillers_for(cfg.fillers, key)
        name_idx = rng.choice(len(pool), size=cfg.members + 1, replace=False)
        corrupt_idx = corrupt_members(
            cfg.corruption,
            clean_idx,
            rng,
            interval=cfg.interval,
            n_range=cfg.range,
            n_set=len(words),
        )
        corrupt_names = name_idx
        if cfg.corruption.kind == "random_tokens":
            corrupt_names = rng.choice(len(pool), size=cfg.members + 1, replace=False)
        names = [pool[j] for j in name_idx]
        clean_text, sep, clean_spans = render(unit, names, [words[j] for j in clean_idx])
        corrupt_text, _, corrupt_spans = render(
            unit, [pool[j] for j in corrupt_names], [words[j] for j in corrupt_idx]
        )
        answer = int(clean_idx[-1]) + cfg.interval
        out.append(
            PromptRecord(
                clean=clean_text,
                corrupted=corrupt_text,
                correct=sep + words[answer],
                incorrect=sep + words[int(clean_idx[-1])],
                clean_words=tuple(clean_spans),
                corrupted_words=tuple(corrupt_spans),
                template=key,
                info={
                    "clean_members": [int(j) for j in clean_idx],
                    "corrupted_members": [int(j) for j in corrupt_idx],
                    "answer_member": answer,
                    "names": names,
                },
            )
        )
    return out
