"""The node forward of every architecture: the weights' steps (ModelWeights in
seqcirc.forward.common) run layer by layer, node activations replaced where a mask says.

Two savings, both exact up to floating-point rounding:
- When only the answer's logits are read (no capture, or a capture whose reader takes the
  last layer at the answer only: `trim_capture`), the last layer runs for the answer
  position only: its attention for that one query (keys and values at every position),
  its MLP there only. No later layer reads any other position.
- Rows that share work (`Sharing`: many circuits on the same prompts) compute it once.
  Rows whose masks agree on every node before a step have the same residual stream there
  (a replacement value is per position, or per prompt), so each step runs once per group
  of such rows and the groups split where the masks diverge. A layer's heads replaced in
  every row of a group, or an MLP replaced at every position, are not computed at all,
  and of a layer's heads only those some row keeps somewhere get their q, k, v and
  attention (a plain forward computes them all: its peak memory is what
  seqcirc.engine.memory estimates).

A row is a (prompt, circuit) pair to the runner (seqcirc.engine.runner); here it is any
row of tokens with its own replace mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from seqcirc.forward.common import ModelWeights, NodeRun, Replacement, gather_pos

_Pair = tuple[Tensor, Tensor]  # a residual and the output a step added to it


@dataclass(frozen=True, eq=False)
class Groups:
    """A partition of a forward's rows: inv [B] each row's group, rep [G] each group's
    first row; groups are numbered in the order of their first rows."""

    inv: Tensor
    rep: Tensor

    @classmethod
    def of(cls, labels: Tensor) -> Groups:
        """The rows with equal labels [B] (integers) as groups."""
        _, inv = torch.unique(labels, return_inverse=True)
        n_rows, n_groups = labels.shape[0], int(inv.max()) + 1 if labels.numel() else 0
        rows = torch.arange(n_rows, device=labels.device)
        first = torch.full((n_groups,), n_rows, dtype=torch.long, device=labels.device)
        first = first.scatter_reduce(0, inv, rows, "amin")
        order = torch.argsort(first)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n_groups, device=labels.device)
        return cls(inv=rank[inv], rep=first[order])

    def to(self, device: torch.device) -> Groups:
        return Groups(self.inv.to(device), self.rep.to(device))

    def times(self, p: int) -> Groups:
        """Each row i as p rows i * p + j (j < p, e.g. p prompts under each circuit),
        grouped by (group of i, j)."""
        j = torch.arange(p, device=self.inv.device)
        inv, rep = self.inv[:, None] * p + j, self.rep[:, None] * p + j
        return Groups(inv.reshape(-1), rep.reshape(-1))


@dataclass(frozen=True, eq=False)
class Sharing:
    """Which rows of a forward share what.

    prompt [B]: each row's row of the per-prompt replacement values (resample, patching).
    stages: 2 * n_layers + 1 partitions of the rows, each refining the one before: stage
    2l groups rows that agree on every node of the layers before l (the same residual
    before layer l's heads), stage 2l + 1 also on layer l's heads (the same before its
    MLP), the last on every node. The rows of a group must have the same tokens, answer
    position and prompt, and the same replace mask on the nodes their stage covers.
    """

    prompt: Tensor
    stages: tuple[Groups, ...]


@dataclass(frozen=True, eq=False)
class _Step:
    """A stage as the forward walks it: the row standing for each group (None: every row)
    and each group's group at the stage before (None: the same groups)."""

    rows: Tensor | None
    parent: Tensor | None


def _steps(share: Sharing | None, n_stages: int) -> list[_Step]:
    if share is None:
        return [_Step(None, None)] * n_stages
    if len(share.stages) != n_stages:
        raise ValueError(f"sharing needs {n_stages} stages, got {len(share.stages)}")
    steps = [_Step(share.stages[0].rep, None)]
    for before, g in zip(share.stages, share.stages[1:], strict=False):
        # a refinement with as many groups is the same partition, numbered alike
        same = before.rep.shape == g.rep.shape
        steps.append(_Step(g.rep, None if same else before.inv[g.rep]))
    return steps


def _take(t: Tensor, index: Tensor | None) -> Tensor:
    return t if index is None else t[index]


def _needed(mask: Tensor | None, parent: Tensor | None, n_groups: int) -> Tensor | None:
    """Which groups must compute a step [G] (None: all): those with a child group whose
    mask [G_child, S, k] does not replace the step's output at every position."""
    if mask is None:
        return None
    child = ~mask.flatten(1).all(1)
    if parent is None:
        return child
    count = torch.zeros(n_groups, dtype=torch.long, device=child.device)
    return count.index_add_(0, parent, child.long()) > 0


def _computed(f: Callable[[Tensor | None], Tensor], need: Tensor | None) -> Tensor:
    """f(rows) for the groups that need it (f(None): every group); zeros for the rest,
    which are replaced anyway."""
    if need is None or bool(need.all()):
        return f(None)
    index = need.nonzero().squeeze(1)
    part = f(index)
    return part.new_zeros((need.shape[0], *part.shape[1:])).index_copy_(0, index, part)


class _Pass:
    """One forward's inputs as its steps read them: at a step's rows, at the answer
    position where the last layer is trimmed to it."""

    def __init__(
        self, w: ModelWeights, answer_pos: Tensor, replace: Tensor | None,
        values: Replacement | None, share: Sharing | None,
    ) -> None:  # fmt: skip
        self.w, self.answer_pos = w, answer_pos
        self.replace = replace if values is not None else None
        self.values = values
        self.prompt = share.prompt if share is not None else None
        # a plain forward computes every step: what engine.memory estimates and measures
        self.skips = share is not None

    def needed(self, mask: Tensor | None, parent: Tensor | None, n_groups: int) -> Tensor | None:
        return _needed(mask, parent, n_groups) if self.skips else None

    def heads_needed(self, mask: Tensor | None) -> Tensor | None:
        """The heads [k] some row keeps at some position (None: every head): the others
        are replaced everywhere, so their attention is not computed (none kept: `needed`
        skips the whole step)."""
        if mask is None or not self.skips:
            return None
        kept = ~mask.flatten(0, 1).all(0)
        return None if bool(kept.all()) or not bool(kept.any()) else kept.nonzero().squeeze(1)

    def pos(self, step: _Step) -> Tensor:
        return _take(self.answer_pos, step.rows)

    def mask(self, step: _Step, cols: slice, at_answer: bool) -> Tensor | None:
        """replace [G, S, k] (or [G, 1, k]) of the nodes `cols` at the step's rows."""
        if self.replace is None:
            return None
        m = _take(self.replace, step.rows)
        if at_answer and m.shape[1] > 1:
            m = gather_pos(m, self.pos(step))[:, None]
        return m[..., cols]

    def value(self, t: Tensor, step: _Step, at_answer: bool, per_prompt_dims: int) -> Tensor:
        """A replacement value [(n,) S, ...] at the step's rows: per prompt (or per row)
        where it has a prompt axis, else the same for every row; [G, 1, ...] at_answer."""
        pos = self.pos(step) if at_answer else None
        if t.dim() == per_prompt_dims:
            rows = step.rows if self.prompt is None else _take(self.prompt, step.rows)
            if pos is None:
                return _take(t, rows)
            index = torch.arange(t.shape[0], device=t.device) if rows is None else rows
            return t[index, pos][:, None]
        return t if pos is None else t[pos][:, None]

    def heads(self, layer: int, resid: Tensor, a: _Step, m: _Step, trim: bool) -> _Pair:
        """The residual after `layer`'s heads at the groups of step m (from those of step
        a, the residual before them), and the heads' z there."""
        w, n_h = self.w, self.w.n_heads
        mask = self.mask(m, slice(layer * n_h, (layer + 1) * n_h), trim)
        query = self.pos(a) if trim else None

        heads = self.heads_needed(mask)

        def attention(rows: Tensor | None) -> Tensor:
            q = None if query is None else _take(query, rows)
            z = w.attention(layer, _take(resid, rows), q, heads)
            if heads is None:
                return z
            full = z.new_zeros((*z.shape[:2], n_h, z.shape[-1]))  # the rest is replaced
            return full.index_copy_(2, heads, z)

        z = _take(_computed(attention, self.needed(mask, m.parent, resid.shape[0])), m.parent)
        if mask is not None:
            assert self.values is not None
            z = torch.where(mask[..., None], self.value(self.values.z[layer], m, trim, 4), z)
        if query is not None:
            resid = gather_pos(resid, query)[:, None]
        return w.add_heads(layer, _take(resid, m.parent), z), z

    def mlp(self, layer: int, resid: Tensor, m: _Step, n: _Step, trim: bool) -> _Pair:
        """The residual after `layer`'s MLP at the groups of step n (from those of step m,
        the residual before it), and the MLP's output there."""
        w = self.w
        col = w.n_layers * w.n_heads + layer
        mask = self.mask(n, slice(col, col + 1), trim)
        need = self.needed(mask, n.parent, resid.shape[0])
        out = _take(_computed(lambda rows: w.mlp(layer, _take(resid, rows)), need), n.parent)
        if mask is not None:
            assert self.values is not None
            out = torch.where(mask, self.value(self.values.mlp[layer], n, trim, 3), out)
        return _take(resid, n.parent) + out, out


def _at_answer_only(t: Tensor, answer_pos: Tensor, seq: int) -> Tensor:
    """[B, 1, ...] at each row's answer -> [B, S, ...], zero at the other positions."""
    full = t.new_zeros((t.shape[0], seq, *t.shape[2:]))
    rows = torch.arange(t.shape[0], device=t.device)
    return full.index_put_((rows, answer_pos), t[:, 0])


def forward_nodes(
    w: ModelWeights,
    tokens: Tensor,
    answer_pos: Tensor,
    *,
    replace: Tensor | None = None,
    values: Replacement | None = None,
    capture: bool = False,
    logits: bool = True,
    share: Sharing | None = None,
    columns: Tensor | None = None,
    trim_capture: bool = False,
) -> NodeRun:
    """One forward of any architecture; where replace[b, s, node] is True the node's
    activation is replaced by `values` (per position, or per row: per prompt with `share`).

    tokens [B, S]; answer_pos [B]; replace [B, S, n_nodes] or [B, 1, n_nodes] bool (node
    mask order). capture keeps every layer's z and mlp_out (and computes every position
    but with `trim_capture`); `share` runs what rows share once (see Sharing), for the
    same result; `columns` [k]: the logits of those tokens only ([B, k]: what a metric
    reading few reads).
    `trim_capture`: the captured last layer at each row's answer position only, zero
    elsewhere (for readers of the last layer at the answer only: nothing else reads it).
    """
    if capture and share is not None:
        raise ValueError("a captured forward keeps every row: it cannot share them")
    n_layers = w.n_layers
    steps = _steps(share, 2 * n_layers + 1)
    run = _Pass(w, answer_pos, replace, values, share)
    resid = w.embed(_take(tokens, steps[0].rows))
    embed = resid if capture else None
    zs: list[Tensor] = []
    mlps: list[Tensor] = []
    for layer in range(n_layers):
        trim = (trim_capture or not capture) and layer == n_layers - 1
        a, m, n = steps[2 * layer : 2 * layer + 3]
        resid, z = run.heads(layer, resid, a, m, trim)
        resid, out = run.mlp(layer, resid, m, n, trim)
        if capture:
            zs.append(_at_answer_only(z, answer_pos, tokens.shape[1]) if trim else z)
            mlps.append(_at_answer_only(out, answer_pos, tokens.shape[1]) if trim else out)
    trimmed = trim_capture or not capture
    final = resid[:, 0] if trimmed else gather_pos(resid, run.pos(steps[-1]))
    out_logits = w.unembed(final, columns) if logits else None
    if share is not None:  # back from the groups to every row
        inv = share.stages[-1].inv
        final = final[inv]
        out_logits = None if out_logits is None else out_logits[inv]
    return NodeRun(logits=out_logits, resid_final=final, z=tuple(zs), mlp=tuple(mlps), embed=embed)


__all__ = ["Groups", "Sharing", "forward_nodes"]
