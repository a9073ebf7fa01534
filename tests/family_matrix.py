"""The family matrix's checks, shared by tests/test_forward_families.py and
scripts/architectures.py (which writes README's table of supported architectures).

For one family and one granularity (nodes or edges): save the family's tiny model as a
folder, write a .circ file of several circuits on it (mean, zero and resample ablation;
named positions for nodes; q, k, v, MLP and logits receivers for edges), evaluate it
through seqcirc's public path (Session.evaluate_file, as `seqcirc test` does), and hold
every circuit's per-prompt metric, the full model's and the empty circuit's, and both
faithfulness variants to the independent reference (tests/reference_hf.py) on the same
prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqcirc.plan import Edge
from tests import families
from tests.reference_hf import (
    Reference,
    load_reference_model,
    normalized_faithfulness,
    performance_ratio,
)
from tests.reference_layouts import LAYOUTS, sizes

TOL = 1e-5  # per-prompt logit differences and faithfulness, absolute
GRANULARITIES = ("nodes", "edges")

_TASK = """seed 0

task months = sequence(months, template=all, members=3, prompts=9, seed=0)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)
"""
_EXPECT = """  expect faithfulness(bound=point) >= -1
  expect faithfulness(variant=normalized, bound=point) >= -1
"""
NODE_CIRCUITS = {
    "mixed": "heads 0.0, 0.2, 1.1, 1.3\n  mlp 0",
    "one_head": "heads 1.2",
    "zero": "ablate zero\n  heads 0.1, 0.3, 1.0\n  mlp 1",
    "resample": "ablate resample\n  heads 0.0, 1.1\n  mlp 0, 1",
    "named_positions": "ablate mean at S3, END\n  heads 0.1, 1.2, 1.3\n  mlp 0",
}
_EDGES = """edge embed -> 0.0
  edge embed -> mlp 0
  edge 0.0 -> 1.1 (q)
  edge 0.2 -> 1.3 (k, v)
  edge 0.1 -> 1.0 (k)
  edge mlp 0 -> 1.2 (v)
  edge 0.1 -> mlp 1
  edge 1.1 -> logits
  edge mlp 1 -> logits
  edge embed -> logits"""
_SEQUENTIAL_EDGES = "\n  edge 0.3 -> mlp 0\n  edge 1.0 -> mlp 1"  # a head to its own layer's MLP
EDGE_CIRCUITS = {
    "mean": "ablate edges",
    # most receivers keep no edge: their input is exactly 0 (plus biases), which a norm
    # turns into noise / sqrt(eps) unless the input is rebuilt rather than subtracted
    "zero": "ablate edges zero",
    "resample": "ablate edges resample",
    "sparse": "ablate edges\n  edge 0.1 -> 1.2 (q)\n  edge mlp 0 -> logits",
}


def circ_text(family: families.Family, granularity: str) -> str:
    """The .circ file of one family's circuits (the folder is ./KEY beside it)."""
    parallel = LAYOUTS[family.hf_class].parallel
    parts = [_TASK]
    table = NODE_CIRCUITS if granularity == "nodes" else EDGE_CIRCUITS
    for name, body in table.items():
        if granularity == "edges" and name != "sparse":
            body += "\n  " + _EDGES + ("" if parallel else _SEQUENTIAL_EDGES)
        parts.append(f'circuit {name} on "./{family.key}" {{\n  {body}\n{_EXPECT}}}\n')
    return "\n".join(parts)


def write_family(family: families.Family, root: Path) -> Path:
    """The family's model folder and its two .circ files under `root` (once)."""
    folder = root / family.key
    if not (folder / "config.json").is_file():
        families.save(family, folder)
        for gran in GRANULARITIES:
            (root / f"{family.key}_{gran}.circ").write_text(circ_text(family, gran))
    return folder


def reference_edge(edge: Edge, group: int) -> Edge:
    """An edge as the reference names it: a k or v receiver is a kv head, so `L.h (k)`
    (query head h, as .circ files name heads) is kv head h // group, the one head h reads."""
    if edge.input in ("k", "v"):
        layer, head = edge.receiver.split(".")
        return Edge(edge.sender, f"{layer}.{int(head) // group}", edge.input)
    return edge


@dataclass
class Agreement:
    """The largest differences from the reference over one family's circuits.

    Per-prompt values must agree to TOL. Faithfulness is a ratio r = a / b of means, so
    a difference of TOL in them moves it by up to TOL (1 + |r|) / |b|: each variant must
    agree within that (`faithfulness_share` <= 1), which is TOL itself when b is 1."""

    circuits: int = 0
    per_prompt: float = 0.0  # per-prompt metric of circuits, the model and the empty circuit
    faithfulness: float = 0.0  # both variants, absolute
    faithfulness_share: float = 0.0  # the same over what TOL per prompt allows
    moved: float = 0.0  # the smallest largest effect of a circuit (equality means something)

    def add(self, ours: dict[str, Any], ref: dict[str, np.ndarray]) -> None:
        self.circuits += 1
        for key in ("model", "circuit", "empty"):
            diff = float(np.abs(np.asarray(ours["per_prompt"][key]) - ref[key]).max())
            self.per_prompt = max(self.per_prompt, diff)
        f_model, f_empty = float(np.mean(ref["model"])), float(np.mean(ref["empty"]))
        variants = {
            "performance_ratio": (performance_ratio(ref["circuit"], ref["model"]), f_model),
            "normalized_faithfulness": (
                normalized_faithfulness(ref["circuit"], ref["model"], ref["empty"]),
                f_model - f_empty,
            ),
        }
        for variant, (want, den) in variants.items():
            diff = abs(ours["faithfulness"][variant]["value"] - want)
            self.faithfulness = max(self.faithfulness, diff)
            allowed = TOL * (1 + abs(want)) / abs(den)
            self.faithfulness_share = max(self.faithfulness_share, diff / allowed)
        effect = float(np.abs(ref["circuit"] - ref["model"]).max())
        self.moved = effect if self.circuits == 1 else min(self.moved, effect)

    def check(self) -> None:
        assert self.per_prompt <= TOL and self.faithfulness_share <= 1, (
            f"seqcirc differs from the reference by {self.per_prompt:.3g} per prompt and "
            f"{self.faithfulness:.3g} in faithfulness over {self.circuits} circuits"
        )
        assert self.moved > 0.01, "some circuit changed nothing: equality would mean nothing"

    def summary(self) -> str:
        return (
            f"{self.circuits} circuits: per prompt within {self.per_prompt:.1e}, "
            f"faithfulness within {self.faithfulness:.1e}"
        )


def check_family(family: families.Family, granularity: str, root: Path, session: Any) -> Agreement:
    """Evaluate the family's .circ file of `granularity` through seqcirc and compare each
    circuit with the reference; raises (a SeqcircError where seqcirc refuses, an
    AssertionError where it disagrees)."""
    from seqcirc.plan.compile import compile_file

    folder = write_family(family, root)
    path = root / f"{family.key}_{granularity}.circ"
    result = session.evaluate_file(path)
    plan = compile_file(path)
    loaded = session.model(plan.circuits[0], root)
    model = load_reference_model(folder)
    group = sizes(model.config)["H"] // sizes(model.config)["KV"]
    refs: dict[str, Reference] = {}
    agreement = Agreement()
    for circuit in plan.circuits:
        task = session.task(loaded, circuit, root, plan.seed)
        value = circuit.ablation.value
        if value not in refs:
            refs[value] = Reference(model, task, value)
        ref = refs[value]
        if circuit.ablation.is_edge:
            m = ref.edges([reference_edge(e, group) for e in circuit.edges])
            empty = ref.empty("edge")
        else:
            m = ref.nodes(circuit.nodes, circuit.ablation.positions)
            empty = ref.empty("node")
        ours = result[circuit.name]
        agreement.add(
            {"per_prompt": ours.per_prompt, "faithfulness": ours.faithfulness},
            {"model": ref.m_model, "circuit": m, "empty": empty},
        )
    agreement.check()
    return agreement


def whole_model(loaded: Any, task: Any, granularity: str, value: str = "mean") -> tuple[Any, Any]:
    """(the whole-model circuit's per-prompt metric, the clean run's) from the engine's
    lowest stable calls: nothing ablated must give the clean run to the last bit."""
    from seqcirc.engine.edges import run_edges
    from seqcirc.engine.prepare import prepare
    from seqcirc.engine.runner import run_circuits
    from seqcirc.plan import AblationSpec

    spec = AblationSpec(granularity="edge" if granularity == "edges" else "node", value=value)  # type: ignore[arg-type]
    state = prepare(loaded.bridge, task, spec)
    if granularity == "edges":
        return run_edges(state, np.ones(state.graph.n_edges, dtype=bool)), state.m_model
    return run_circuits(state, np.ones((1, len(state.nodes)), dtype=bool))[0], state.m_model


def check_bridge(family: families.Family) -> dict[str, Any]:
    """Boot the family's tiny model as a TransformerBridge: its logits must be the Hugging
    Face model's (an unwrapped copy, eager attention as the bridge runs it), with and
    without per-head q/k/v inputs. Returns the record's entry: the largest logit
    difference and whether the bridge splits q/k/v inputs per head."""
    import torch

    vocab = len(families.tokenizer(family))
    hf = families.build(family, vocab)
    hf.set_attn_implementation("eager")
    bridge = families.bridge_of(families.build(family, vocab))
    tokens = torch.as_tensor(np.random.default_rng(0).integers(2, vocab, (3, 12)))
    with torch.no_grad():
        want = hf(tokens).logits
        diffs = [float((bridge(tokens) - want).abs().max())]
        try:
            bridge.set_use_split_qkv_input(True)
            split = True
        except NotImplementedError:
            split = False
        if split:
            diffs.append(float((bridge(tokens) - want).abs().max()))
    scale = float(want.abs().max())
    assert max(diffs) <= 1e-5 * scale, f"the bridge's logits differ by {max(diffs):.3g}"
    assert float(want.std()) > 0.5, "the logits are nearly uniform: equality means little"
    return {"bridge_logits_within": f"{max(diffs):.1e}", "split_qkv": split}
