"""The weights of a GPT-2-architecture model, read for the fast engine's forwards (node
circuits through nodes.py; edge circuits through gpt2_edges.py).

The weights are read from the TransformerBridge's Hugging Face module and the forward is
written out (nodes.py, gpt2_edges.py), because the bridge's hooks neither split q/k/v
inputs per head (edge ablation needs that) nor let us skip the unembedding at positions
nobody scores. The
evaluator checks this forward against the bridge's own on every task (engine.runner.prepare).

Intervention points match TransformerLens hook names: a head is ablated at
`blocks.L.attn.hook_z` (its z, per head; the layer bias b_O stays), an MLP at
`blocks.L.hook_mlp_out` (its whole output, bias included).

`extract_weights` is the one place that picks an architecture's weights class (GPT-2
here, Llama in llama.py); the runner then sees only the ModelWeights protocol
(common.py): the steps of one layer, which the one node forward of every architecture
(nodes.py, re-exported here as `forward_nodes`) runs. Edge circuits are GPT-2 only
(gpt2_edges.py).

Node order (masks over nodes, as seqcirc.stats.baseline): every head layer by layer,
then every MLP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqcirc.errors import EvaluationError
from seqcirc.forward.common import (
    Layers,
    ModelWeights,
    NodeRun,
    Replacement,
    WeightsBase,
    all_nodes,
    attend,
    attend_at,
    gather_pos,
    head_columns,
    node_index,
    unembed_bias,
    vocab_columns,
)
from seqcirc.forward.edge_plan import EdgePlan, edge_plan
from seqcirc.forward.llama import extract_llama_weights
from seqcirc.forward.nodes import forward_nodes

__all__ = [
    "Gpt2Weights", "ModelWeights", "NodeRun", "Replacement", "all_nodes", "all_replaced_resid",
    "extract_weights", "forward_nodes", "mlp_from_normed", "node_index", "unembed",
]  # fmt: skip


@dataclass(frozen=True, eq=False)
class Gpt2Weights(WeightsBase):
    """The weights of a GPT-2-architecture model in TransformerLens layout."""

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    eps: float
    W_E: Tensor  # [vocab, d]
    W_pos: Tensor  # [ctx, d]
    # Per-layer tuples of views of the model's own parameters (no copies).
    ln1_w: Layers  # [d]
    ln1_b: Layers
    W_qkv: Layers  # [d, 3d] fused, Hugging Face Conv1D layout (q | k | v)
    b_qkv: Layers  # [3d]
    W_O: Layers  # [H, dh, d]
    b_O: Layers  # [d]
    ln2_w: Layers
    ln2_b: Layers
    W_in: Layers  # [d, d_mlp]
    b_in: Layers
    W_out: Layers  # [d_mlp, d]
    b_out: Layers  # [d]
    lnf_w: Tensor
    lnf_b: Tensor
    W_U: Tensor  # [d, vocab]
    b_U: Tensor  # [vocab]
    _per_head: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)
    _edge_plans: list[tuple[Tensor, EdgePlan]] = field(default_factory=list, repr=False)

    def qkv_per_head(self, layer: int) -> tuple[Tensor, Tensor]:
        """W [3, H, d, dh] and b [3, H, dh] of one layer, for per-head inputs (edges)."""
        if layer not in self._per_head:
            d, n_h, dh = self.d_model, self.n_heads, self.d_head
            W = self.W_qkv[layer].reshape(d, 3, n_h, dh).permute(1, 2, 0, 3).contiguous()
            self._per_head[layer] = (W, self.b_qkv[layer].reshape(3, n_h, dh))
        return self._per_head[layer]

    def edge_plan(self, removed: Tensor) -> EdgePlan:
        """The plan of a removed matrix (forward.edge_plan), kept for the last one: an
        edge pass runs one circuit over many chunks of prompts."""
        for key, plan in self._edge_plans:
            same = key.shape == removed.shape and key.dtype == removed.dtype
            if same and key.device == removed.device and torch.equal(key, removed):
                return plan
        plan = edge_plan(self.n_layers, self.n_heads, removed)
        self._edge_plans[:] = [(removed.clone(), plan)]
        return plan

    @property
    def d_mlp(self) -> int:
        return int(self.W_in[0].shape[-1])

    @property
    def architecture(self) -> str:
        return "GPT2LMHeadModel"

    @property
    def n_ctx(self) -> int:
        return int(self.W_pos.shape[0])

    @property
    def supports_edges(self) -> bool:
        return True

    def embed(self, tokens: Tensor) -> Tensor:
        return self.W_E[tokens] + self.W_pos[: tokens.shape[1]]

    def attention(
        self, layer: int, resid: Tensor, query_pos: Tensor | None = None,
        heads: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        x = F.layer_norm(resid, (self.d_model,), self.ln1_w[layer], self.ln1_b[layer], self.eps)
        W, b, d = self.W_qkv[layer], self.b_qkv[layer], self.d_model
        n_h = self.n_heads
        if heads is not None:  # only those heads' columns of q, k and v (the same numbers)
            cols = head_columns(heads, self.d_head)
            cols = torch.cat([cols, cols + d, cols + 2 * d])
            W, b, d, n_h = W[:, cols], b[cols], int(cols.shape[0]) // 3, int(heads.shape[0])
        shape = (n_h, self.d_head)
        if query_pos is None:
            qkv = (x @ W + b).unflatten(-1, (3, *shape))
            return attend(qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :])
        kv = (x @ W[:, d:] + b[d:]).unflatten(-1, (2, *shape))
        q = (gather_pos(x, query_pos) @ W[:, :d] + b[:d]).unflatten(-1, shape)[:, None]
        return attend_at(q, kv[..., 0, :, :], kv[..., 1, :, :], query_pos)

    def mlp(self, layer: int, resid: Tensor) -> Tensor:
        x = F.layer_norm(resid, (self.d_model,), self.ln2_w[layer], self.ln2_b[layer], self.eps)
        return mlp_from_normed(self, layer, x)

    def unembed(self, resid: Tensor, columns: Tensor | None = None) -> Tensor:
        x = F.layer_norm(resid, (self.d_model,), self.lnf_w, self.lnf_b, self.eps)
        W_U, b_U = vocab_columns(self.W_U, self.b_U, columns)
        return x @ W_U + b_U


def _extract_gpt2(hf: Any) -> Gpt2Weights:
    cfg = hf.config
    unsupported = {
        "activation_function": (cfg.activation_function, "gelu_new"),
        "scale_attn_weights": (cfg.scale_attn_weights, True),
        "scale_attn_by_inverse_layer_idx": (cfg.scale_attn_by_inverse_layer_idx, False),
        "reorder_and_upcast_attn": (cfg.reorder_and_upcast_attn, False),
    }
    for key, (got, want) in unsupported.items():
        if got != want:
            raise EvaluationError(
                f"GPT-2 config {key}={got!r} is not supported (needs {want!r})", code="E302"
            )
    tr = hf.transformer
    blocks = list(tr.h)
    n_layers, d = len(blocks), cfg.n_embd
    n_heads = cfg.n_head
    d_head = d // n_heads

    def per_layer(get: Callable[[Any], Tensor]) -> Layers:
        return tuple(get(b).detach() for b in blocks)

    return Gpt2Weights(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d,
        d_head=d_head,
        eps=float(cfg.layer_norm_epsilon),
        W_E=tr.wte.weight.detach(),
        W_pos=tr.wpe.weight.detach(),
        ln1_w=per_layer(lambda b: b.ln_1.weight),
        ln1_b=per_layer(lambda b: b.ln_1.bias),
        W_qkv=per_layer(lambda b: b.attn.c_attn.weight),
        b_qkv=per_layer(lambda b: b.attn.c_attn.bias),
        W_O=per_layer(lambda b: b.attn.c_proj.weight.reshape(n_heads, d_head, d)),
        b_O=per_layer(lambda b: b.attn.c_proj.bias),
        ln2_w=per_layer(lambda b: b.ln_2.weight),
        ln2_b=per_layer(lambda b: b.ln_2.bias),
        W_in=per_layer(lambda b: b.mlp.c_fc.weight),
        b_in=per_layer(lambda b: b.mlp.c_fc.bias),
        W_out=per_layer(lambda b: b.mlp.c_proj.weight),
        b_out=per_layer(lambda b: b.mlp.c_proj.bias),
        lnf_w=tr.ln_f.weight.detach(),
        lnf_b=tr.ln_f.bias.detach(),
        W_U=hf.lm_head.weight.detach().T,
        b_U=unembed_bias(hf),  # the bridge's unembedding may carry a (zero) bias
    )


# The architectures the evaluator's forward implements: Hugging Face class -> weights.
EXTRACTORS: dict[str, Callable[[Any], ModelWeights]] = {
    "GPT2LMHeadModel": _extract_gpt2,
    "LlamaForCausalLM": extract_llama_weights,
}


def extract_weights(bridge: torch.nn.Module) -> ModelWeights:
    """The weights of a TransformerBridge's model (raw Hugging Face numerics only), as
    the weights class of its architecture."""
    if getattr(bridge, "compatibility_mode", False):
        raise EvaluationError(
            "the evaluator needs the bridge without compatibility mode (raw weights)",
            code="E301",
            hint="load the model without enable_compatibility_mode()",
        )
    hf: Any = getattr(bridge, "original_model", None)
    arch = type(hf).__name__
    if arch not in EXTRACTORS:
        raise EvaluationError(
            f"the fast engine's forward supports {' and '.join(EXTRACTORS)} models, not {arch}",
            code="E302",
            hint="run it with the generic engine (--engine generic, or auto, the default)",
        )
    _require_single_device(hf)
    return EXTRACTORS[arch](hf)


def _require_single_device(hf: Any) -> None:
    """These forwards read weights as tensors: the model must be whole on one device
    (the rule of seqcirc.models.device.single_device)."""
    from seqcirc.models.device import single_device

    if hf is not None and single_device(hf) is None:
        placed = getattr(hf, "hf_device_map", None) or {}
        where = sorted({str(v) for v in placed.values()}) or ["several devices"]
        raise EvaluationError(
            f"the model is spread over {', '.join(where)} by a device map; the evaluator's "
            "hand-written forward needs every weight on one device",
            code="E302",
            hint="leave --device-map out to run the model on one device (--device)",
        )


# ---------------------------------------------------------------- nodes


def mlp_from_normed(w: Gpt2Weights, layer: int, x: Tensor) -> Tensor:
    """The MLP's output [..., d] of its layer-normed input x (the edge pass norms per receiver)."""
    h = F.gelu(x @ w.W_in[layer] + w.b_in[layer], approximate="tanh")
    return h @ w.W_out[layer] + w.b_out[layer]


def unembed(w: ModelWeights, resid: Tensor, columns: Tensor | None = None) -> Tensor:
    """Final norm and unembedding (logits) of residuals [..., d]; of some tokens only."""
    return w.unembed(resid, columns)


def all_replaced_resid(w: ModelWeights, embed: Tensor, values: Replacement) -> Tensor:
    """Final residual [B, S, d] when every node is replaced: no forward pass needed.

    embed [B, S, d] or [S, d]: what the embeddings contribute (clean, or ablated for edges).
    """
    return w.all_replaced_resid(embed, values)
