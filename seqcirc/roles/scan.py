"""The role scan: every head scored on every role, as a table and a heatmap, so a
researcher can find candidate heads before writing a hypothesis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from seqcirc.progress import advance, phase
from seqcirc.roles.attention import PATTERN_ROLES, attends_scores, pattern_scores
from seqcirc.roles.members import Context, bos_id
from seqcirc.roles.ov import Target, ov_scores
from seqcirc.tasks.types import TokenizedTask


@dataclass(frozen=True, eq=False)
class RoleTable:
    """values[r, layer, head]: head (layer, head)'s score on roles[r]."""

    roles: tuple[str, ...]
    values: npt.NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.values.shape[2])

    def column(self, role: str) -> npt.NDArray[np.float64]:
        """[layers, heads] scores of one role."""
        return self.values[self.roles.index(role)]

    def top(self, role: str, k: int = 5) -> list[tuple[str, float]]:
        """The k highest-scoring heads on `role`, as ("L.H", score), best first."""
        col = self.column(role)
        flat = np.argsort(-col, axis=None, kind="stable")[:k]
        return [(f"{i // self.n_heads}.{i % self.n_heads}", float(col.flat[i])) for i in flat]

    def rows(self) -> list[dict[str, Any]]:
        """One row per head: {"head": "L.H", role: score, ...}."""
        out = []
        for layer in range(self.n_layers):
            for head in range(self.n_heads):
                row: dict[str, Any] = {"head": f"{layer}.{head}"}
                row.update(
                    {r: float(self.values[i, layer, head]) for i, r in enumerate(self.roles)}
                )
                out.append(row)
        return out

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "roles": list(self.roles), "rows": self.rows()})

    def to_text(self, sort_by: str | None = None, limit: int | None = None) -> str:
        """A plain table (rows heads, columns roles), optionally sorted by one role."""
        rows = self.rows()
        if sort_by is not None:
            rows.sort(key=lambda r: -r[sort_by])
        if limit is not None:
            rows = rows[:limit]
        widths = [max(7, len(r)) for r in self.roles]
        lines = ["head   " + " ".join(f"{r:>{w}}" for r, w in zip(self.roles, widths, strict=True))]
        for row in rows:
            cells = " ".join(f"{row[r]:>{w}.3f}" for r, w in zip(self.roles, widths, strict=True))
            lines.append(f"{row['head']:<6} {cells}")
        return "\n".join(lines)


def planned_roles(set_name: str | None, attends: Sequence[tuple[str, str]] = ()) -> tuple[str, ...]:
    """The columns `scan_roles` produces for these options, in order."""
    ov = ("successor", "successor_first", "copy", "copy_first") if set_name is not None else ()
    return (*ov, *PATTERN_ROLES, *(f"attends({a}->{b})" for a, b in attends))


def scan_roles(
    bridge: Any,
    tokenizer: Any,
    *,
    set_name: str | None = None,
    task: TokenizedTask | None = None,
    attends: Sequence[tuple[str, str]] = (),
    top_k: int = 5,
    context: Context = "prompts",
    members: int | Sequence[str] | None = None,
    n_seqs: int = 8,
    half_len: int = 20,
    seed: int = 0,
) -> RoleTable:
    """Score every head on: successor and copy (top-k over the vocabulary, and first
    among the set) when `set_name` is given; previous_token, duplicate and induction
    on repeated random tokens (seeded); and attends(from->to) on `task` for each pair."""
    roles: list[str] = []
    cols: list[npt.NDArray[np.float64]] = []
    meta: dict[str, Any] = {"seed": seed, "n_seqs": n_seqs, "half_len": half_len}
    if attends and task is None:
        from seqcirc.errors import InputError

        raise InputError("attends scores need a task's prompts", code="E808")
    with phase("role scan", total=len(planned_roles(set_name, attends)), unit="roles") as bar:
        if set_name is not None:
            roles, cols, ov_meta = _ov_columns(bridge, tokenizer, set_name, top_k, context, members)
            meta.update(ov_meta)
        pats = pattern_scores(
            bridge,
            tokenizer,
            n_seqs=n_seqs,
            half_len=half_len,
            seed=seed,
            bos=bos_id(bridge, tokenizer),
        )
        for role, col in pats.items():
            roles.append(role)
            cols.append(col)
        bar.advance(len(pats))
        for src, dst in attends:
            assert task is not None
            roles.append(f"attends({src}->{dst})")
            cols.append(attends_scores(bridge, task, src, dst))
            bar.advance()
        if task is not None:
            meta.update(task=task.name, n_prompts=task.n_prompts)
        assert tuple(roles) == planned_roles(set_name, attends)
    return RoleTable(tuple(roles), np.stack(cols), meta)


def _ov_columns(
    bridge: Any,
    tokenizer: Any,
    set_name: str,
    top_k: int,
    context: Context,
    members: int | Sequence[str] | None,
) -> tuple[list[str], list[npt.NDArray[np.float64]], dict[str, Any]]:
    """The OV roles (successor, copy, each top-k and first among the set) and their meta."""
    roles: list[str] = []
    cols: list[npt.NDArray[np.float64]] = []
    targets: tuple[tuple[Target, str], ...] = (("next", "successor"), ("self", "copy"))
    for target, name in targets:
        s = ov_scores(
            bridge, tokenizer, set_name, target=target, top_k=top_k, context=context,
            members=members,
        )  # fmt: skip
        roles += [name, f"{name}_first"]
        cols += [s.topk, s.first_in_set]
        advance(2, "roles")
    meta = {
        "set": set_name,
        "top_k": top_k,
        "context": context,
        "members": list(s.members),
        "n_scored": s.n_scored,
    }
    return roles, cols, meta


def plot_role_heatmaps(
    table: RoleTable, path: str | Path, title: str | None = None, caption: str | None = None
) -> Path:
    """One layers x heads heatmap per role, side by side, saved as PNG (with `caption`
    under them); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table.roles)
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    cell = max(0.28, min(0.5, 6.0 / max(table.n_heads, table.n_layers)))
    fig_w = ncols * (table.n_heads * cell + 1.6)
    fig_h = nrows * (table.n_layers * cell + 1.3) + 0.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(fig_w, fig_h), squeeze=False)
    annotate = table.n_layers * table.n_heads <= 64
    for ax, role, values in zip(axes.flat, table.roles, table.values, strict=False):
        im = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
        best = np.unravel_index(np.nanargmax(values), values.shape)
        ax.set_title(f"{role}\nbest {best[0]}.{best[1]} = {values[best]:.2f}", fontsize=9)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.set_xticks(range(table.n_heads))
        ax.set_yticks(range(table.n_layers))
        ax.tick_params(labelsize=7)
        if annotate:
            for (i, j), v in np.ndenumerate(values):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if v > 0.6 else "white",
                )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    if caption:
        fig.text(0.01, 0.0, caption, ha="left", va="top", fontsize=8, wrap=True)
    out = Path(path)
    fig.savefig(out, dpi=120, bbox_inches="tight" if caption else None)
    plt.close(fig)
    return out
