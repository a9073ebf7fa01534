"""The intervention plan: what `compile` produces and `evaluate` consumes.

Frozen, hashable, JSON-serialisable, no torch. Parameters are stored as sorted tuples of
(key, value) pairs so plans hash and compare by value.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from seqcirc.language.names import canonical, parse_component
from seqcirc.plan.ablation import OMIT_DEFAULT, AblationSpec

PLAN_VERSION = 1

Params = tuple[tuple[str, Any], ...]


def params(**kwargs: Any) -> Params:
    """Build a canonical (sorted) parameter tuple."""
    return tuple(sorted(kwargs.items()))


@functools.total_ordering
@dataclass(frozen=True)
class Node:
    """A circuit component: an attention head (layer, head) or an MLP (layer, head=None).

    Sorted in computation order: the heads of layer L (by index), then MLP L.
    """

    layer: int
    head: int | None = None  # None for an MLP

    @property
    def sort_key(self) -> tuple[int, bool, int]:
        return (self.layer, self.head is None, self.head or 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return self.sort_key < other.sort_key

    @property
    def kind(self) -> Literal["head", "mlp"]:
        return "mlp" if self.head is None else "head"

    def __str__(self) -> str:
        """The canonical spelling ("9.1", "mlp9"), which .circ files accept back."""
        return canonical(self.layer, self.head)

    @classmethod
    def parse(cls, text: str) -> Node:
        """Inverse of str(); any spelling the language accepts (seqcirc.language.names:
        "9.1", "L9H1", "a9.h1", "mlp9", "m9", TransformerLens hook names). ValueError
        on anything else."""
        found = parse_component(text)
        if found is None:
            raise ValueError(f"not a head or an MLP: {text!r}")
        return cls(*found)


# Edge endpoints besides nodes: the embeddings send, the final residual (logits) receives.
EMBED = "embed"
LOGITS = "logits"
ReceiverInput = Literal["q", "k", "v", "mlp", "resid"]


@dataclass(frozen=True, order=True)
class Edge:
    """sender -> receiver input: q/k/v for a head, "mlp" for an MLP, "resid" for logits."""

    sender: str  # str(Node) or EMBED
    receiver: str  # str(Node) or LOGITS
    input: ReceiverInput

    def __str__(self) -> str:
        return f"{self.sender}->{self.receiver}[{self.input}]"


@dataclass(frozen=True)
class ModelRef:
    """A model as the file names it. source: hub name, local folder, or the bundled model;
    "object": a model object given from Python for every circuit (seqcirc.models.objects)."""

    name: str
    source: Literal["hub", "local", "bundled", "object"]


@dataclass(frozen=True)
class Generation:
    """`metric accuracy(generate, max_new_tokens=N, match=REGEX)`: greedy decoding of at
    most N tokens, scored 1 where `match` (default DEFAULT_MATCH; {answer} is the answer
    text, stripped and escaped) matches at the start of the decoded continuation."""

    max_new_tokens: int
    match: str | None = None

    def to_meta(self) -> dict[str, object]:
        return {"max_new_tokens": self.max_new_tokens, "match": self.match}


@dataclass(frozen=True)
class TaskSpec:
    """Where prompts come from and how they are scored."""

    name: str
    generator: str | None = None  # e.g. "months"; None when `file` is given
    params: Params = ()  # generator parameters (template, members, prompts, seed, ...)
    file: str | None = None  # a user prompt file (JSONL/CSV), resolved relative to the .circ file
    corruption: str = "random_members"
    corruption_params: Params = ()
    metric: str = "logit_diff"  # logit_diff | prob | accuracy | kl
    correct: str = "next"
    incorrect: str = "last"
    filter_correct: bool = False  # the paper's filter: keep p(correct) > 2 p(incorrect)
    # auto | on | off: prepend BOS (auto: as the model's loader does). Left out of plan
    # JSON at its default, so plans and circuit hashes from before it stay the same.
    bos: str = field(default="auto", metadata={OMIT_DEFAULT: True})
    # generate, max_new_tokens, match of `metric accuracy(generate, ...)` (Generation);
    # left out of plan JSON when empty, as bos.
    metric_params: Params = field(default=(), metadata={OMIT_DEFAULT: True})

    @property
    def generation(self) -> Generation | None:
        """How the metric generates, or None for a metric read at the answer position."""
        p = dict(self.metric_params)
        if not p.get("generate"):
            return None
        return Generation(int(p["max_new_tokens"]), p.get("match"))

    def effective_bos(self, model_default: bool) -> bool:
        """Whether this task's prompts start with BOS on a model whose loader says
        `model_default`."""
        return model_default if self.bos == "auto" else self.bos == "on"


@dataclass(frozen=True)
class Claim:
    """One expectation or role claim, with its threshold and where it was written.

    kind: faithfulness | normalized_faithfulness | completeness | minimality | lens |
          random_baseline | equivalence | independence | sufficiency | minimality_test | role
          (the two faithfulness kinds also carry params variant=ratio|normalized; lens
          carries layer, measure and target)
    bound: which statistic is compared: "lower"/"upper" confidence bound, or "point".
          p-value claims (random_baseline and the Shi et al. tests) compare the p-value
          with `op threshold` (e.g. p < 0.01) and have bound "point".
    """

    id: str
    kind: str
    op: Literal[">=", ">", "<=", "<"]
    threshold: float
    params: Params = ()
    bound: Literal["lower", "upper", "point"] = "point"
    path: str = ""
    line: int = 0
    col: int = 0
    text: str = ""  # the claim as written, for reports

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class CircuitPlan:
    name: str
    model: ModelRef
    task: TaskSpec
    ablation: AblationSpec
    nodes: tuple[Node, ...]  # sorted; for edge circuits, the nodes the edges touch
    edges: tuple[Edge, ...] = ()  # empty for node circuits
    groups: tuple[tuple[str, tuple[Node, ...]], ...] = ()  # role name -> nodes
    claims: tuple[Claim, ...] = ()
    line: int = 0
    # Edges a node circuit's author highlights (the paper's 4.4->9.1 ...): reported, not
    # ablated; an edge circuit (ablation.granularity "edge") evaluates `edges` instead.
    highlighted_edges: tuple[Edge, ...] = ()
    derived_from: tuple[str, ...] = ()  # set algebra: the circuits this one was built from

    def circuit_hash(self) -> str:
        """Short stable hash of exactly what is evaluated (nodes, edges, ablation)."""
        payload = json.dumps(
            {
                "nodes": [str(n) for n in self.nodes],
                "edges": [str(e) for e in self.edges],
                "ablation": to_jsonable(self.ablation),
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    source: str
    circuits: tuple[CircuitPlan, ...]
    seed: int = 0
    version: int = PLAN_VERSION
    extra: Params = field(default=())


def to_jsonable(obj: Any) -> Any:
    """Plain JSON structure for a plan (nodes as "9.1"/"mlp9", params as objects); a field
    marked OMIT_DEFAULT is left out while it holds its default."""
    if isinstance(obj, Node):
        return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get(OMIT_DEFAULT) and value == f.default:
                continue
            if f.name in ("params", "corruption_params", "extra", "metric_params"):
                out[f.name] = {k: to_jsonable(v) for k, v in value}
            elif f.name == "groups":
                out[f.name] = {k: [str(n) for n in v] for k, v in value}
            else:
                out[f.name] = to_jsonable(value)
        return out
    if isinstance(obj, tuple | list):
        return [to_jsonable(x) for x in obj]
    return obj


def plan_to_json(plan: Plan) -> str:
    return json.dumps(to_jsonable(plan), indent=2, sort_keys=True)


__all__ = [
    "EMBED",
    "LOGITS",
    "PLAN_VERSION",
    "AblationSpec",
    "CircuitPlan",
    "Claim",
    "Edge",
    "Generation",
    "ModelRef",
    "Node",
    "Plan",
    "TaskSpec",
    "params",
    "plan_to_json",
    "to_jsonable",
]
