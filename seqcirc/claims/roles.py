"""Role claims: `role 9.1 successor(top=5) >= 0.25` measured on a model, with a verdict.

A role claim is a seqcirc.plan.Claim with kind "role" and params:
  head   "L.H" (or a Node);  role  one of ROLES;
  successor / copy: top (k, default 5), among ("vocab": target in the top k of the
    vocabulary, the paper's score; "set": target ranks first among the set's members),
    set (ordered set; default: the circuit's task generator), context, members;
  attends: from, to (named positions of the task's prompts), which (clean|corrupted);
  previous_token / duplicate / induction: n_seqs, half_len (the seed is the run's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seqcirc.errors import InputError, did_you_mean
from seqcirc.language.vocab import COMPARISONS, OV_AMONG, ROLES
from seqcirc.plan import Claim, Node
from seqcirc.source import Span
from seqcirc.tasks.types import TokenizedTask


@dataclass(frozen=True)
class RoleClaimResult:
    """The measured value of one role claim and whether it holds."""

    claim_id: str
    head: str
    role: str
    value: float
    op: str
    threshold: float
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    path: str = ""
    line: int = 0
    col: int = 0

    def to_claim_result(self) -> Any:
        """The common results object (seqcirc.results.ClaimResult); a role score is a
        point value, compared as it is."""
        from seqcirc.results import ClaimResult

        return ClaimResult(
            id=self.claim_id, kind="role", text=self.text, line=self.line, col=self.col,
            op=self.op, threshold=self.threshold, bound="point",
            verdict="pass" if self.passed else "fail", value=self.value, compared=self.value,
            detail={"head": self.head, "role": self.role, **self.detail},
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.claim_id, "kind": "role", "head": self.head, "role": self.role,
            "value": self.value, "op": self.op, "threshold": self.threshold,
            "passed": self.passed, "detail": self.detail, "text": self.text,
            "path": self.path, "line": self.line, "col": self.col,
        }  # fmt: skip


def _span(claim: Claim) -> Span | None:
    return Span(claim.path, claim.line, claim.col) if claim.path and claim.line else None


def _fail(claim: Claim, message: str, code: str, hint: str | None = None) -> InputError:
    return InputError(message, code=code, span=_span(claim), hint=hint)


_LH = re.compile(r"^L(\d+)H(\d+)$")


def _head(
    claim: Claim, value: Any, bridge: Any, groups: Mapping[str, Sequence[Node]] | None
) -> Node:
    """ "9.1", "L9H1", a Node, or a group of exactly one head."""
    text = str(value)
    if groups and text in groups:
        members = [n for n in groups[text] if n.head is not None]
        if len(members) != 1 or len(groups[text]) != 1:
            raise _fail(
                claim, f"group {text} has {len(groups[text])} members; a role claim is "
                "about one head", "E805",
                "write one role line per head, e.g. " + ", ".join(map(str, groups[text][:2])),
            )  # fmt: skip
        value = members[0]
    elif m := _LH.match(text):
        value = Node(int(m.group(1)), int(m.group(2)))
    try:
        node = value if isinstance(value, Node) else Node.parse(str(value))
    except (ValueError, TypeError):
        raise _fail(
            claim, f"role claim names no head: {value!r}", "E805", "write it as 9.1 or L9H1"
        ) from None
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    if node.head is None or not (0 <= node.layer < n_layers and 0 <= node.head < n_heads):
        raise _fail(
            claim,
            f"head {node} does not exist in this model",
            "E805",
            f"layers 0..{n_layers - 1}, heads 0..{n_heads - 1}",
        )
    return node


def measure_role(
    bridge: Any,
    tokenizer: Any,
    node: Node,
    role: str,
    params: Mapping[str, Any],
    *,
    set_name: str | None = None,
    task: TokenizedTask | None = None,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """One head's score on one role, and details worth reporting next to it."""
    from seqcirc.roles.attention import attends_scores, pattern_scores
    from seqcirc.roles.members import bos_id
    from seqcirc.roles.ov import ov_scores

    assert node.head is not None
    layer, head = node.layer, node.head
    if role in ("successor", "copy"):
        name = params.get("set", set_name)
        if name is None:
            raise InputError(
                f"{role} needs an ordered set",
                code="E809",
                hint="give set=NAME or use a task built from an ordered set",
            )
        among = params.get("among", "vocab")
        if among not in OV_AMONG:
            raise InputError(f"among={among!r}", code="E809", hint="among=vocab or among=set")
        s = ov_scores(
            bridge,
            tokenizer,
            str(name),
            target="next" if role == "successor" else "self",
            top_k=int(params.get("top", 5)),
            context=params.get("context", "prompts"),
            members=params.get("members"),
            heads=[(layer, head)],
        )
        value = s.topk[layer, head] if among == "vocab" else s.first_in_set[layer, head]
        detail = {
            "set": s.set_name,
            "top": s.top_k,
            "among": among,
            "context": s.context,
            "n_scored": s.n_scored,
            "topk": float(s.topk[layer, head]),
            "first_in_set": float(s.first_in_set[layer, head]),
            "per_member": s.per_member(layer, head),
        }
        return float(value), detail
    if role == "attends":
        if task is None:
            raise InputError("attends needs the task's prompts", code="E808")
        if "from" not in params or "to" not in params:
            raise InputError(
                "attends needs from=POS and to=POS",
                code="E808",
                hint="e.g. attends(from=S3, to=S2)",
            )
        which = params.get("which", "clean")
        scores = attends_scores(bridge, task, str(params["from"]), str(params["to"]), which=which)
        return float(scores[layer, head]), {
            "from": params["from"],
            "to": params["to"],
            "which": which,
            "task": task.name,
            "n_prompts": task.n_prompts,
        }
    n_seqs, half_len = int(params.get("n_seqs", 8)), int(params.get("half_len", 20))
    scores = pattern_scores(
        bridge,
        tokenizer,
        n_seqs=n_seqs,
        half_len=half_len,
        seed=seed,
        bos=bos_id(bridge, tokenizer),
    )[role]
    return float(scores[layer, head]), {"n_seqs": n_seqs, "half_len": half_len, "seed": seed}


def evaluate_role_claim(
    claim: Claim,
    bridge: Any,
    tokenizer: Any,
    *,
    set_name: str | None = None,
    task: TokenizedTask | None = None,
    seed: int = 0,
    groups: Mapping[str, Sequence[Node]] | None = None,
) -> RoleClaimResult:
    """Measure a role claim and compare it with its threshold (the point value: a role
    score is a share over member positions or prompts, not an estimate with a CI).

    set_name: the ordered set of successor/copy (the circuit's task generator) unless the
    claim says set=...; task: the circuit's prompts, for attends; groups: the circuit's
    role groups (CircuitPlan.groups as a dict), so a one-head group name can be the head.
    """
    if claim.kind != "role":
        raise ValueError(f"not a role claim: {claim.kind}")
    params = dict(claim.params)
    role = str(params.pop("role", ""))
    if role not in ROLES:
        raise _fail(
            claim,
            f"unknown role {role!r}",
            "E809",
            did_you_mean(role, ROLES) + f"roles: {', '.join(ROLES)}",
        )
    node = _head(claim, params.pop("head", None), bridge, groups)
    unknown = sorted(set(params) - set(ROLES[role]))
    if unknown:
        raise _fail(
            claim,
            f"{role} takes no parameter {unknown[0]!r}",
            "E809",
            f"{role} takes: {', '.join(sorted(ROLES[role]))}",
        )
    try:
        value, detail = measure_role(
            bridge, tokenizer, node, role, params, set_name=set_name, task=task, seed=seed
        )
    except InputError as err:
        if err.span is None and _span(claim) is not None:
            raise InputError(err.message, code=err.code, span=_span(claim), hint=err.hint) from err
        raise
    passed = bool(COMPARISONS[claim.op](value, claim.threshold))
    return RoleClaimResult(
        claim.id,
        str(node),
        role,
        value,
        claim.op,
        claim.threshold,
        passed,
        detail,
        claim.text,
        claim.path,
        claim.line,
        claim.col,
    )
