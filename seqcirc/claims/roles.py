"""Role claims: `role 9.1 successor(top=5) >= 0.25` measured on a model.

A role claim is a seqcirc.plan.Claim with kind "role" and params:
  head   "L.H" (or a Node);  role  one of ROLES;
  successor / copy: top (k, default 5), among ("vocab": target in the top k of the
    vocabulary, the paper's score; "set": target ranks first among the set's members),
    set (ordered set; default: the circuit's task generator), context, members;
  attends: from, to (named positions of the task's prompts), which (clean|corrupted);
  previous_token / duplicate / induction: n_seqs, half_len (the seed is the run's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from seqcirc.claims.context import ClaimContext, ClaimValue
from seqcirc.errors import InputError, did_you_mean
from seqcirc.language.names import HEAD_SPELLINGS
from seqcirc.language.vocab import OV_AMONG, PAPER_OV_MEMBERS, PATTERN_DEFAULTS, ROLES
from seqcirc.plan import Claim, Node
from seqcirc.source import Span
from seqcirc.tasks.types import TokenizedTask


@dataclass(frozen=True)
class RoleMeasure:
    """One role claim's head, role and score, with details worth reporting next to it.
    No verdict: seqcirc.claims.evaluate.judge decides every claim's."""

    head: str
    role: str
    value: float
    detail: dict[str, Any] = field(default_factory=dict)

    def claim_value(self) -> ClaimValue:
        return ClaimValue(self.value, detail={"head": self.head, "role": self.role, **self.detail})


def _span(claim: Claim) -> Span | None:
    return Span(claim.path, claim.line, claim.col) if claim.path and claim.line else None


def _fail(claim: Claim, message: str, code: str, hint: str | None = None) -> InputError:
    return InputError(message, code=code, span=_span(claim), hint=hint)


def _head(
    claim: Claim, value: Any, bridge: Any, groups: Mapping[str, Sequence[Node]] | None
) -> Node:
    """A head in any spelling (seqcirc.language.names), a Node, or a group of exactly one
    head."""
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
    try:
        node = value if isinstance(value, Node) else Node.parse(str(value))
    except (ValueError, TypeError):
        raise _fail(
            claim, f"role claim names no head: {value!r}", "E805", f"write it as {HEAD_SPELLINGS}"
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


Scored = tuple[float, dict[str, Any]]  # a head's score on a role, and its details


def _ov_role(
    bridge: Any, tokenizer: Any, node: Node, role: str, params: Mapping[str, Any],
    set_name: str | None,
) -> Scored:  # fmt: skip
    """successor / copy: where the head's OV map sends each member of an ordered set."""
    from seqcirc.roles.ov import ov_scores

    assert node.head is not None
    layer, head = node.layer, node.head
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
        members=_members(params, str(name)),
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


def _attends_role(
    bridge: Any, node: Node, params: Mapping[str, Any], task: TokenizedTask | None
) -> Scored:
    """attends: the head's attention from one named position of the task to another."""
    from seqcirc.roles.attention import attends_scores

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
    return float(scores[node.layer, node.head]), {
        "from": params["from"],
        "to": params["to"],
        "which": which,
        "task": task.name,
        "n_prompts": task.n_prompts,
    }


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
) -> Scored:
    """One head's score on one role, and details worth reporting next to it."""
    from seqcirc.roles.attention import pattern_scores
    from seqcirc.roles.members import bos_id

    assert node.head is not None
    if role in ("successor", "copy"):
        return _ov_role(bridge, tokenizer, node, role, params, set_name)
    if role == "attends":
        return _attends_role(bridge, node, params, task)
    n_seqs = int(params.get("n_seqs", PATTERN_DEFAULTS["n_seqs"]))
    half_len = int(params.get("half_len", PATTERN_DEFAULTS["half_len"]))
    scores = pattern_scores(
        bridge,
        tokenizer,
        n_seqs=n_seqs,
        half_len=half_len,
        seed=seed,
        bos=bos_id(bridge, tokenizer),
    )[role]
    return float(scores[node.layer, node.head]), {
        "n_seqs": n_seqs,
        "half_len": half_len,
        "seed": seed,
    }


def measure_role_claim(
    claim: Claim,
    bridge: Any,
    tokenizer: Any,
    *,
    set_name: str | None = None,
    task: TokenizedTask | None = None,
    seed: int = 0,
    groups: Mapping[str, Sequence[Node]] | None = None,
) -> RoleMeasure:
    """Measure a role claim: its point value (a role score is a share over member
    positions or prompts, not an estimate with a CI).

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
    return RoleMeasure(str(node), role, value, detail)


def role_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """The handler of `role L.H ROLE(...) op t`, on the model evaluate_plan was given (a
    LoadedModel: its bridge and tokenizer), with the head's attention for the report."""
    bridge, task = ctx.model.bridge, ctx.state.task
    measured = measure_role_claim(
        claim, bridge, ctx.model.tokenizer, set_name=ctx.circuit.task.generator, task=task,
        seed=ctx.seed, groups=dict(ctx.circuit.groups),
    )  # fmt: skip
    got = measured.claim_value()
    detail = {**got.detail, "attention": head_attention(bridge, task, measured.head)}
    if measured.role == "attends" and detail.get("which") == "clean":  # token-level too
        from seqcirc.roles.patterns import task_token_attention

        pair = (str(detail["from"]), str(detail["to"]))
        tokens = task_token_attention(bridge, ctx.model.tokenizer, task, measured.head, pair)
        if tokens is not None:
            detail["attention_tokens"] = tokens
    return replace(got, detail=detail)


ATTENTION_PROMPTS = 64  # prompts whose attention patterns the report shows for a role head


def head_attention(bridge: Any, task: Any, head: str) -> dict[str, Any]:
    """One head's mean attention between the task's named positions (clean prompts), for
    the report's attention plot of role heads."""
    import torch

    from seqcirc.report.attention import named_attention

    node = Node.parse(head)
    n = min(task.n_prompts, ATTENTION_PROMPTS)
    hook = f"blocks.{node.layer}.attn.hook_pattern"
    with torch.inference_mode():
        tokens = torch.as_tensor(task.clean[:n], device=bridge.cfg.device)
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda name: name == hook)
    patterns = cache[hook][:, node.head].double().cpu().numpy()
    positions = {k: v[:n] for k, v in task.positions.items()}
    return named_attention(
        patterns, positions, f"head {head}: mean attention between named positions, {n} prompts"
    )


def _members(params: Mapping[str, Any], set_name: str) -> int | None:
    """The members an OV role scores: `members=N`, the authors' range with `paper`, or the
    set's default task range (None)."""
    if params.get("paper"):
        if set_name not in PAPER_OV_MEMBERS:
            raise InputError(
                f"the paper scored no OV scores over {set_name!r}",
                code="E809",
                hint="`paper` is for " + ", ".join(PAPER_OV_MEMBERS) + "; give members=N",
            )
        return PAPER_OV_MEMBERS[set_name]
    members = params.get("members")
    return None if members is None else int(members)
