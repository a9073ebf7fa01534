"""seqcirc's performance benchmark (issue 12): evaluation cost as a ratio to one bare
Hugging Face forward of the same batch, measured in the same process.

    .venv/bin/python benchmarks/run.py [--quick] [--repeats N] [--out benchmarks/out/results.json]

Items, on a GPT-2-small-shaped model with random weights, 64 prompts x 9 tokens:
  node       one node-circuit evaluation, mean ablation, from nothing
             (prepare + liveness + the circuit + the empty circuit)       target <= 3.5
  edge       the same for an edge circuit keeping ~10% of the edges       target <= 5
  baseline   a 200-circuit random baseline on a prepared state            target <= 1.3 x 200
  discovery  the paper's iterative pruning (seqcirc.discovery.prune): time, and forward passes
             done against the passes the sequential algorithm needs
  eap        edge attribution of every edge from nothing (the corrupted run + one forward
             and one backward, seqcirc.discovery.attribute.attribute_from_nothing: its
             forward is the evaluator's clean sweep)                     target <= 4
  eap_ig     the same by EAP-IG-inputs with 5 steps                      target <= 15
  eap_ig_discovery  an edge circuit by EAP-IG (5 steps) and the evaluator's bisection to
             F(C)/F(M) > 0.8: its passes over the prompts against the fewest edge
             pruning needs (prepare + one pass per edge)                 target <= 1/20
  bare       the bare forward itself (its memory)
  memory     the 4 GB check: in a fresh process, the model built and one evaluation from
             nothing (prepare, node circuit, empty circuit, a 200-circuit random baseline,
             chunks sized by seqcirc.engine.memory): the process's whole peak resident memory
             (VmHWM, the model included) against 4096 MB                  target <= 4096 MB
             (on a GPU its peak GPU memory is reported too, not judged: chunks there fill
             half the free GPU memory, so that peak follows the card)

Engines and families: each item runs on each engine of `--engine` (default `fast,generic`:
the hand-written GPT-2/Llama forwards and the generic one through the bridge's hooks,
seqcirc.forward.select), and on each family of `--families` (default `gpt2,neox,llama`:
GPT-2, and GPT-NeoX- and Llama-shaped random models of the same size, benchmarks/
families.py; the fast engine has no NeoX forward and no Llama edge forward, so those rows
say so). Discovery and the memory check run on GPT-2 only. A second table puts the two
engines side by side (generic / fast). A third breaks the node and edge items down: each
pass's median time in bare forwards (prepare's corrupted run, clean run and bridge check,
the circuit's mask, its pass, the empty circuit; seqcirc.engine.runner.EvalState.
prepare_parts), so a change shows where it saved.

Every item runs in a fresh worker process (`--worker ITEM`). Its peak memory is the
kernel's high-water mark of resident memory (VmHWM, the counter ru_maxrss reads) after
the item, minus the resident set before it (model built, task loaded), with the mark
reset to the current RSS just before the item (/proc/self/clear_refs): the peak of the
item alone, transient tensors included. Timing: the item first (that run gives the memory), then
bare forwards and further item runs interleaved, so machine load hits both alike; ratios
are median(item) / median(bare) of wall time (process CPU time too). `--in-process` runs
everything in this process (the smoke test), where the memory figures mean little.

`--device cuda` (or auto) puts both models and every item on the GPU: timers read after
torch.cuda.synchronize(), and each item also reports its peak GPU memory
(torch.cuda.max_memory_allocated, reset before the item; the memory item: the whole run's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.families import FAMILIES
from benchmarks.gpt2_shape import (
    GPT2_SMALL,
    TINY,
    Shape,
    bare_forward,
    build_model,
    load_task,
    random_task,
    save_task,
    weights_checksum,
)

ITEMS = ("bare", "node", "edge", "baseline", "discovery", "eap", "eap_ig", "eap_ig_discovery",
         "memory")  # fmt: skip
ENGINES = ("fast", "generic")
FAMILY_ITEMS = ("bare", "node", "edge", "baseline")  # the items run on every family
EAP_IG_STEPS = 5
PASS_SHARE = 1 / 20  # eap_ig_discovery: at most this share of edge pruning's passes
MEMORY_LIMIT_MB = 4096.0  # issue 12: a GPT-2-small evaluation must fit in 4 GB
EDGE_KEEP = 0.10  # share of edges an edge circuit keeps
NODE_KEEP = 0.30  # share of nodes the node circuit keeps (cost does not depend on it)


@dataclass(frozen=True)
class Config:
    shape: Shape = GPT2_SMALL
    n_prompts: int = 64
    seq_len: int = 9
    threads: int = 2
    n_random: int = 200  # circuits of the random baseline
    discovery_prompts: int = 64
    repeats: int = 3  # item runs of the cheap items; bare forwards per item
    seed: int = 0
    device: str = "cpu"
    engine: str = "fast"  # seqcirc.forward.select: fast or generic
    family: str = "gpt2"  # benchmarks/families.py

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = self.shape.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return cls(**{**d, "shape": Shape(**d["shape"])})


def targets(cfg: Config) -> dict[str, float]:
    return {"node": 3.5, "edge": 5.0, "baseline": 1.3 * cfg.n_random, "eap": 4.0,
            "eap_ig": 15.0}  # fmt: skip


def _is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def _sync(device: str) -> None:
    from seqcirc.models.device import synchronize

    synchronize(device)


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def maxrss_mb() -> float:
    """Peak resident memory of this process so far: the kernel's high-water mark of this
    address space (VmHWM, resettable); ru_maxrss where /proc is missing. ru_maxrss itself
    is max(VmHWM, the peak recorded at exec), and at exec a spawned worker records its
    parent's peak, which no reset clears."""
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's high-water mark (VmHWM) to the current RSS (Linux >= 4.0).

    Without it ru_maxrss still holds the peak of building the model, higher than most
    items, and a spawned worker even inherits its parent's peak through exec."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[float, float, Any]:
    """Wall and CPU seconds of fn(); on a GPU the queued kernels finish inside the timing."""
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    _sync(device)
    return time.perf_counter() - w0, time.process_time() - c0, result


# ------------------------------------------------------------------ the items


def _parts(state: Any, t0: float, t1: float, t2: float, t3: float) -> dict[str, float]:
    """Seconds of each pass of an evaluation from nothing: prepare's parts (corrupted run,
    clean run, bridge check, the rest), the circuit's masks and liveness, its pass, the
    empty circuit."""
    prep = {f"prepare.{k}": v for k, v in state.prepare_parts.items()}
    return {**prep, "circuit_mask": t1 - t0, "circuit_pass": t2 - t1, "empty": t3 - t2}


def _node_op(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import check_live, empty_metric, run_circuits
    from seqcirc.plan import AblationSpec

    def op() -> dict[str, Any]:
        state = prepare(bridge, task, AblationSpec(), engine=cfg.engine)
        t0 = time.perf_counter()
        rng = np.random.default_rng(cfg.seed)
        mask = rng.random(state.weights.n_nodes) < NODE_KEEP
        check_live(state, mask)
        t1 = time.perf_counter()
        m_circuit = run_circuits(state, mask[None])[0]
        t2 = time.perf_counter()
        m_empty = empty_metric(state)
        parts = _parts(state, t0, t1, t2, time.perf_counter())
        f_model = float(state.m_model.mean())
        return {
            "parts_s": parts,
            "n_nodes_kept": int(mask.sum()),
            "n_nodes": int(mask.size),
            "performance_ratio": float(m_circuit.mean()) / f_model,
            "normalized_faithfulness": float(m_circuit.mean() - m_empty.mean())
            / (f_model - float(m_empty.mean())),
            "forward_rows": state.forward_rows,
            "forward_passes": state.forward_rows / state.n_prompts,
        }

    return op


def _edge_op(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
    from seqcirc.engine.edges import check_live_edges, edge_mask, run_edges
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import empty_metric
    from seqcirc.plan import AblationSpec

    def op() -> dict[str, Any]:
        state = prepare(bridge, task, AblationSpec(granularity="edge"), engine=cfg.engine)
        t0 = time.perf_counter()
        graph = state.graph
        rng = np.random.default_rng(cfg.seed)
        chosen = rng.choice(graph.n_edges, round(EDGE_KEEP * graph.n_edges), replace=False)
        # by name, as a circuit read from a file is (the name lookup is part of the cost)
        keep = edge_mask(state, [graph.edges[i] for i in sorted(chosen)])
        n_edges = graph.n_edges
        check_live_edges(state, keep)
        t1 = time.perf_counter()
        m_circuit = run_edges(state, keep)
        t2 = time.perf_counter()
        m_empty = empty_metric(state)
        parts = _parts(state, t0, t1, t2, time.perf_counter())
        return {
            "parts_s": parts,
            "n_edges_kept": int(keep.sum()),
            "n_edges": n_edges,
            "performance_ratio": float(m_circuit.mean()) / float(state.m_model.mean()),
            "f_empty": float(m_empty.mean()),
            "forward_rows": state.forward_rows,
            "forward_passes": state.forward_rows / state.n_prompts,
        }

    return op


def _baseline_op(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
    """The baseline of one circuit on its already prepared state (the evaluation that
    states the claim prepared it): drawing the circuits and their batched passes."""
    from seqcirc.claims.faithfulness import faithfulness_of_masks
    from seqcirc.engine.prepare import prepare
    from seqcirc.plan import AblationSpec
    from seqcirc.stats.baseline import mask_nodes, sample_random_circuits

    state = prepare(bridge, task, AblationSpec(), engine=cfg.engine)
    w = state.weights
    rng = np.random.default_rng(cfg.seed)
    circuit = mask_nodes(rng.random(w.n_nodes) < NODE_KEEP, w.n_layers, w.n_heads)

    def op() -> dict[str, Any]:
        rows0 = state.forward_rows
        draws = sample_random_circuits(
            circuit, n_layers=w.n_layers, n_heads=w.n_heads, n_circuits=cfg.n_random,
            seed=cfg.seed,
        )  # fmt: skip
        values = faithfulness_of_masks(state, draws.masks)
        return {
            "n_circuits": int(values.size),
            "circuit_size": len(circuit),
            "forward_rows": state.forward_rows - rows0,
            "forward_passes": (state.forward_rows - rows0) / state.n_prompts,
            "batch_rows": state.batch_rows,
            "mean_performance_ratio": float(values.mean()),
        }

    return op


def _discovery_op(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
    from seqcirc.discovery.prune import discover

    def op() -> dict[str, Any]:
        found = discover(bridge, task, engine=cfg.engine)
        out = found.outcome
        n = found.n_prompts
        # what the sequential algorithm needs: the clean and corrupted sweeps, each
        # distinct circuit it scores, and the per-component table (M - v, C - v per v)
        needed = 2 + out.masks_needed + 2 * len(found.nodes)
        return {
            "n_prompts": n,
            "nodes_found": len(found.nodes),
            "score": found.score,
            "n_sweeps": out.n_sweeps,
            "steps": len(out.steps),
            "masks_needed": out.masks_needed,
            "masks_run": out.masks_run,
            "forward_rows": found.forward_rows,
            "forward_passes": found.forward_rows / n,
            "forward_passes_needed": needed,
            "extra_rows_bridge_check": found.prepare_rows - 2 * n,
            "timings": found.timings,
        }

    return op


def evaluation_from_nothing(bridge: Any, task: Any, cfg: Config) -> dict[str, Any]:
    """One node circuit's evaluation with its random baseline: prepare (chunks sized by
    seqcirc.engine.memory), liveness, the circuit, the empty circuit, cfg.n_random circuits."""
    from seqcirc.claims.faithfulness import faithfulness_of_masks
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import check_live, empty_metric, run_circuits
    from seqcirc.plan import AblationSpec
    from seqcirc.stats.baseline import mask_nodes, sample_random_circuits

    state = prepare(bridge, task, AblationSpec(), engine=cfg.engine)
    w = state.weights
    mask = np.random.default_rng(cfg.seed).random(w.n_nodes) < NODE_KEEP
    check_live(state, mask)
    m_circuit = run_circuits(state, mask[None])[0]
    m_empty = empty_metric(state)
    draws = sample_random_circuits(
        mask_nodes(mask, w.n_layers, w.n_heads), n_layers=w.n_layers, n_heads=w.n_heads,
        n_circuits=cfg.n_random, seed=cfg.seed,
    )  # fmt: skip
    values = faithfulness_of_masks(state, draws.masks)
    f_circuit = float(m_circuit.mean()) / float(state.m_model.mean())
    return {
        "performance_ratio": f_circuit,
        "f_empty": float(m_empty.mean()),
        "n_random": int(values.size),
        "baseline_p": float((1 + np.sum(values >= f_circuit)) / (1 + values.size)),
        "batch_rows": state.batch_rows,
        "capture_rows": state.capture_rows,
        "chunks": -(-values.size * state.n_prompts // state.batch_rows),
        "forward_rows": state.forward_rows,
    }


def _attribution_op(method: str, steps: int | None) -> Any:
    def make(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
        from seqcirc.discovery.attribute import attribute_from_nothing
        from seqcirc.plan import AblationSpec

        def op() -> dict[str, Any]:
            spec = AblationSpec(granularity="edge")
            att, state = attribute_from_nothing(bridge, task, spec, "logit_diff", method,
                                                steps=steps)  # fmt: skip
            prepare_rows = state.forward_rows  # its clean sweep is the attribution's pass
            n = state.n_prompts
            return {
                "method": method, "steps": steps, "n_edges": len(att.edges),
                "sum_of_scores": float(att.scores.sum()), "f_model": att.f_model,
                "f_empty": att.f_empty, "prepare_passes": prepare_rows / n,
                "forward_passes": (prepare_rows + att.forward_rows) / n,
                "backward_passes": att.backward_rows / n,
                "attribute_s": att.timings["attribute_s"],
            }  # fmt: skip

        return op

    return make


def _eap_ig_discovery_op(bridge: Any, task: Any, cfg: Config) -> Callable[[], dict[str, Any]]:
    """EAP-IG scores, then the bisection; passes against edge pruning's fewest: prepare
    (2) and one edge pass per edge of the model (its first sweep alone)."""
    from seqcirc.discovery.attribute import attribute_from_nothing
    from seqcirc.discovery.edge_search import search_edges
    from seqcirc.plan import AblationSpec

    def op() -> dict[str, Any]:
        spec = AblationSpec(granularity="edge")
        att, state = attribute_from_nothing(bridge, task, spec, "logit_diff", "eap-ig-inputs",
                                            steps=EAP_IG_STEPS)  # fmt: skip
        n = state.n_prompts
        prepare_passes = state.forward_rows / n  # its clean sweep is the attribution's pass
        found = search_edges(state, att.scores, 0.8)
        forward = prepare_passes + att.forward_rows / n + found.passes
        backward = att.backward_rows / n
        needed = 2 + len(att.edges)
        return {
            "n_edges": len(att.edges), "edges_found": int(found.keep.sum()),
            "n_top": found.n, "score": found.score, "bisection_passes": found.passes,
            "forward_passes": forward, "backward_passes": backward,
            "passes": forward + backward, "pruning_passes_at_least": needed,
            "share_of_pruning": (forward + backward) / needed,
            "share_counting_backward_twice": (forward + 2 * backward) / needed,
            "attribute_s": att.timings["attribute_s"],
        }  # fmt: skip

    return op


OPS: dict[str, Callable[[Any, Any, Config], Callable[[], dict[str, Any]]]] = {
    "node": _node_op,
    "edge": _edge_op,
    "baseline": _baseline_op,
    "discovery": _discovery_op,
    "eap": _attribution_op("eap", None),
    "eap_ig": _attribution_op("eap-ig-inputs", EAP_IG_STEPS),
    "eap_ig_discovery": _eap_ig_discovery_op,
}


def measure(item: str, cfg: Config, hf_model: Any, bridge: Any, task: Any) -> dict[str, Any]:
    """Time one item against bare forwards of the same batch, in this process (with the
    caller's torch threads: worker() and run() set cfg.threads)."""
    if item == "memory":
        return memory_check(cfg, bridge, task, in_process=True)
    if item == "discovery" and cfg.discovery_prompts < task.n_prompts:
        task = task.subset(np.arange(cfg.discovery_prompts))
    dev = cfg.device
    tokens = torch.as_tensor(task.clean, device=dev)
    bare_forward(hf_model, tokens[:1, :1])  # load kernels / thread pool; tiny
    if _is_cuda(dev):
        bare_forward(hf_model, tokens)  # cuBLAS handles and kernel choice for this size
        gpu0 = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    peak_reset = reset_peak()
    rss0 = maxrss_mb()
    t_setup0 = time.perf_counter()
    if item == "bare":
        op: Callable[[], Any] = lambda: bare_forward(hf_model, tokens)  # noqa: E731
    else:
        from seqcirc.errors import SeqcircError

        try:
            op = OPS[item](bridge, task, cfg)
        except ImportError as err:  # discovery not there yet
            return {"item": item, "error": f"not available: {err}"}
        except SeqcircError as err:  # e.g. the fast engine on an architecture it lacks
            return {"item": item, "error": f"[{err.code}] {err.message}"}
    setup_s = time.perf_counter() - t_setup0
    rss_setup = maxrss_mb()
    runs: list[tuple[float, float]] = []
    bares: list[tuple[float, float]] = []

    try:
        wall, cpu, detail = _timed(op, dev)
    except SeqcircError as err:
        return {"item": item, "error": f"[{err.code}] {err.message}"}
    runs.append((wall, cpu))
    details = [detail]
    rss_peak = maxrss_mb()
    gpu: dict[str, float] = {}
    if _is_cuda(dev):
        gpu = {
            "gpu_before_mb": gpu0 / 2**20,
            "gpu_peak_mb": torch.cuda.max_memory_allocated(dev) / 2**20,
            "gpu_delta_mb": (torch.cuda.max_memory_allocated(dev) - gpu0) / 2**20,
        }
    cheap = item in ("bare", "node", "edge", "eap")
    for r in range(cfg.repeats):  # interleaved: bare, item, bare, item, ..., bare
        bares.append(_timed(lambda: bare_forward(hf_model, tokens), dev)[:2])
        if cheap and r < cfg.repeats - 1:
            again = _timed(op, dev)
            runs.append(again[:2])
            details.append(again[2])
    bare_wall = statistics.median(b[0] for b in bares)
    bare_cpu = statistics.median(b[1] for b in bares)
    item_wall = statistics.median(r[0] for r in runs)
    item_cpu = statistics.median(r[1] for r in runs)
    return {
        "item": item,
        "n_prompts": int(task.n_prompts),
        "seq_len": int(task.seq_len),
        "item_wall_s": item_wall,
        "item_cpu_s": item_cpu,
        "item_runs_wall_s": [r[0] for r in runs],
        "bare_wall_s": bare_wall,
        "bare_cpu_s": bare_cpu,
        "bare_runs_wall_s": [b[0] for b in bares],
        "ratio_wall": item_wall / bare_wall,
        "ratio_cpu": item_cpu / bare_cpu,
        "setup_s": setup_s,
        "memory": {
            "method": "VmHWM (the high-water mark ru_maxrss reads), fresh process per item, "
            "reset to the current RSS before the item"
            if peak_reset
            else "ru_maxrss (getrusage), fresh process per item, peak NOT reset",
            "before_mb": rss0,
            "after_setup_mb": rss_setup,
            "peak_mb": rss_peak,
            "delta_mb": rss_peak - rss0,
            **gpu,
        },
        "detail": detail if isinstance(detail, dict) else {},
        "parts_bare": _parts_bare(details, bare_wall),
    }


def _parts_bare(details: list[Any], bare_wall: float) -> dict[str, float]:
    """Each pass's median seconds over the item's runs, in bare forwards."""
    parts = [d["parts_s"] for d in details if isinstance(d, dict) and "parts_s" in d]
    if not parts:
        return {}
    return {k: statistics.median(p[k] for p in parts) / bare_wall for k in parts[0]}


def breakdown_table(results: list[dict[str, Any]]) -> str:
    """Where each pass of the node and edge items goes, in bare forwards (medians)."""
    rows = [r for r in results if r.get("parts_bare")]
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r["parts_bare"]))
    short = [k.removeprefix("prepare.") for k in keys]
    head = f"{'model':<6} {'engine':<8} {'item':<6} " + " ".join(f"{k:>13}" for k in short)
    head += f" {'sum':>7} {'total':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        p = r["parts_bare"]
        cells = " ".join(f"{p.get(k, float('nan')):>13.3f}" for k in keys)
        lines.append(
            f"{r['family']:<6} {r['engine']:<8} {r['item']:<6} {cells} "
            f"{sum(p.values()):>7.3f} {r['ratio_wall']:>7.3f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ orchestration


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """n intra-op threads for the block; the caller's count back after (tests share it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def memory_check(cfg: Config, bridge: Any, task: Any, *, in_process: bool) -> dict[str, Any]:
    """The 4 GB check: the process's whole peak resident memory (VmHWM: interpreter,
    libraries, the model, the evaluation) after one evaluation from nothing."""
    dev = cfg.device
    if _is_cuda(dev):
        torch.cuda.reset_peak_memory_stats(dev)
    model_mb = maxrss_mb()
    wall, cpu, detail = _timed(lambda: evaluation_from_nothing(bridge, task, cfg), dev)
    peak = maxrss_mb()
    out: dict[str, Any] = {
        "item": "memory",
        "item_wall_s": wall,
        "item_cpu_s": cpu,
        "limit_mb": MEMORY_LIMIT_MB,
        "memory": {
            "method": "VmHWM of the whole process (ru_maxrss where /proc is missing), never "
            "reset: interpreter, libraries, the model and the evaluation"
            + (" (in-process: the parent's peak, meaningless)" if in_process else ""),
            "after_model_mb": model_mb,
            "peak_mb": peak,
        },
        "passed": peak <= MEMORY_LIMIT_MB,
        "detail": detail,
    }
    if _is_cuda(dev):
        # reported, not judged: on a GPU the chunks fill half its free memory by design,
        # so the peak follows the card (a 4 GB card gets ~1.5 GB chunks)
        out["memory"]["gpu_peak_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def memory_worker(cfg: Config, task_path: Path) -> dict[str, Any]:
    """A fresh process: the model (no plain copy: an evaluation needs none), the task,
    one evaluation; nothing measured before it, so the peak is the whole run's."""
    with torch_threads(cfg.threads):
        _, bridge = build_model(
            cfg.shape, cfg.seed, device=cfg.device, plain=False, family=cfg.family
        )
        task, _ = load_task(task_path)
        return memory_check(cfg, bridge, task, in_process=False)


def worker(item: str, cfg: Config, task_path: Path) -> dict[str, Any]:
    if item == "memory":
        return memory_worker(cfg, task_path)
    with torch_threads(cfg.threads):
        hf_model, bridge = build_model(cfg.shape, cfg.seed, device=cfg.device, family=cfg.family)
        task, checksum = load_task(task_path)
        if not np.isclose(weights_checksum(hf_model), checksum, rtol=1e-9):
            raise SystemExit("worker built different weights than the parent")
        return measure(item, cfg, hf_model, bridge, task)


def machine_info(cfg: Config) -> dict[str, Any]:
    from seqcirc.results import versions

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=Path(__file__).resolve().parent, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    gpu = None
    if _is_cuda(cfg.device):
        props = torch.cuda.get_device_properties(torch.device(cfg.device))
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "device": cfg.device,
        "gpu": gpu,
        "torch_threads": cfg.threads,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "platform": platform.platform(),
        "git_commit": commit,
        "versions": versions(),
    }


def _run_item(item: str, cfg: Config, task_path: Path, in_process: bool, models: Any) -> Any:
    load_before = os.getloadavg()
    if in_process:
        hf_model, bridge, task = models
        res = measure(item, cfg, hf_model, bridge, task)
        if "memory" in res:
            res["memory"]["method"] = "ru_maxrss of the parent (in-process: not per item)"
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", item,
               "--config", json.dumps(cfg.to_dict()), "--task", str(task_path)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            res = {"item": item, "error": f"worker exit {proc.returncode}: {proc.stderr[-2000:]}"}
        else:
            res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["loadavg_before"] = list(load_before)
    res["loadavg_after"] = list(os.getloadavg())
    res["family"], res["engine"] = cfg.family, cfg.engine if item != "bare" else "-"
    return res


def render_table(results: list[dict[str, Any]], cfg: Config) -> str:
    tg = targets(cfg)
    head = (
        f"{'model':<6} {'engine':<8} {'item':<16} {'item s':>8} {'bare s':>7} {'ratio':>7} "
        f"{'cpu ratio':>9} {'target':>7} {'met':>4} {'peak MB':>8} {'+MB':>7} {'load':>5}  notes"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lead = f"{r.get('family', cfg.family):<6} {r.get('engine', cfg.engine):<8} "
        if "error" in r:
            lines.append(f"{lead}{r['item']:<16} {r['error'][:100]}")
            continue
        mem = r["memory"]
        gpu_note = f", GPU peak {mem['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in mem else ""
        if r["item"] == "memory":
            d = r["detail"]
            limit = f"{r['limit_mb']:g}MB"
            lines.append(
                f"{lead}{'memory':<16} {r['item_wall_s']:>8.2f} {'':>7} {'':>7} {'':>9} "
                f"{limit:>7} {'yes' if r['passed'] else 'NO':>4} "
                f"{mem['peak_mb']:>8.0f} {'':>7} {r.get('loadavg_before', [0.0])[0]:>5.2f}  "
                f"whole process (model {mem['after_model_mb']:.0f} MB before), "
                f"{d['n_random']}-circuit baseline in {d['chunks']} chunks of "
                f"{d['batch_rows']} rows{gpu_note}"
            )
            continue
        target = tg.get(r["item"])
        met = "" if target is None else ("yes" if r["ratio_wall"] <= target else "NO")
        d = r.get("detail", {})
        note = ""
        if r["item"] == "baseline":
            per = r["ratio_wall"] / d["n_circuits"]
            note = f"{d['n_circuits']} circuits, {per:.2f} per circuit"
        elif r["item"] == "discovery":
            note = (
                f"{d['forward_passes']:.2f} passes done / {d['forward_passes_needed']} needed, "
                f"{r['ratio_wall'] / d['forward_passes']:.2f} bare per pass, "
                f"{d['nodes_found']} nodes, {d['n_sweeps']} sweeps"
            )
        elif r["item"] == "eap_ig_discovery":
            share = d["share_of_pruning"]
            met = "yes" if share <= PASS_SHARE else "NO"
            note = (
                f"{d['passes']:.1f} passes (fwd + bwd; {d['bisection_passes']} bisection) vs "
                f">= {d['pruning_passes_at_least']} for edge pruning: {share:.4f} (target "
                f"<= 1/20; backward counted twice {d['share_counting_backward_twice']:.4f}); "
                f"{d['edges_found']} edges, F/F(M) {d['score']:.3f}"
            )
        elif "backward_passes" in d:
            note = f"{d['forward_passes']:.0f} forward + {d['backward_passes']:.0f} backward passes"
        elif "forward_passes" in d:
            note = f"{d['forward_passes']:.2f} passes"
        note += gpu_note
        lines.append(
            f"{lead}{r['item']:<16} {r['item_wall_s']:>8.2f} {r['bare_wall_s']:>7.3f} "
            f"{r['ratio_wall']:>7.2f} {r['ratio_cpu']:>9.2f} "
            f"{'' if target is None else f'{target:g}':>7} {met:>4} "
            f"{mem['peak_mb']:>8.0f} {mem['delta_mb']:>7.0f} {r['loadavg_before'][0]:>5.2f}  {note}"
        )
    return "\n".join(lines)


def side_by_side(results: list[dict[str, Any]], cfg: Config) -> str:
    """Each family's items on both engines, as ratios to bare forwards, and generic / fast
    (baseline: per circuit)."""
    ratio: dict[tuple[str, str, str], float] = {}
    for r in results:
        if "error" not in r and "ratio_wall" in r:
            per = r["detail"]["n_circuits"] if r["item"] == "baseline" else 1
            ratio[(r["family"], r["item"], r["engine"])] = r["ratio_wall"] / per
    head = f"{'model':<6} {'item':<10} {'fast':>7} {'generic':>8} {'generic/fast':>13}"
    lines = [head, "-" * len(head)]
    seen = dict.fromkeys(
        (r["family"], r["item"]) for r in results if r["item"] not in ("bare", "memory")
    )
    for family, item in seen:
        fast, gen = ratio.get((family, item, "fast")), ratio.get((family, item, "generic"))
        cells = [f"{v:>7.2f}" if v is not None else f"{'-':>7}" for v in (fast, gen)]
        both = f"{gen / fast:>13.2f}" if fast and gen else f"{'-':>13}"
        name = "baseline/c" if item == "baseline" else item
        lines.append(f"{family:<6} {name:<10} {cells[0]} {cells[1]:>8} {both}")
    return "\n".join(lines)


def run(cfg: Config, items: tuple[str, ...], out: Path | None, in_process: bool,
        command: str, engines: tuple[str, ...] = ENGINES,
        families: tuple[str, ...] = ("gpt2",)) -> dict[str, Any]:  # fmt: skip
    results = []
    for family in families:
        fcfg = replace(cfg, family=family)
        with torch_threads(cfg.threads):
            hf_model, bridge = build_model(cfg.shape, cfg.seed, device=cfg.device, family=family)
            task = random_task(hf_model, cfg.n_prompts, cfg.seq_len, cfg.seed)
        with tempfile.TemporaryDirectory() as tmp, torch_threads(cfg.threads):
            task_path = Path(tmp) / "task.npz"
            save_task(task, task_path, weights_checksum(hf_model))
            for item in items:
                if family != "gpt2" and item not in FAMILY_ITEMS:
                    continue
                for engine in engines if item != "bare" else engines[:1]:
                    ecfg = replace(fcfg, engine=engine)
                    res = _run_item(item, ecfg, task_path, in_process, (hf_model, bridge, task))
                    results.append(res)
                    print(render_table([res], ecfg).splitlines()[-1], flush=True)
        del hf_model, bridge
    report = {
        "command": command,
        "machine": machine_info(cfg),
        "config": cfg.to_dict(),
        "engines": list(engines),
        "families": list(families),
        "targets": targets(cfg),
        "results": results,
    }
    print()
    print(render_table(results, cfg))
    print()
    print(side_by_side(results, cfg))
    parts = breakdown_table(results)
    if parts:
        print("\nwhere each pass goes, in bare forwards (prepare: setup, corrupted_run, "
              "clean_run, bridge_check, other; then the circuit's mask and liveness, its "
              "pass, the empty circuit):")  # fmt: skip
        print(parts)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {out}")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="20-circuit baseline, discovery on 16 prompts, 2 repeats",
    )
    p.add_argument(
        "--repeats", type=int,
        help="runs of each cheap item (node, edge, eap) and bare forwards interleaved with "
        "them (default 3, --quick 2; the first run pays one-off costs, so more runs give "
        "a median nearer the warm figure on a noisy machine)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/results.json"))
    p.add_argument("--items", default=",".join(ITEMS), help=f"comma-separated from {ITEMS}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--device", default="cpu", help="torch device: cpu (the README's figures), cuda, auto"
    )
    p.add_argument("--engine", default=",".join(ENGINES), help=f"comma-separated from {ENGINES}")
    p.add_argument(
        "--families", default=",".join(FAMILIES), help=f"comma-separated from {FAMILIES}"
    )
    p.add_argument("--tiny", action="store_true", help="a 2x2 model (smoke test)")
    p.add_argument("--in-process", action="store_true", help="no worker processes")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--task", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)  # fmt: skip
    if args.worker:
        res = worker(args.worker, Config.from_dict(json.loads(args.config)), args.task)
        print(json.dumps(res))
        return None
    from seqcirc.errors import SeqcircError
    from seqcirc.models.device import resolve_device

    try:
        device = resolve_device(args.device)
    except SeqcircError as err:
        p.error(f"--device: {err.message} ({err.hint})")
    cfg = Config(threads=args.threads, device=device)
    if args.quick:
        cfg = replace(cfg, n_random=20, discovery_prompts=16, repeats=2)
    if args.repeats is not None:
        if args.repeats < 1:
            p.error("--repeats must be at least 1")
        cfg = replace(cfg, repeats=args.repeats)
    if args.tiny:
        cfg = replace(cfg, shape=TINY, n_prompts=8, seq_len=5, n_random=5, discovery_prompts=8)
    items = tuple(s for s in args.items.split(",") if s)
    unknown = set(items) - set(ITEMS)
    if unknown:
        p.error(f"unknown items {sorted(unknown)}; choose from {ITEMS}")
    engines = tuple(s for s in args.engine.split(",") if s)
    families = tuple(s for s in args.families.split(",") if s)
    if not engines or set(engines) - set(ENGINES):
        p.error(f"--engine: choose from {ENGINES}")
    if not families or set(families) - set(FAMILIES):
        p.error(f"--families: choose from {FAMILIES}")
    command = " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    return run(cfg, items, args.out, args.in_process, command, engines, families)


if __name__ == "__main__":
    main()
