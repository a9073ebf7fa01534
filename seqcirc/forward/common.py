"""What every architecture's functional forward shares: the weights protocol the runner
reads, replacement values, captured runs, node order and causal attention.

The runner (seqcirc/engine/runner.py) sees a model only through `ModelWeights`: its sizes,
device and dtype, and the steps of one layer (embed, attention, add_heads, mlp) plus the
unembedding. Each architecture implements the steps in its own module (gpt2.py, llama.py);
the forward that runs them layer by layer, with node replacement, is one for all
(seqcirc.forward.nodes). Which weights class a bridge gets is decided in one place,
gpt2.extract_weights.

Node order (masks over nodes, as seqcirc.stats.baseline): every head layer by layer,
then every MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.plan import Node

Layers = tuple[Tensor, ...]


@dataclass(frozen=True, eq=False)
class Replacement:
    """What replaces node activations: z [L][(B,)S,H,dh] and mlp_out [L][(B,)S,d].

    Without a leading batch dimension the values are per position and shared by all
    rows (mean and zero ablation); with one, they are per prompt (resample, patching).
    """

    z: tuple[Tensor, ...]
    mlp: tuple[Tensor, ...]

    def rows(self, index: Tensor | None) -> Replacement:
        """Per-prompt values for the given rows (no-op for shared values)."""
        if index is None or self.z[0].dim() == 3:
            return self
        return Replacement(tuple(t[index] for t in self.z), tuple(t[index] for t in self.mlp))


@dataclass(frozen=True, eq=False)
class NodeRun:
    logits: Tensor | None  # [B, vocab] at the answer position
    resid_final: Tensor  # [B, d] residual before the final norm at the answer position
    z: tuple[Tensor, ...] = ()  # captured hook_z per layer [B, S, H, dh]
    mlp: tuple[Tensor, ...] = ()  # captured hook_mlp_out per layer [B, S, d]
    embed: Tensor | None = None  # what the residual stream starts as [B, S, d]


class WeightsBase:
    """What every architecture's weights derive alike from W_E, W_U and their sizes."""

    n_layers: int
    n_heads: int
    W_E: Tensor  # [vocab, d]
    W_U: Tensor  # [d, vocab]
    W_O: tuple[Tensor, ...]  # [H, dh, d] per layer
    b_O: tuple[Tensor, ...]  # [d] per layer

    @property
    def n_nodes(self) -> int:
        return self.n_layers * (self.n_heads + 1)

    @property
    def d_vocab(self) -> int:
        return int(self.W_U.shape[-1])

    @property
    def dtype(self) -> torch.dtype:
        return self.W_E.dtype

    @property
    def device(self) -> torch.device:
        return self.W_E.device

    def add_heads(self, layer: int, resid: Tensor, z: Tensor) -> Tensor:
        """The residual [..., S, d] plus what the heads of `layer` write from their z
        [..., S, H, dh]: every head through o_proj, then o_proj's bias."""
        return resid + torch.einsum("...she,hed->...sd", z, self.W_O[layer]) + self.b_O[layer]

    def all_replaced_resid(self, embed: Tensor, values: Replacement) -> Tensor:
        """Final residual [(B,) S, d] when every node is replaced: the embeddings plus
        every head's replaced z through o_proj and every MLP's replaced output."""
        resid = embed
        for layer in range(self.n_layers):
            resid = self.add_heads(layer, resid, values.z[layer]) + values.mlp[layer]
        return resid


def unembed_bias(hf: Any) -> Tensor:
    """The lm_head bias, or zeros where the model has none (GPT-2, Llama)."""
    bias = getattr(hf.lm_head, "bias", None)
    if bias is not None:
        return bias.detach()
    return hf.lm_head.weight.new_zeros(hf.lm_head.weight.shape[0])


class ModelSizes(Protocol):
    """What every engine's model says about itself (the fast engine's weights, the
    generic engine's seqcirc.forward.hooked.HookedModel)."""

    @property
    def architecture(self) -> str: ...  # the Hugging Face class name
    @property
    def n_layers(self) -> int: ...
    @property
    def n_heads(self) -> int: ...  # query heads (hook_z's head axis)
    @property
    def d_model(self) -> int: ...
    @property
    def d_head(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def d_mlp(self) -> int: ...  # the MLP's hidden width (SwiGLU: of gate and of up)
    @property
    def d_vocab(self) -> int: ...
    @property
    def n_ctx(self) -> int: ...  # the longest prompt the model takes
    @property
    def dtype(self) -> torch.dtype: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def supports_edges(self) -> bool: ...


class ModelWeights(ModelSizes, Protocol):
    """A model's weights as the fast engine uses them, whatever its architecture."""

    def embed(self, tokens: Tensor) -> Tensor:
        """What the residual stream starts as: tokens [B, S] -> [B, S, d]."""
        ...

    def attention(
        self, layer: int, resid: Tensor, query_pos: Tensor | None = None,
        heads: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """hook_z [B, S, H, dh] of `layer` from the residual [B, S, d]; with query_pos [B],
        only each row's query at that position: [B, 1, H, dh] (keys at every position);
        with heads [k] (sorted head indices), only those heads: [B, S, k, dh], each the
        same numbers as in the whole layer's z."""
        ...

    def add_heads(self, layer: int, resid: Tensor, z: Tensor) -> Tensor:
        """The residual [..., S, d] plus what the heads write from z [..., S, H, dh]."""
        ...

    def mlp(self, layer: int, resid: Tensor) -> Tensor:
        """hook_mlp_out [..., S, d] of `layer` from the residual (its norm included)."""
        ...

    def all_replaced_resid(self, embed: Tensor, values: Replacement) -> Tensor:
        """Final residual when every node is replaced: no forward pass needed."""
        ...

    def unembed(self, resid: Tensor, columns: Tensor | None = None) -> Tensor:
        """Final norm and unembedding of residuals [..., d] -> logits [..., vocab]; with
        columns [k], only those tokens' logits [..., k] (vocab_columns)."""
        ...


def require_edges(w: ModelSizes) -> None:
    """The fast engine's edge forward is written out for GPT-2 only."""
    if not w.supports_edges:
        raise EvaluationError(
            f"the fast engine's edge forward is not implemented for {w.architecture} models",
            code="E302",
            hint="run edge circuits with the generic engine (--engine generic, or auto, the "
            "default); the fast edge forward runs on GPT-2-architecture models",
        )


def all_nodes(w: ModelSizes) -> tuple[Node, ...]:
    """Every node in mask order: all heads layer by layer, then all MLPs."""
    heads = [Node(layer, h) for layer in range(w.n_layers) for h in range(w.n_heads)]
    return (*heads, *(Node(layer) for layer in range(w.n_layers)))


def node_index(w: ModelSizes, node: Node) -> int:
    if not 0 <= node.layer < w.n_layers or (
        node.head is not None and not 0 <= node.head < w.n_heads
    ):
        raise EvaluationError(
            f"node {node} does not exist in a model of {w.n_layers} layers x {w.n_heads} heads",
            code="E303",
        )
    if node.head is None:
        return w.n_layers * w.n_heads + node.layer
    return node.layer * w.n_heads + node.head


def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """q, k, v [B, S, H, dh] -> z [B, S, H, dh], causal, scaled by 1/sqrt(dh)."""
    z = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
    )
    return z.transpose(1, 2)


def attend_at(q: Tensor, k: Tensor, v: Tensor, query_pos: Tensor) -> Tensor:
    """One query per row: q [B, 1, H, dh] at position query_pos [B] attends to the keys
    k, v [B, S, H, dh] up to that position -> z [B, 1, H, dh] (the causal row of attend)."""
    seen = torch.arange(k.shape[1], device=k.device)[None, :] <= query_pos[:, None]
    z = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=seen[:, None, None]
    )
    return z.transpose(1, 2)


def vocab_columns(W_U: Tensor, b_U: Tensor, columns: Tensor | None) -> tuple[Tensor, Tensor]:
    """The unembedding's weights [d, k] and bias [k] of some tokens (None: all), laid out
    as W_U is (a transposed view stays one), so that the product reads the same numbers
    in the same order: each logit equals the whole unembedding's."""
    if columns is None:
        return W_U, b_U
    W = W_U.t()[columns].t() if W_U.stride(0) == 1 else W_U[:, columns]
    return W, b_U[columns]


def head_columns(heads: Tensor, d_head: int) -> Tensor:
    """The columns [k * dh] of a projection's output [.., H * dh] that belong to `heads`."""
    e = torch.arange(d_head, device=heads.device)
    return (heads[:, None] * d_head + e).reshape(-1)


def gather_pos(x: Tensor, answer_pos: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0], device=x.device), answer_pos]
