"""The generic engine: circuits on any model a TransformerBridge wraps, run through the
bridge's own forward and its TransformerLens hook points. No weight is read and no
forward is written out per architecture (the hand-written ones, gpt2.py and llama.py,
are the `fast` engine; seqcirc.forward.select chooses).

One meaning per component, whatever the family (docs/language.md):
- a head is replaced at `blocks.L.attn.hook_z`: its z, per query head, before the output
  projection (whose bias stays);
- an MLP at `blocks.L.hook_mlp_out`: what it writes into the residual stream, after the
  block's post-MLP norm where it has one (Gemma 2, OLMo 2), as TransformerLens defines it;
- what the residual stream starts as (the embeddings, scaled where the model scales them)
  is read at `blocks.0.hook_resid_pre`.

Every hook the engine adds must fire exactly once per forward: one that does not (a
layer without attention, a bridge that bypasses the hook point) is E309, never a silent
no-op. Logits are computed at the answer positions only (Hugging Face's logits_to_keep).
Intervention values are moved to the device and dtype of the activation they replace,
so a model spread over devices gets each layer's values on that layer's device.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import NodeRun, Replacement, gather_pos
from seqcirc.forward.nodes import Sharing

Hook = Callable[[Tensor], Tensor | None]
ENGINE = "generic"
RESID_START = "blocks.0.hook_resid_pre"
FINAL = "ln_final.hook_in"
EMPTY_CHECK_ROWS = 2  # prompts on which the empty circuit's shortcut is checked exactly


def unsupported(arch: str, what: str, code: str = "E309") -> EvaluationError:
    return EvaluationError(
        f"the generic engine cannot run {arch}: {what}",
        code=code,
        hint="node circuits need hook_z and hook_mlp_out in every block; see "
        "docs/errors.md for what each architecture supports",
    )


class HookedModel:
    """A TransformerBridge as the engine sees it: sizes (as ModelWeights has them) and
    forwards with node replacement (here) and edge removal (forward.hooked_edges)."""

    engine = ENGINE

    def __init__(self, bridge: Any) -> None:
        if getattr(bridge, "compatibility_mode", False):
            raise EvaluationError(
                "the evaluator needs the bridge without compatibility mode (raw weights)",
                code="E301",
                hint="load the model without enable_compatibility_mode()",
            )
        self.bridge = bridge
        hf: Any = getattr(bridge, "original_model", None)
        cfg = bridge.cfg
        self.architecture = str(getattr(cfg, "architecture", None) or type(hf).__name__)
        blocks = getattr(bridge, "blocks", None)
        if hf is None or blocks is None or len(blocks) == 0:
            raise unsupported(self.architecture, "the bridge has no `blocks` stack")
        self.n_layers = len(blocks)
        self.n_heads = int(cfg.n_heads)
        self.n_kv_heads = int(getattr(cfg, "n_key_value_heads", None) or self.n_heads)
        self.d_model = int(cfg.d_model)
        self.d_head = int(getattr(cfg, "d_head", None) or self.d_model // self.n_heads)
        self.d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * self.d_model)
        self.d_vocab = int(cfg.d_vocab)
        self.n_ctx = int(cfg.n_ctx)
        embedding = hf.get_input_embeddings().weight
        self.dtype: torch.dtype = embedding.dtype
        self.device: torch.device = embedding.device  # where the tokens go
        forward = inspect.signature(type(hf).forward).parameters
        self.keeps_logits = "logits_to_keep" in forward
        self.points = self._hook_points()
        self.edge_layout: Any = None  # seqcirc.forward.hooked_graph.require_edges fills it

    def _hook_points(self) -> dict[str, Any]:
        names = [RESID_START, FINAL]
        for layer in range(self.n_layers):
            names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
        found = self.bridge.hook_dict
        missing = [n for n in names if n not in found]
        if missing:
            raise unsupported(self.architecture, f"no hook point {', '.join(missing[:3])}")
        return {n: found[n] for n in names}

    # ---- sizes (the ModelWeights protocol's) --------------------------------------
    @property
    def n_nodes(self) -> int:
        return self.n_layers * (self.n_heads + 1)

    @property
    def supports_edges(self) -> bool:
        return True  # or a coded error when the graph is built (hooked_graph.require_edges)

    def point(self, name: str) -> Any:
        if name not in self.points:
            found = self.bridge.hook_dict.get(name)
            if found is None:
                raise unsupported(self.architecture, f"no hook point {name}")
            self.points[name] = found
        return self.points[name]

    # ---- running the bridge with hooks ---------------------------------------------
    @contextmanager
    def hooks(self, hooks: list[tuple[str, Hook]]) -> Iterator[None]:
        """The hooks added for one forward, removed after it; each must fire once."""
        fired = dict.fromkeys((n for n, _ in hooks), 0)
        added = []

        def counted(name: str, fn: Hook) -> Callable[..., Tensor | None]:
            def hook(x: Tensor, hook: Any = None) -> Tensor | None:
                fired[name] += 1
                return fn(x)

            return hook

        try:
            for name, fn in hooks:
                hp = self.point(name)
                added.append((hp, hp.add_hook(counted(name, fn))))
            yield
        finally:
            for hp, handle in added:
                handle.hook.remove()
                if handle in hp.fwd_hooks:
                    hp.fwd_hooks.remove(handle)
        wrong = [f"{n} fired {k} times" for n, k in fired.items() if k != 1]
        if wrong:
            raise unsupported(self.architecture, "; ".join(wrong[:3]))

    def logits_at(self, tokens: Tensor, answer_pos: Tensor) -> Tensor:
        """The bridge's own forward of tokens [B, S]: logits [B, vocab] at each row's
        answer position (only those positions are unembedded where the model allows)."""
        keep, inv = torch.unique(answer_pos, return_inverse=True)
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        return self.logits_of(tokens, keep)[rows, inv.to(rows.device)]

    def logits_of(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """Logits [B, k, vocab] at the positions [k] of every row."""
        if not self.keeps_logits:
            return self.bridge(tokens)[:, positions]
        return self.bridge(tokens, logits_to_keep=positions)

    # ---- node circuits ----------------------------------------------------------------
    def forward_nodes(
        self,
        tokens: Tensor,
        answer_pos: Tensor,
        *,
        replace: Tensor | None = None,
        values: Replacement | None = None,
        capture: bool = False,
        logits: bool = True,
        share: Sharing | None = None,
    ) -> NodeRun:
        """seqcirc.forward.nodes.forward_nodes's contract, through the bridge: rows whose
        masks agree on every node (`share`'s last stage) run once; per-prompt values are
        read at `share.prompt`."""
        if capture and share is not None:
            raise ValueError("a captured forward keeps every row: it cannot share them")
        prompt, inv = None, None
        if share is not None:
            last = share.stages[-1]
            tokens, answer_pos = tokens[last.rep], answer_pos[last.rep]
            prompt = share.prompt[last.rep]
            replace = None if replace is None else replace[last.rep]
            inv = last.inv
        acts = _Acts(self, replace if values is not None else None, values, prompt, capture)
        with self.hooks(acts.hooks(answer_pos)):
            out = self.logits_at(tokens, answer_pos)
        assert acts.final is not None
        final = acts.final
        if inv is not None:
            out, final = out[inv], final[inv]
        return NodeRun(
            logits=out if logits else None, resid_final=final, z=tuple(acts.z),
            mlp=tuple(acts.mlp), embed=acts.embed,
        )  # fmt: skip

    def empty_logits(
        self, tokens: Tensor, answer_pos: Tensor, values: Replacement, embed: Tensor | None,
        clean_embed_answer: Tensor,
    ) -> Tensor:  # fmt: skip
        """Answer logits [n, vocab] with every node replaced by `values`. `embed`: what
        replaces the embeddings ([S, d] or per prompt [n, S, d]; edge circuits ablate the
        embedding sender), None for node circuits (each prompt keeps its own)."""
        n = tokens.shape[0]
        every = torch.ones(n, 1, self.n_nodes, dtype=torch.bool, device=tokens.device)
        shared = values.z[0].dim() == 3 and (embed is None or embed.dim() == 2)
        if not shared:
            return self._replaced(tokens, answer_pos, every, values, embed)
        if embed is not None:
            out = self._empty_edges(tokens, answer_pos, values, embed)
        else:
            out = self._empty_nodes(tokens, answer_pos, values, clean_embed_answer)
        # the shortcut on the first prompts against the forward it stands for; where the
        # model is not what it assumes (a residual sum, tokens read by the embeddings
        # only), that forward runs for every prompt
        k = min(EMPTY_CHECK_ROWS, n)
        exact = self._replaced(tokens[:k], answer_pos[:k], every[:k], values, embed)
        scale = float(exact.abs().max()) + 1.0
        if float((exact - out[:k]).abs().max()) > _tolerance(self.dtype) * scale:
            return self._replaced(tokens, answer_pos, every, values, embed)
        return out

    def _replaced(self, tokens: Tensor, answer_pos: Tensor, replace: Tensor, values: Replacement,
                  embed: Tensor | None) -> Tensor:  # fmt: skip
        acts = _Acts(self, replace, values, None, False, embed=embed)
        with self.hooks(acts.hooks(answer_pos)):
            return self.logits_at(tokens, answer_pos)

    def _empty_edges(self, tokens: Tensor, answer_pos: Tensor, values: Replacement,
                     embed: Tensor) -> Tensor:  # fmt: skip
        """Shared values and embeddings: every prompt's residual stream is the same at a
        position, so one row gives the logits at every answer position."""
        keep, inv = torch.unique(answer_pos, return_inverse=True)
        every = torch.ones(1, 1, self.n_nodes, dtype=torch.bool, device=tokens.device)
        acts = _Acts(self, every, values, None, False, embed=embed)
        with self.hooks(acts.hooks(keep[:1])):
            return self.logits_of(tokens[:1], keep)[0, inv]

    def _empty_nodes(self, tokens: Tensor, answer_pos: Tensor, values: Replacement,
                     clean_embed_answer: Tensor) -> Tensor:  # fmt: skip
        """Shared values, clean embeddings: with every node replaced the final residual is
        each prompt's embedding plus what every node adds at its position, C [S, d] (one
        forward of one row whose embeddings are zero); its logits come from the model's own
        final norm and unembedding (a forward of one token per prompt)."""
        seq = tokens.shape[1]
        every = torch.ones(1, 1, self.n_nodes, dtype=torch.bool, device=tokens.device)
        zero = torch.zeros(seq, self.d_model, dtype=self.dtype, device=self.device)
        acts = _Acts(self, every, values, None, False, embed=zero, whole_final=True)
        pos = torch.arange(seq, device=tokens.device)
        with self.hooks(acts.hooks(pos[-1:])):
            self.logits_at(tokens[:1], pos[-1:])
        assert acts.final is not None
        added = acts.final[0]  # [S, d]
        resid = clean_embed_answer.to(added) + added[answer_pos.to(added.device)]
        return self.unembed(resid)

    def unembed(self, resid: Tensor) -> Tensor:
        """The model's final norm and unembedding (with whatever its head does after
        them, e.g. Gemma 2's soft-capping) of residuals [B, d]: a forward of one token per
        row whose final residual is replaced."""
        tokens = torch.zeros(resid.shape[0], 1, dtype=torch.long, device=self.device)

        def final(x: Tensor) -> Tensor:
            return resid[:, None, :].to(device=x.device, dtype=x.dtype)

        with self.hooks([(FINAL, final)]):
            return self.logits_at(tokens, torch.zeros_like(tokens[:, 0]))


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 or dtype == torch.float64 else 2e-2


def _like(t: Tensor, x: Tensor) -> Tensor:
    """A replacement value on the device and in the dtype of the activation it replaces."""
    return t.to(device=x.device, dtype=x.dtype)


class _Acts:
    """One node forward's hooks: replacement where the mask says (per row; per prompt
    values read at `prompt`), and what a captured forward keeps."""

    def __init__(self, m: HookedModel, replace: Tensor | None, values: Replacement | None,
                 prompt: Tensor | None, capture: bool, *, embed: Tensor | None = None,
                 whole_final: bool = False) -> None:  # fmt: skip
        self.m, self.replace, self.values, self.prompt = m, replace, values, prompt
        self.capture, self.embed_value, self.whole_final = capture, embed, whole_final
        self.z: list[Tensor] = []
        self.mlp: list[Tensor] = []
        self.embed: Tensor | None = None
        self.final: Tensor | None = None

    def value(self, t: Tensor, x: Tensor, per_prompt_dims: int) -> Tensor:
        if t.dim() == per_prompt_dims and self.prompt is not None:
            t = t[self.prompt.to(t.device)]
        return _like(t, x)

    def swap(self, x: Tensor, cols: slice, t: Tensor, per_prompt_dims: int) -> Tensor:
        """x with the nodes `cols` replaced by t where the mask says."""
        assert self.replace is not None
        mask = self.replace[..., cols].to(x.device)
        if per_prompt_dims == 4:
            mask = mask[..., None]  # [B, S, H, 1] against z [B, S, H, dh]
        return torch.where(mask, self.value(t, x, per_prompt_dims), x)

    def hooks(self, answer_pos: Tensor) -> list[tuple[str, Hook]]:
        m = self.m
        out: list[tuple[str, Hook]] = [(RESID_START, self.start)]
        out.append((FINAL, self.final_at(answer_pos)))
        for layer in range(m.n_layers):
            out.append((f"blocks.{layer}.attn.hook_z", self.z_hook(layer)))
            out.append((f"blocks.{layer}.hook_mlp_out", self.mlp_hook(layer)))
        return out

    def start(self, x: Tensor) -> Tensor | None:
        if self.embed_value is not None:
            x = (
                _like(self.embed_value, x).expand_as(x)
                if self.embed_value.dim() == 2
                else (self.value(self.embed_value, x, 3))
            )
            return x
        if self.capture:
            self.embed = x.clone()
        return None

    def final_at(self, answer_pos: Tensor) -> Hook:
        def hook(x: Tensor) -> None:
            self.final = x.clone() if self.whole_final else gather_pos(x, answer_pos.to(x.device))

        return hook

    def z_hook(self, layer: int) -> Hook:
        n_h = self.m.n_heads

        def hook(z: Tensor) -> Tensor | None:
            flat = z.dim() == 3  # a bridge without hook_z's per-head view: [B, S, H * dh]
            z = z.unflatten(-1, (n_h, -1)) if flat else z
            new = None
            if self.replace is not None:
                assert self.values is not None
                cols = slice(layer * n_h, (layer + 1) * n_h)
                new = self.swap(z, cols, self.values.z[layer], 4)
            if self.capture:
                self.z.append((z if new is None else new).clone())
            return new.flatten(-2) if flat and new is not None else new

        return hook

    def mlp_hook(self, layer: int) -> Hook:
        col = self.m.n_layers * self.m.n_heads + layer

        def hook(x: Tensor) -> Tensor | None:
            new = None
            if self.replace is not None:
                assert self.values is not None
                new = self.swap(x, slice(col, col + 1), self.values.mlp[layer], 3)
            if self.capture:
                self.mlp.append((x if new is None else new).clone())
            return new

        return hook


__all__ = ["ENGINE", "HookedModel", "unsupported"]
