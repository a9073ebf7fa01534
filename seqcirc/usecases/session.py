"""An evaluation session: .circ file -> plan -> models and tasks -> results.

A Session is what the CLI and the pytest plugin hold for one process: each model is
loaded once, each task is built (and filtered) once per model, and each prepared state
(clean reference, corrupted means) is computed once per model, task and ablation set-up,
however many files and claims use it. The user's overrides (model, seed, prompts, bos)
apply to every plan. Claims of every kind are measured (seqcirc.claims.registry), then
Holm runs across the p-value claims of a file (seqcirc.claims.holm).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError, ModelUnavailableError
from seqcirc.language.vocab import BOS_CHOICES, LIMITS
from seqcirc.models.objects import is_model_object
from seqcirc.models.shapes import shape_of
from seqcirc.plan import CircuitPlan, Plan

ENGINES = ("auto", "generic", "fast")  # seqcirc.forward.select.ENGINES, without torch


@dataclass(frozen=True)
class Options:
    """Overrides a user gives on the command line or to pytest (None = the file's own)."""

    model: Any = None  # a name or folder, or a model object (seqcirc.models.objects)
    seed: int | None = None
    prompts: int | None = None
    device: str = "auto"
    batch_rows: int | None = None  # rows per forward chunk (None: from a memory budget)
    cache_dir: str | None = None  # on-disk means cache (None: SEQCIRC_CACHE_DIR, else off)
    n_boot: int = 10_000
    only_model: str | None = None  # evaluate only the circuits stated on this model
    bos: str | None = None  # on | off | auto for every task (None: each task's own `bos`)
    dtype: str | None = None  # float32 (None), bfloat16, float16: the weights' dtype
    device_map: Any = None  # auto | balanced | a JSON file | a dict: Accelerate's placement
    tokenizer: Any = None  # the tokenizer of a transformers PreTrainedModel given as model
    engine: str = "auto"  # auto | generic | fast (seqcirc.forward.select)


def apply_options(plan: Plan, options: Options) -> Plan:
    """The plan with the user's overrides: model, seed, number of prompts.

    A model override is checked against that model's shape (config only): a head or
    layer the new model lacks is an InputError, not a silent skip.
    """
    circuits = plan.circuits
    if options.only_model is not None:
        circuits = tuple(c for c in circuits if c.model.name == options.only_model)
        if not circuits:
            stated = sorted({c.model.name for c in plan.circuits})
            raise InputError(
                f"{plan.source} has no circuit on {options.only_model}",
                code="E404",
                hint=f"its circuits are on: {', '.join(stated)}",
            )
    _check_model_options(options)
    if is_model_object(options.model):
        from seqcirc.models.objects import describe_object

        label, shape = describe_object(options.model, options.tokenizer)
        _require_components(circuits, shape, f"model= {label}")
        circuits = tuple(
            replace(c, model=replace(c.model, name=label, source="object")) for c in circuits
        )
    elif options.model is not None:
        from seqcirc.checks.components import resolve_model_option

        name = str(options.model)  # a pathlib.Path too
        resolve_model_option(name)  # E202 (exit 2) for a name no file could use
        _require_components(circuits, shape_of(name), f"--model {name}")
        source = "bundled" if name == "seqcirc-mini" else "hub"
        if Path(name).is_dir():
            source = "local"
        circuits = tuple(
            replace(c, model=replace(c.model, name=name, source=source))  # type: ignore[arg-type]
            for c in circuits
        )
    if options.prompts is not None:
        if options.prompts < 1:
            raise InputError("--prompts must be at least 1", code="E402")
        if options.prompts > LIMITS["prompts"]:
            raise InputError(f"--prompts must be at most {LIMITS['prompts']:,}", code="E402")
        circuits = tuple(_with_prompts(c, options.prompts) for c in circuits)
    if options.engine not in ENGINES:
        raise InputError(
            f"--engine must be one of {', '.join(ENGINES)}, not {options.engine!r}", code="E402"
        )
    if options.seed is not None and not 0 <= options.seed <= LIMITS["seed"]:
        raise InputError(f"--seed must be 0..{LIMITS['seed']:,}", code="E402")
    if options.bos is not None:
        if options.bos not in BOS_CHOICES:
            raise InputError(
                f"--bos must be one of {', '.join(BOS_CHOICES)}, not {options.bos!r}", code="E402"
            )
        circuits = tuple(_with_bos(c, options.bos) for c in circuits)
    seed = plan.seed if options.seed is None else options.seed
    return replace(plan, circuits=circuits, seed=seed)


def _check_model_options(options: Options) -> None:
    """dtype (E410), the device map (E411: a keyword or a readable JSON map) and a
    tokenizer without a model object (E412), before any model loads."""
    from seqcirc.models.device import read_device_map, resolve_dtype

    resolve_dtype(options.dtype)
    read_device_map(options.device_map)
    if options.tokenizer is not None and not is_model_object(options.model):
        raise InputError(
            "tokenizer= was given without a model object",
            code="E412",
            hint="tokenizer= goes with model=<a transformers PreTrainedModel>; a model "
            "named by a string loads its own tokenizer",
        )


def _require_components(circuits: tuple[CircuitPlan, ...], shape: Any, what: str) -> None:
    """E401 when the model of `what` (shape known) lacks a head or layer a circuit names."""
    if shape is None:
        return
    bad = [
        f"{c.name}: {n}"
        for c in circuits
        for n in c.nodes
        if n.layer >= shape.n_layers or (n.head is not None and n.head >= shape.n_heads)
    ]
    if bad:
        raise InputError(
            f"{what} lacks components the file names: {', '.join(bad[:5])}",
            code="E401",
            hint=f"it has {shape.n_layers} layers x {shape.n_heads} heads",
        )


def _with_prompts(circuit: CircuitPlan, n: int) -> CircuitPlan:
    if circuit.task.generator is None:  # a prompt file: its size is the file's
        return circuit
    params = {**dict(circuit.task.params), "prompts": n}
    return replace(circuit, task=replace(circuit.task, params=tuple(sorted(params.items()))))


def _with_bos(circuit: CircuitPlan, bos: str) -> CircuitPlan:
    return replace(circuit, task=replace(circuit.task, bos=bos))


class Session:
    """Caches for one process. Slow steps report their progress through
    seqcirc.progress (shown only where an entry point installs a reporter)."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._tasks: dict[tuple[Any, ...], Any] = {}
        self._states: dict[tuple[Any, ...], Any] = {}
        self._failed_models: dict[str, ModelUnavailableError] = {}
        self._means_cache: Any = None

    # ---- models and tasks ---------------------------------------------------------
    def model(self, circuit: CircuitPlan, base_dir: Path) -> Any:
        """The loaded model of a circuit (seqcirc.models.load.LoadedModel), loaded once;
        a model object given as `model=` for every circuit (seqcirc.models.objects)."""
        from seqcirc.models.load import load_model

        opts = self.options
        if is_model_object(opts.model):
            from seqcirc.models.objects import load_object

            return load_object(opts.model, opts.tokenizer, dtype=opts.dtype, device=opts.device,
                               device_map=opts.device_map)  # fmt: skip
        name = circuit.model.name
        key = f"{base_dir}::{name}"
        if key in self._failed_models:
            raise self._failed_models[key]
        try:
            return load_model(name, device=opts.device, dtype=opts.dtype,
                              device_map=opts.device_map, base_dir=base_dir)  # fmt: skip
        except ModelUnavailableError as err:
            self._failed_models[key] = err
            raise

    def task(self, loaded: Any, circuit: CircuitPlan, base_dir: Path, seed: int) -> Any:
        """The circuit's TokenizedTask for this model, built and filtered once."""
        from seqcirc.tasks.for_model import task_for_model

        key = (id(loaded), circuit.task, str(base_dir), seed)
        if key not in self._tasks:
            self._tasks[key], _report = task_for_model(
                circuit.task, loaded, base_dir=base_dir, seed=seed,
                none_kept=InputError(
                    f"task {circuit.task.name!r}: the model gets no prompt right "
                    "(the paper's filter p(correct) > 2 p(incorrect) kept none)",
                    code="E403", hint="drop `filter correct` to measure on all prompts",
                ),
            )  # fmt: skip
        return self._tasks[key]

    # ---- evaluation ---------------------------------------------------------------
    def evaluate_file(self, path: str | Path) -> Any:
        from seqcirc.plan.compile import compile_file

        plan = compile_file(path)
        return self.evaluate_plan(plan, base_dir=Path(path).resolve().parent)

    def evaluate_plan(self, plan: Plan, base_dir: Path | None = None) -> Any:
        """Every circuit of the plan; circuits on several models are grouped by model.

        Raises ModelUnavailableError when a model cannot be had (the CLI exits 3;
        the pytest plugin skips that model's items instead, per circuit).
        """
        from seqcirc.claims.holm import holm_across_file
        from seqcirc.plan.compile import require_circuits
        from seqcirc.results import EvaluationResult

        plan = apply_options(require_circuits(plan), self.options)
        base = base_dir or Path(plan.source).resolve().parent
        by_model: dict[str, list[CircuitPlan]] = {}
        for circuit in plan.circuits:
            by_model.setdefault(circuit.model.name, []).append(circuit)
        results = [
            self._evaluate_model(replace(plan, circuits=tuple(group)), base)
            for group in by_model.values()
        ]
        merged = results[0]
        if len(results) > 1:
            merged = replace(
                merged,
                model={"models": [r.model for r in results]},
                circuits=tuple(c for r in results for c in r.circuits),
                timings={k: sum(r.timings.get(k, 0.0) for r in results) for k in merged.timings},
            )
        assert isinstance(merged, EvaluationResult)
        return holm_across_file(merged)

    def evaluate_circuits(self, plan: Plan, names: Iterable[str], base_dir: Path) -> Any:
        """Only the named circuits (the pytest plugin evaluates one model at a time)."""
        wanted = set(names)
        sub = replace(plan, circuits=tuple(c for c in plan.circuits if c.name in wanted))
        return self.evaluate_plan(sub, base_dir)

    def _evaluate_model(self, plan: Plan, base_dir: Path) -> Any:
        from seqcirc.claims.evaluate import evaluate_plan
        from seqcirc.claims.registry import HANDLERS
        from seqcirc.engine.means_cache import MeansCache
        from seqcirc.plan.compile import require_fit

        loaded = self.model(plan.circuits[0], base_dir)
        cfg = loaded.bridge.cfg
        require_fit(plan, int(cfg.d_vocab), int(cfg.n_ctx), int(cfg.n_layers))
        if self._means_cache is None:
            self._means_cache = MeansCache.from_option(self.options.cache_dir) or False
        result = evaluate_plan(
            loaded,
            plan,
            lambda c: self.task(loaded, c, base_dir, plan.seed),
            n_boot=self.options.n_boot,
            batch_rows=self.options.batch_rows,
            handlers=HANDLERS,
            states=self._states,
            means_cache=self._means_cache or None,
            engine=self.options.engine,
        )
        return replace(result, model=loaded.to_dict())


_DEFAULT_SESSION: Session | None = None


def evaluate(path: str | Path, **options: Any) -> Any:
    """Evaluate a .circ file in this process's default session (models, tasks and means
    cached across calls): `seqcirc.evaluate("hypotheses/months.circ")`.

    options: the fields of Options (model, seed, prompts, device, batch_rows, cache_dir,
    n_boot, dtype, device_map, tokenizer, engine); `model` may be a model object, the model
    of every circuit: a TransformerBridge, or a transformers PreTrainedModel with
    `tokenizer=` (seqcirc.models.objects). Calls with different options get a session
    of their own.
    """
    global _DEFAULT_SESSION
    wanted = Options(**options)
    if _DEFAULT_SESSION is None or _DEFAULT_SESSION.options != wanted:
        _DEFAULT_SESSION = Session(wanted)
    return _DEFAULT_SESSION.evaluate_file(path)


__all__ = ["Options", "Session", "apply_options", "evaluate"]
