"""An independent, slow reference for node and edge circuits: plain PyTorch hooks on a
Hugging Face model's own modules (no TransformerLens, nothing of seqcirc's engine), one
circuit per forward pass. The family matrix (tests/test_forward_families.py) holds
seqcirc's evaluation to it.

Meanings (docs/language.md):
- a head's output is its z, its slice of the input to the attention output projection;
  an MLP's output is what the block adds to the residual stream (after a post-MLP norm
  where the family has one: TransformerLens's hook_mlp_out); the embedding sender is
  the input to the first block (scaled, with positions, as the family makes it).
- node circuit: the clean prompt runs with every head and MLP outside the circuit
  replaced by its ablated value (circuit nodes too off the named positions, if any).
- edge circuit: each receiver (a head's q, k or v input, k and v per kv head under
  grouped-query attention; an MLP's input; the final residual before the final norm)
  gets its input in this run minus, summed over the removed edges into it, the sender's
  output in this run minus its ablated output (computed as the sum of every earlier
  sender's output, ablated where its edge is removed: the same, without cancellation).
  A head's q/k/v input is its own copy of the residual stream, run through the
  attention norm and the projection (the whole projection, then that head's slice, so
  fused projections and q/k norms over all heads need no special case). Heads of one
  layer reach the residual stream through the output projection (and the
  post-attention norm where there is one), so their removed edges into one receiver are
  applied together: the receiver gets out(z) - out(z with those heads ablated), which
  is the sum of per-head terms when there is no post-attention norm.
- ablation values: the mean over the corrupted prompts per position, zero, or
  `resample` (each prompt's paired corrupted prompt).
- metric: logit difference (correct - incorrect) at the answer position, per prompt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqcirc.plan import EMBED, LOGITS, Edge, Node
from tests.reference_layouts import LAYOUTS, QKV, sizes


def _module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


# ---------------------------------------------------------------- the reference


class Reference:
    """One model, one task, one ablation value: node and edge circuits, per prompt."""

    def __init__(self, model: nn.Module, task: Any, value: str = "mean") -> None:
        self.model = model.eval()
        self.layout = LAYOUTS[model.config.architectures[0]]
        self.size = sizes(model.config)
        self.value = value
        self.blocks = list(_module(model, self.layout.blocks))
        self.clean = torch.as_tensor(np.asarray(task.clean), dtype=torch.long)
        self.corrupted = torch.as_tensor(np.asarray(task.corrupted), dtype=torch.long)
        self.answer_pos = torch.as_tensor(np.asarray(task.answer_pos), dtype=torch.long)
        self.correct = torch.as_tensor(np.asarray(task.correct), dtype=torch.long)
        self.incorrect = torch.as_tensor(np.asarray(task.incorrect), dtype=torch.long)
        self.positions = {k: np.asarray(v) for k, v in task.positions.items()}
        acts = self._capture(self.corrupted if value != "zero" else self.clean)
        self.abl = {k: self._value_of(v) for k, v in acts.items()}
        self.m_model = self._metric(self._run([]))

    # ---- basics
    def _value_of(self, act: Tensor) -> Tensor:
        if self.value == "mean":
            return act.mean(0, keepdim=True).expand_as(act)
        if self.value == "zero":
            return torch.zeros_like(act)
        if self.value == "resample":
            return act
        raise ValueError(f"unknown ablation value {self.value!r}")

    def _metric(self, logits: Tensor) -> np.ndarray:
        rows = torch.arange(logits.shape[0])
        at = logits[rows, self.answer_pos].double()
        return (at[rows, self.correct] - at[rows, self.incorrect]).numpy()

    def _run(self, hooks: list[tuple[nn.Module, str, Any]], tokens: Tensor | None = None) -> Tensor:
        handles = []
        try:
            for module, kind, fn in hooks:
                if kind == "pre":
                    handles.append(module.register_forward_pre_hook(fn))
                elif kind == "pre_kw":
                    handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
                else:
                    handles.append(module.register_forward_hook(fn))
            with torch.no_grad():
                return self.model(self.clean if tokens is None else tokens).logits
        finally:
            for h in handles:
                h.remove()

    def _capture(self, tokens: Tensor) -> dict[str, Tensor]:
        """embed (block 0's input), z{L} (output projection's input), mlp{L} (mlp_out)."""
        lay, acts = self.layout, {}

        def keep(name: str, pre: bool):  # type: ignore[no-untyped-def]
            def fn(module, args, *out):  # type: ignore[no-untyped-def]
                acts[name] = (args[0] if pre else out[0]).clone()

            return fn

        def embed(module, args, kwargs):  # type: ignore[no-untyped-def]
            acts[EMBED] = _hidden(args, kwargs).clone()

        hooks: list[tuple[nn.Module, str, Any]] = [(self.blocks[0], "pre_kw", embed)]
        for i, b in enumerate(self.blocks):
            hooks.append((_module(b, lay.out_proj), "pre", keep(f"z{i}", True)))
            hooks.append((_module(b, lay.mlp_out), "fwd", keep(f"mlp{i}", False)))
        self._run(hooks, tokens)
        return acts

    # ---- node circuits
    def nodes(self, keep: Iterable[Node], positions: Iterable[str] | None = None) -> np.ndarray:
        """Per-prompt metric with every node outside `keep` ablated (and circuit nodes off
        the named positions)."""
        kept = set(keep)
        n, seq = self.clean.shape
        on = torch.ones(n, seq, dtype=torch.bool)
        if positions is not None:
            on[:] = False
            for p in positions:
                on[torch.arange(n), torch.as_tensor(self.positions[p])] = True
        dh, heads = self.size["dh"], self.size["H"]
        hooks: list[tuple[nn.Module, str, Any]] = []
        for i, b in enumerate(self.blocks):
            ablate = torch.stack(
                [~on if Node(i, h) in kept else torch.ones_like(on) for h in range(heads)], -1
            ).repeat_interleave(dh, -1)  # [n, S, H*dh]
            z_abl = self.abl[f"z{i}"]

            def z_hook(m, args, ablate=ablate, z_abl=z_abl):  # type: ignore[no-untyped-def]
                return (torch.where(ablate, z_abl, args[0]), *args[1:])

            mlp_ablate = (~on if Node(i) in kept else torch.ones_like(on))[..., None]
            m_abl = self.abl[f"mlp{i}"]

            def mlp_hook(m, args, out, ablate=mlp_ablate, m_abl=m_abl):  # type: ignore[no-untyped-def]
                return torch.where(ablate, m_abl, out)

            hooks.append((_module(b, self.layout.out_proj), "pre", z_hook))
            hooks.append((_module(b, self.layout.mlp_out), "fwd", mlp_hook))
        return self._metric(self._run(hooks))

    def all_nodes(self) -> list[Node]:
        heads, layers = self.size["H"], self.size["L"]
        return [Node(i, h) for i in range(layers) for h in range(heads)] + [
            Node(i) for i in range(layers)
        ]

    # ---- edge circuits
    def all_edges(self) -> list[Edge]:
        """Every edge: senders before receivers; k/v receivers are kv heads; in parallel
        blocks an MLP does not receive from its own layer's heads."""
        s = self.size
        out: list[Edge] = []
        senders = [EMBED]
        for i in range(s["L"]):
            for kind, count in (("q", s["H"]), ("k", s["KV"]), ("v", s["KV"])):
                out += [Edge(x, f"{i}.{h}", kind) for h in range(count) for x in senders]  # type: ignore[arg-type]
            heads = [f"{i}.{h}" for h in range(s["H"])]
            mlp_senders = senders if self.layout.parallel else senders + heads
            out += [Edge(x, f"mlp{i}", "mlp") for x in mlp_senders]
            senders = senders + heads + [f"mlp{i}"]
        return out + [Edge(x, LOGITS, "resid") for x in senders]

    def edges(self, keep: Iterable[Edge]) -> np.ndarray:
        """Per-prompt metric of the edge circuit that keeps `keep` (every other edge of
        all_edges() removed)."""
        kept = set(keep)
        removed: dict[tuple[str, str], set[str]] = {}
        for e in self.all_edges():
            if e not in kept:
                removed.setdefault((e.receiver, e.input), set()).add(e.sender)
        run = _EdgeRun(self, removed)
        return self._metric(self._run(run.hooks()))

    def empty(self, granularity: str = "node") -> np.ndarray:
        """m(empty): every node ablated (the embeddings stay clean), or every edge removed."""
        return self.nodes([]) if granularity == "node" else self.edges([])


def _hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    return args[0] if args else kwargs["hidden_states"]


class _EdgeRun:
    """The hooks of one edge-circuit forward: record senders' outputs in this run, and give
    each receiver with removed edges its own input, rebuilt as the sum of what every
    sender before it adds to the residual stream: its output in this run, or its ablated
    one where the edge is removed. (The same as the input in this run minus the removed
    senders' output - ablated, since the stream is that sum; but with no cancellation,
    which a norm would amplify where every edge into a receiver is zero-ablated.)"""

    def __init__(self, ref: Reference, removed: dict[tuple[str, str], set[str]]) -> None:
        self.ref, self.removed = ref, removed
        self.lay, self.size = ref.layout, ref.size
        self.scale = getattr(ref.model.config, self.lay.resid_scale) if self.lay.resid_scale else 1
        self.resid: dict[int, Tensor] = {}  # block inputs in this run
        self.z: dict[int, Tensor] = {}  # output-projection inputs in this run
        self.mlp: dict[int, Tensor] = {}  # mlp_out outputs in this run

    def _attn_out(self, layer: int, z: Tensor) -> Tensor:
        """What layer `layer`'s attention adds to the residual stream, given its z."""
        block = self.ref.blocks[layer]
        out = _module(block, self.lay.out_proj).forward(z)  # .forward: no hooks fire
        if self.lay.attn_post_norm is not None:
            out = _module(block, self.lay.attn_post_norm).forward(out)
        return out * self.scale

    def input_of(self, receiver: str, inp: str, layer: int, own_heads: bool) -> Tensor | None:
        """The receiver's input (None: no edge into it is removed): the senders of the
        layers before `layer`, and that layer's heads too when `own_heads`."""
        removed = self.removed.get((receiver, inp))
        if not removed:
            return None
        abl, dh = self.ref.abl, self.size["dh"]
        x = abl[EMBED] if EMBED in removed else self.resid[0]
        for i in range(layer + own_heads):
            z = self.z[i].clone()
            for h in range(self.size["H"]):
                if f"{i}.{h}" in removed:
                    z[..., h * dh : (h + 1) * dh] = abl[f"z{i}"][..., h * dh : (h + 1) * dh]
            x = x + self._attn_out(i, z)
            if i < layer:
                mlp = abl[f"mlp{i}"] if f"mlp{i}" in removed else self.mlp[i]
                x = x + mlp * self.scale
        return x

    def hooks(self) -> list[tuple[nn.Module, str, Any]]:
        lay, out = self.lay, []
        for i, b in enumerate(self.ref.blocks):
            out.append((b, "pre_kw", self._record_resid(i)))
            out.append((_module(b, lay.out_proj), "pre", self._record(self.z, i, pre=True)))
            out.append((_module(b, lay.mlp_out), "fwd", self._record(self.mlp, i, pre=False)))
            for qkv in lay.qkv:
                out.append((_module(b, qkv.chain[-1]), "fwd", self._qkv_hook(i, qkv)))
            out.append(self._mlp_receiver(i, b))
        final = _module(self.ref.model, lay.final_norm)
        n_layers = len(self.ref.blocks)
        out.append((final, "pre", self._replace(LOGITS, "resid", n_layers, False)))
        return out

    def _record_resid(self, layer: int):  # type: ignore[no-untyped-def]
        def fn(module, args, kwargs):  # type: ignore[no-untyped-def]
            self.resid[layer] = _hidden(args, kwargs).clone()

        return fn

    def _record(self, store: dict[int, Tensor], layer: int, pre: bool):  # type: ignore[no-untyped-def]
        def fn(module, args, *out):  # type: ignore[no-untyped-def]
            store[layer] = (args[0] if pre else out[0]).clone()

        return fn

    def _replace(self, receiver: str, inp: str, layer: int, own_heads: bool, norm=None):  # type: ignore[no-untyped-def]
        """A pre-hook giving a module the receiver's input (through `norm` if given)."""

        def fn(module, args):  # type: ignore[no-untyped-def]
            x = self.input_of(receiver, inp, layer, own_heads)
            if x is None:
                return None
            return (norm.forward(x) if norm is not None else x, *args[1:])

        return fn

    def _mlp_receiver(self, layer: int, block: nn.Module) -> tuple[nn.Module, str, Any]:
        lay, name, own = self.lay, f"mlp{layer}", not self.lay.parallel
        if lay.mlp_norm is not None and lay.mlp_norm != lay.attn_norm:
            return (_module(block, lay.mlp_norm), "pre", self._replace(name, "mlp", layer, own))
        if lay.mlp_norm is None:  # the MLP reads the residual stream itself
            return (_module(block, lay.mlp), "pre", self._replace(name, "mlp", layer, own))
        norm = _module(block, lay.mlp_norm)  # shared with attention: renormalise its own copy
        return (_module(block, lay.mlp), "pre", self._replace(name, "mlp", layer, own, norm))

    def _qkv_hook(self, layer: int, qkv: QKV):  # type: ignore[no-untyped-def]
        block, s = self.ref.blocks[layer], self.size
        chain = [_module(block, p) for p in qkv.chain]
        norm = _module(block, self.lay.attn_norm) if self.lay.attn_norm else None

        def fn(module, args, out):  # type: ignore[no-untyped-def]
            out = out.clone()
            for kind, where in qkv.parts.items():
                offset, stride = where(s)
                for i in range(s["H"] if kind == "q" else s["KV"]):
                    x = self.input_of(f"{layer}.{i}", kind, layer, False)
                    if x is None:
                        continue
                    x = norm.forward(x) if norm is not None else x
                    for m in chain:  # .forward: this very hook must not fire again
                        x = m.forward(x)
                    start = offset + i * stride
                    out[..., start : start + s["dh"]] = x[..., start : start + s["dh"]]
            return out

        return fn


# ---------------------------------------------------------------- faithfulness


def performance_ratio(m_circuit: np.ndarray, m_model: np.ndarray) -> float:
    """F(C) / F(M), F the mean per-prompt metric (docs/statistics.md)."""
    return float(np.mean(m_circuit) / np.mean(m_model))


def normalized_faithfulness(
    m_circuit: np.ndarray, m_model: np.ndarray, m_empty: np.ndarray
) -> float:
    """(F(C) - F(empty)) / (F(M) - F(empty))."""
    return float((np.mean(m_circuit) - np.mean(m_empty)) / (np.mean(m_model) - np.mean(m_empty)))


def load_reference_model(folder: Any) -> nn.Module:
    """The model of a saved family folder, loaded by transformers alone (eager attention:
    the kernel TransformerLens's bridge runs, so the two agree to the last bit)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    cls = getattr(transformers, config.architectures[0])
    return cls.from_pretrained(folder, attn_implementation="eager").eval()
