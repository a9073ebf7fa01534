"""What `seqcirc roles MODEL --task NAME` runs: load, scan, summarise (the CLI only
parses options and prints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.roles.members import Context, resolve_members
from seqcirc.roles.scan import RoleTable, planned_roles, plot_role_heatmaps, scan_roles


def parse_attends(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """["S3:S2", ...] -> [("S3", "S2"), ...] (from:to)."""
    out = []
    for text in pairs:
        src, sep, dst = text.partition(":")
        if not sep or not src or not dst:
            raise InputError(
                f"--attends {text!r} is not FROM:TO", code="E808", hint="e.g. --attends S3:S2"
            )
        out.append((src.strip(), dst.strip()))
    return out


def check_options(task: str, attends: Sequence[tuple[str, str]], sort_by: str) -> None:
    """Fail on a bad set name or sort role before a model is loaded."""
    resolve_members(task)
    roles = planned_roles(task, attends)
    if sort_by not in roles:
        raise InputError(
            f"--sort {sort_by!r} is not a scanned role",
            code="E809",
            hint=f"scanned: {', '.join(roles)}",
        )


def scan_model(
    model: str,
    task: str,
    *,
    attends: Sequence[tuple[str, str]] = (),
    top_k: int = 5,
    context: Context = "prompts",
    members: int | None = None,
    prompts: int = 66,
    seed: int = 0,
    half_len: int = 20,
    device: str = "auto",
    loaded: Any = None,
) -> RoleTable:
    """Scan every head of `model` on every role, the OV roles on ordered set `task` and
    attends pairs on `prompts` of the task's generated prompts (seeded)."""
    from seqcirc.models.load import load_model
    from seqcirc.plan import TaskSpec, params
    from seqcirc.tasks import build_task

    lm = loaded if loaded is not None else load_model(model, device=device)
    task_data = None
    if attends:
        spec = TaskSpec(name=task, generator=task, params=params(prompts=prompts, seed=seed))
        task_data = build_task(
            spec, lm.tokenizer, prepend_bos=bool(lm.bridge.cfg.default_prepend_bos), seed=seed
        )
    table = scan_roles(
        lm.bridge,
        lm.tokenizer,
        set_name=task,
        task=task_data,
        attends=attends,
        top_k=top_k,
        context=context,
        members=members,
        half_len=half_len,
        seed=seed,
    )
    table.meta["model"] = model
    return table


def save_plot(table: RoleTable, path: Path) -> Path:
    """The role heatmaps as a PNG at `path`, titled with the model and set; returns it."""
    m = table.meta
    title = f"{m.get('model', '?')} on {m.get('set', '?')} (top {m.get('top_k')})"
    caption = (
        "Look for bright cells: a head (row = layer, column = head) that scores near 1 on a "
        "role; the best head of each role is named above its map. Scores: successor/copy, "
        "the share of members whose target is in the head's OV top k; the pattern roles and "
        "attends, attention weights."
    )
    return plot_role_heatmaps(table, path, title=title, caption=caption)


def shown_heads(table: RoleTable, limit: int) -> str:
    """ "top 4 of 8 heads" for --limit 4, "all 8 heads" for --limit 0 or beyond the model."""
    n = table.n_layers * table.n_heads
    return f"all {n} heads" if limit <= 0 or limit >= n else f"top {limit} of {n} heads"


def summary(table: RoleTable, *, sort_by: str, limit: int, plot: Path | None) -> str:
    """The table (sorted, limited), each role's best heads, and where the plot went."""
    if sort_by not in table.roles:
        raise InputError(
            f"--sort {sort_by!r} is not a scanned role", code="E809",
            hint=f"scanned: {', '.join(table.roles)}",
        )  # fmt: skip
    m = table.meta
    lines = [
        f"roles of {m.get('model', '?')} on {m.get('set', '?')}: {shown_heads(table, limit)}, "
        f"by {sort_by}",
        f"(OV scores: top {m.get('top_k')} of the vocabulary over {m.get('n_scored')} member "
        f"positions; seed {m.get('seed')})",
        "",
        table.to_text(sort_by=sort_by, limit=limit or None),
        "",
        "best heads per role:",
    ]
    n_members = len(m.get("members", ()))
    for role in table.roles:
        best = ", ".join(f"{h} {v:.2f}" for h, v in table.top(role, 3))
        lines.append(f"  {role:<18} {best}")
    if n_members:
        k = m.get("top_k", 5)
        lines += [
            "",
            f"for scale: with {n_members} members, a head that favours the whole set evenly "
            f"scores about {min(1.0, k / n_members):.2f} on successor/copy (top {k}) and "
            f"{1 / n_members:.2f} on *_first (chance among the set)",
        ]
    if plot is not None:
        lines += ["", f"heatmap: {save_plot(table, plot)}"]
    return "\n".join(lines)
