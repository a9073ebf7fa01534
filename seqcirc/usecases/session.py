"""An evaluation session: .circ file -> plan -> models and tasks -> results.

A Session is what the CLI and the pytest plugin hold for one process: each model is
loaded once, each task is built (and filtered) once per model, and each prepared state
(clean reference, corrupted means) is computed once per model, task and ablation set-up,
however many files and claims use it. The user's overrides (model, seed, prompts, bos)
apply to every plan. Claims of every kind are measured (seqcirc.claims.registry), then
Holm runs across the p-value claims of a file (seqcirc.claims.holm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError, ModelUnavailableError
from seqcirc.language.vocab import BOS_CHOICES, LIMITS
from seqcirc.models.shapes import shape_of
from seqcirc.plan import CircuitPlan, Plan

Progress = Callable[[str], None]
ENGINES = ("auto", "generic", "fast")  # seqcirc.forward.select.ENGINES, without torch


@dataclass(frozen=True)
class Options:
    """Overrides a user gives on the command line or to pytest (None = the file's own)."""

    model: str | None = None
    seed: int | None = None
    prompts: int | None = None
    device: str = "auto"
    batch_rows: int | None = None  # rows per forward chunk (None: from a memory budget)
    cache_dir: str | None = None  # on-disk means cache (None: SEQCIRC_CACHE_DIR, else off)
    n_boot: int = 10_000
    only_model: str | None = None  # evaluate only the circuits stated on this model
    bos: str | None = None  # on | off | auto for every task (None: each task's own `bos`)
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
    if options.model is not None:
        from seqcirc.checks.components import resolve_model_option

        resolve_model_option(options.model)  # E202 (exit 2) for a name no file could use
        shape = shape_of(options.model)
        bad = []
        if shape is not None:
            bad = [
                f"{c.name}: {n}"
                for c in circuits
                for n in c.nodes
                if n.layer >= shape.n_layers or (n.head is not None and n.head >= shape.n_heads)
            ]
        if bad:
            raise InputError(
                f"--model {options.model} lacks components the file names: {', '.join(bad[:5])}",
                code="E401",
                hint=f"{options.model} has {shape.n_layers} layers x {shape.n_heads} heads"
                if shape
                else None,
            )
        source = "bundled" if options.model == "seqcirc-mini" else "hub"
        if Path(options.model).is_dir():
            source = "local"
        circuits = tuple(
            replace(c, model=replace(c.model, name=options.model, source=source))  # type: ignore[arg-type]
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


def _with_prompts(circuit: CircuitPlan, n: int) -> CircuitPlan:
    if circuit.task.generator is None:  # a prompt file: its size is the file's
        return circuit
    params = {**dict(circuit.task.params), "prompts": n}
    return replace(circuit, task=replace(circuit.task, params=tuple(sorted(params.items()))))


def _with_bos(circuit: CircuitPlan, bos: str) -> CircuitPlan:
    return replace(circuit, task=replace(circuit.task, bos=bos))


class Session:
    """Caches for one process. `progress` receives one line per slow step."""

    def __init__(self, options: Options | None = None, progress: Progress | None = None) -> None:
        self.options = options or Options()
        self.progress = progress or (lambda _msg: None)
        self._tasks: dict[tuple[Any, ...], Any] = {}
        self._states: dict[tuple[Any, ...], Any] = {}
        self._failed_models: dict[str, ModelUnavailableError] = {}
        self._means_cache: Any = None

    # ---- models and tasks ---------------------------------------------------------
    def model(self, circuit: CircuitPlan, base_dir: Path) -> Any:
        """The loaded model of a circuit (seqcirc.models.load.LoadedModel), loaded once."""
        from seqcirc.models.load import load_model

        name = circuit.model.name
        key = f"{base_dir}::{name}"
        if key in self._failed_models:
            raise self._failed_models[key]
        self.progress(f"loading model {name}")
        try:
            return load_model(name, device=self.options.device, base_dir=base_dir)
        except ModelUnavailableError as err:
            self._failed_models[key] = err
            raise

    def task(self, loaded: Any, circuit: CircuitPlan, base_dir: Path, seed: int) -> Any:
        """The circuit's TokenizedTask for this model, built and filtered once."""
        from seqcirc.tasks.for_model import task_for_model

        key = (id(loaded), circuit.task, str(base_dir), seed)
        if key not in self._tasks:
            self.progress(f"building task {circuit.task.name}")
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
        require_fit(plan, int(loaded.bridge.cfg.d_vocab), int(loaded.bridge.cfg.n_ctx))
        if self._means_cache is None:
            self._means_cache = MeansCache.from_option(self.options.cache_dir) or False
        self.progress(f"evaluating {len(plan.circuits)} circuit(s) on {loaded.identity.name}")
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
    n_boot, engine);
    calls with different options get a session of their own.
    """
    global _DEFAULT_SESSION
    wanted = Options(**options)
    if _DEFAULT_SESSION is None or _DEFAULT_SESSION.options != wanted:
        _DEFAULT_SESSION = Session(wanted)
    return _DEFAULT_SESSION.evaluate_file(path)


__all__ = ["Options", "Session", "apply_options", "evaluate"]
