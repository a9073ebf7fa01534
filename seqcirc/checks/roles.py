"""Role claims (`role 9.1 successor(top=5) >= 0.25`): parameters checked against the
role, the ordered set it scores and the model's shape, so a size no run can meet is an
input error of `seqcirc check` (exit 2), not a claim that fails at run time."""

from __future__ import annotations

from collections.abc import Callable

from seqcirc.checks.claims import ClaimChecker, _hint
from seqcirc.language import ast
from seqcirc.language import vocab as V
from seqcirc.models.shapes import ModelShape
from seqcirc.source import Span


def check_role(
    claims: ClaimChecker,
    role: ast.RoleStmt,
    position: Callable[[ast.NameRef], None],
    shape: ModelShape | None,
    task: ast.TaskDef | None,
) -> None:
    """One role line; `position` checks a named position against the section's task."""
    name = role.role.name
    if name not in V.ROLES:
        claims.error(
            "E204", f"unknown role `{name}`", role.role.span, _hint(name, V.ROLES, "roles")
        )
        return
    values = claims.args(role.args, V.ROLES[name], f"role {name}")
    spans = {a.name: a.span for a in role.args}
    for key, low in (("top", 1), ("members", 2), ("n_seqs", 1), ("half_len", 2)):
        claims.at_least(values, key, low, role.span, "")
    claims.choices(role.args, values, V.ROLE_CHOICES)
    if "set" in values:
        claims.sequence_name(values["set"], spans["set"])
    if name == "attends":
        _attends(claims, role, values, spans, position)
    elif name in ("successor", "copy"):
        _ov(claims, role, values, spans, shape, task)
    else:
        _pattern(claims, values, spans, role.span, shape)
    claims.threshold("role", role.threshold)


def _attends(
    claims: ClaimChecker,
    role: ast.RoleStmt,
    values: dict,
    spans: dict[str, Span],
    position: Callable[[ast.NameRef], None],
) -> None:
    for key in ("from", "to"):
        if key not in values:
            claims.error(
                "E251",
                f"`attends` needs `{key}=POSITION`",
                role.span,
                "e.g. role 4.4 attends(from=S3, to=S2) >= 0.2",
            )
        else:
            position(ast.NameRef(str(values[key]), spans[key]))


def _ov(
    claims: ClaimChecker,
    role: ast.RoleStmt,
    values: dict,
    spans: dict[str, Span],
    shape: ModelShape | None,
    task: ast.TaskDef | None,
) -> None:
    """successor / copy: top within the vocabulary, members within the ordered set."""
    from seqcirc.tasks.sets import ORDERED_SETS

    name = role.role.name
    set_name = values.get("set")
    if set_name is None and task is not None:
        if isinstance(task.source, ast.FileSource):
            claims.error(
                "E251",
                f"`{name}` needs `set=NAME`: task `{task.name.name}` reads a prompt file",
                role.span,
                f"name the ordered set whose members are scored, e.g. {name}(set=months)",
            )
        else:
            set_name = task.source.set_name.name
    span = spans.get("top", role.span)
    if shape is not None and shape.d_vocab > 0:
        vocab = shape.d_vocab
        claims.at_most(values, "top", vocab, span, f"the model's vocabulary has {vocab:,} tokens")
    else:
        claims.limit(values, "top", span, "top k where the vocabulary is not known offline")
    if values.get("paper"):
        if "members" in values:
            claims.error(
                "E251",
                "`paper` and `members` both set the members scored",
                spans.get("members", role.span),
                "give one: `paper` is the authors' range (numerals 1-100, others 11)",
            )
        elif set_name is not None and set_name not in V.PAPER_OV_MEMBERS:
            claims.error(
                "E251",
                f"the paper scored no OV {name} over `{set_name}`",
                spans.get("paper", role.span),
                "`paper` is for " + ", ".join(V.PAPER_OV_MEMBERS) + "; give members=N instead",
            )
    span = spans.get("members", role.span)
    size = len(ORDERED_SETS.get(str(set_name), ()))
    if size:
        claims.at_most(values, "members", size, span, f"`{set_name}` has {size} members")
    else:
        claims.limit(values, "members", span, "the members of an ordered set")
    least = V.OV_WINDOW + 1
    context = values.get("context", "prompts")
    if context == "prompts" and 2 <= values.get("members", least) < least:
        claims.error(
            "E251",
            f"`members` must be at least {least} with context=prompts, not {values['members']}",
            span,
            f"prompts of {V.OV_WINDOW} consecutive members need a successor in scope; "
            "or use context=alone",
        )


def _pattern(
    claims: ClaimChecker,
    values: dict,
    spans: dict[str, Span],
    span: Span,
    shape: ModelShape | None,
) -> None:
    """previous_token / duplicate / induction: sequences that fit the context and memory."""
    ok = claims.limit(
        values, "n_seqs", spans.get("n_seqs", span), "random sequences (scored all at once)"
    )
    high, why = V.LIMITS["half_len"], "tokens in each half of a repeated sequence"
    if shape is not None and shape.n_ctx > 0 and (shape.n_ctx - 1) // 2 < high:
        high = (shape.n_ctx - 1) // 2
        why = f"2 x half_len tokens and a BOS must fit the model's context of {shape.n_ctx}"
    n_seqs = values.get("n_seqs", V.PATTERN_DEFAULTS["n_seqs"])
    half_len = values.get("half_len", V.PATTERN_DEFAULTS["half_len"])
    if "half_len" in values:
        ok = claims.at_most(values, "half_len", high, spans["half_len"], why) and ok
    elif half_len > high:  # the default does not fit this model's context
        claims.error(
            "E251", f"the default `half_len={half_len}` is too long for this model", span, why
        )
        ok = False
    cells = n_seqs * (2 * half_len + 1) ** 2
    if ok and cells > V.LIMITS["pattern_cells"]:
        claims.error(
            "E251",
            f"{n_seqs} sequences of 2 x {half_len} tokens make {cells:,} attention weights "
            f"per head, more than the limit of {V.LIMITS['pattern_cells']:,}",
            spans.get("n_seqs", spans.get("half_len", span)),
            "use fewer sequences (n_seqs) or shorter ones (half_len)",
        )
