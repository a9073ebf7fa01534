"""What `seqcirc discover --method eap|eap-ig|acdc` runs: an edge circuit found by
attribution and a faithfulness search (seqcirc.discovery.edge_search) or by ACDC
(seqcirc.discovery.acdc), written as a `.circ` file that `seqcirc test` runs as written."""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqcirc.discovery.edge_circ import FoundEdges
from seqcirc.discovery.prune import DEFAULT_THRESHOLD
from seqcirc.errors import InputError
from seqcirc.language.vocab import LIMITS
from seqcirc.plan import AblationSpec

EDGE_METHODS = ("eap", "eap-ig", "acdc")
METHODS = ("prune", "paper", *EDGE_METHODS)


@dataclass(frozen=True)
class EdgeOptions:
    """The options of an edge method, checked (E340) before any model loads."""

    method: str
    threshold: float
    steps: int | None
    selection: str
    metric: str  # what ACDC tests edges by; attribution uses the task's logit_diff
    ablation: AblationSpec

    @classmethod
    def check(cls, method: str, threshold: float | None, steps: int | None,
              selection: str | None, metric: str | None, ablate: str | None = None,
              prompts: int = 1, seed: int = 0) -> EdgeOptions:  # fmt: skip
        from seqcirc.discovery.acdc import check_acdc
        from seqcirc.discovery.attribute import check_method
        from seqcirc.discovery.edge_search import SELECTIONS
        from seqcirc.discovery.prune import _check_threshold
        from seqcirc.usecases.attribute import edge_ablation
        from seqcirc.usecases.discover import check_prompts

        check_prompts(prompts, seed)
        ablation = edge_ablation(ablate or "mean", "E340")
        if method not in EDGE_METHODS:
            raise InputError(f"unknown method {method!r}", code="E340",
                             hint=f"use one of {', '.join(METHODS)}")  # fmt: skip
        if method == "acdc":
            for flag, value in (("--steps", steps), ("--selection", selection)):
                if value is not None:
                    raise InputError(f"{flag} applies to eap and eap-ig, not acdc", code="E340")
            metric = metric or "logit_diff"
            return cls(method, check_acdc(threshold, metric), None, "", metric, ablation)
        if metric is not None:
            raise InputError("--metric applies to acdc", code="E340",
                             hint="eap and eap-ig score the task's logit difference")  # fmt: skip
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        _check_threshold(threshold)
        if method == "eap" and steps is not None:
            raise InputError("--steps applies to eap-ig, not eap", code="E340")
        if steps is not None and not 1 <= steps <= LIMITS["ig_steps"]:
            raise InputError(f"--steps must be 1..{LIMITS['ig_steps']:,}, got {steps}",
                             code="E340")  # fmt: skip
        steps = check_method("eap-ig-inputs" if method == "eap-ig" else "eap", steps, "logit_diff")
        selection = selection or "topn"
        if selection not in SELECTIONS:
            raise InputError(f"unknown --selection {selection!r}", code="E340",
                             hint=f"use one of {', '.join(SELECTIONS)}")  # fmt: skip
        return cls(method, threshold, steps, selection, "logit_diff", ablation)


def _by_attribution(loaded: Any, task: Any, opts: EdgeOptions, on_step: Any
                    ) -> tuple[Any, Any, Any, str]:  # fmt: skip
    """The scores, with the prepared state their pass doubles as; the circuit searched."""
    from seqcirc.discovery.attribute import attribute_from_nothing
    from seqcirc.discovery.edge_search import search_edges

    method = "eap-ig-inputs" if opts.method == "eap-ig" else "eap"
    att, state = attribute_from_nothing(loaded.bridge, task, opts.ablation, "logit_diff",
                                        method, steps=opts.steps, on_step=on_step)  # fmt: skip
    search = search_edges(state, att.scores, opts.threshold, selection=opts.selection)
    what = ("EAP (Syed et al. 2023): one gradient at the clean run" if opts.method == "eap"
            else f"EAP-IG (Hanna et al. 2024): gradients over {opts.steps} steps from the "
            "ablated input embeddings to the clean ones")  # fmt: skip
    how = (
        f"{what}; edge score = estimated change of the mean logit_diff when the edge alone is "
        "ablated (docs/attribution.md). Edges ranked by |score|, "
        + ("the top n kept" if opts.selection == "topn" else "chosen greedily from the logits up")
        + f", dangling ones pruned; n = {search.n}, the smallest a bisection found keeping "
        f"more than {opts.threshold:g} of the full model: {search.passes} evaluator passes "
        f"after {att.passes:g} forward + backward passes for the scores."
    )
    return state, search.keep, att.scores, how


def _by_acdc(state: Any, loaded: Any, task: Any, opts: EdgeOptions, on_step: Any
             ) -> tuple[Any, Any, str]:  # fmt: skip
    from seqcirc.discovery.acdc import acdc
    from seqcirc.engine.prepare import prepare

    st = (
        state if opts.metric == "logit_diff" else prepare(loaded.bridge, task, state.ablation, "kl")
    )
    n = st.graph.n_edges
    done = [0]

    def step(_s: Any) -> None:
        done[0] += 1
        on_step(done[0], n)

    out = acdc(st, opts.threshold, on_step=step)
    scores = np.zeros(n)
    for s in out.steps:
        scores[s.edge] = s.delta
    loss = "mean KL from the full model" if opts.metric == "kl" else "minus the mean logit_diff"
    how = (
        "ACDC (Conmy et al. 2023): receivers from the logits back; an edge goes when the loss "
        f"({loss}) rises by less than {opts.threshold:g} without it; {out.passes} evaluator "
        f"passes, {out.skipped} edges into nodes left without outputs dropped unseen."
    )
    return out.keep, scores, how


@dataclass(frozen=True)
class EdgeDiscoverRun:
    found: FoundEdges
    written: Any  # seqcirc.discovery.circ_file.Written
    path: Path | None


def run_discover_edges(*, model: str, set_name: str, opts: EdgeOptions, prompts: int = 1536,
                       seed: int = 0, device: str = "auto",
                       filter_correct: bool = True, output: str | None = None,
                       name: str | None = None, command: str = "",
                       n_boot: int = 10_000) -> EdgeDiscoverRun:  # fmt: skip
    from seqcirc.discovery.edge_circ import render_edge_circ
    from seqcirc.discovery.prune import _doing_the_task
    from seqcirc.engine.edges import run_edges
    from seqcirc.engine.prepare import prepare
    from seqcirc.plan.compile import compile_text
    from seqcirc.report.files import write_text
    from seqcirc.usecases.attribute import counted_progress
    from seqcirc.usecases.discover import model_and_task
    from seqcirc.usecases.session import Options, Session

    ablation = opts.ablation
    name = name or f"{set_name}_edges"
    task_def, loaded, task = model_and_task(
        model, set_name, name=set_name, prompts=prompts, seed=seed,
        filter_correct=filter_correct, device=device,
    )  # fmt: skip
    t0 = time.perf_counter()
    with counted_progress(f"{opts.method} on {set_name}") as on_step:
        if opts.method == "acdc":
            state = prepare(loaded.bridge, task, ablation, "logit_diff")
            _doing_the_task(float(state.m_model.mean()), "logit_diff")
            keep, scores, how = _by_acdc(state, loaded, task, opts, on_step)
        else:
            state, keep, scores, how = _by_attribution(loaded, task, opts, on_step)
    fm = _doing_the_task(float(state.m_model.mean()), "logit_diff")
    ratio = float(run_edges(state, keep).mean()) / fm
    graph = state.graph
    kept = tuple(e for e, k in zip(graph.edges, keep, strict=True) if k)
    found = FoundEdges(
        method=opts.method, edges=kept,
        scores={e: float(s) for e, s, k in zip(graph.edges, scores, keep, strict=True) if k},
        score_name="ACDC's rise of the loss without the edge" if opts.method == "acdc"
        else "the edge's attribution score",
        ratio=ratio, threshold=None if opts.method == "acdc" else opts.threshold, f_model=fm,
        ablation=ablation, n_prompts=state.n_prompts, n_edges=graph.n_edges, how=how,
        timings={"discover_s": time.perf_counter() - t0},
    )  # fmt: skip
    session = Session(Options(device=device, n_boot=n_boot))
    base = Path(output).resolve().parent if output else Path.cwd()

    def evaluate(text: str) -> Any:
        return session.evaluate_plan(compile_text(text, output or "<discover>"), base)

    written = render_edge_circ(found, name=name, model=model, task_def=task_def,
                               task_name=set_name, seed=seed, command=command,
                               evaluate=evaluate)  # fmt: skip
    path = write_text(output, written.text, "circuit file") if output is not None else None
    return EdgeDiscoverRun(found, written, path)


def summary_edges(run: EdgeDiscoverRun) -> str:
    f = run.found
    lines = [
        f"{f.method}: kept {len(f.edges)} of {f.n_edges} edges ({len(f.nodes)} nodes), "
        f"F(C)/F(M) = {f.ratio:.4f} on {f.n_prompts} prompts",
        *textwrap.wrap(f.how, 88, initial_indent="  ", subsequent_indent="  "),
    ]
    for circuit, claims in run.written.claims.items():
        for v in claims.values():
            lines.append(f"  {circuit}: {v['text']}: {v['verdict']} ({v['value']:.4g})")
    if run.path is not None:
        lines.append(f"wrote {run.path}")
    return "\n".join(lines)


__all__ = ["EDGE_METHODS", "METHODS", "EdgeDiscoverRun", "EdgeOptions", "run_discover_edges",
           "summary_edges"]  # fmt: skip
