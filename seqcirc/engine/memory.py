"""How many rows (prompt x circuit) one forward chunk may hold: a memory budget divided by
an estimate of the transient bytes one row of that forward needs.

The estimate follows forward.gpt2.forward_nodes / forward_edges: per row the residual
stream and its copies [S, d], the attention block (q, k, v and their contiguous copies,
scores and probabilities [H, S, S]) or the MLP ([S, d_mlp] pre- and post-activation),
whichever is larger; what a captured sweep keeps of every layer (z and mlp_out); per-prompt
replacement values (resample, patching); the logits at the answer [vocab] and the metric's
log-softmax. tests/test_engine_memory.py checks it against the measured peak of a forward.

Budget: 64 MiB on a CPU; on a GPU half the memory free on it (torch.cuda.mem_get_info plus
what torch's allocator holds unused); on a CPU the generic engine's edge pass takes 4x
the budget (engine/prepare.py: its per-chunk costs, a hooked forward and the weights read again,
shrank its pass from ~2.1 to ~1.8 bare forwards at 28 prompts a chunk instead of 7 on the
GPT-2-small shape). `--batch-size N` replaces the whole computation.
The CPU budget is small on purpose: glibc hands tensors over 32 MiB out as fresh mmaps
that are page-faulted on every chunk, and larger chunks made the same work slower (200
circuits x 64 prompts, GPT-2-small shape: 11.6 s at 68 rows, 13.8 s at 1280, the extra
all system time; 300 circuits of seqcirc-mini: 56 s at 400 rows, 82 s at 1024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CPU_BUDGET_BYTES = 64 << 20  # see the module docstring: bigger chunks are slower on a CPU
GPU_FREE_SHARE = 0.5  # of the GPU memory free when a state is prepared
MAX_ROWS = 1 << 16  # a GPU's budget divided by a tiny model's row would be absurd


@dataclass(frozen=True)
class ForwardShape:
    """The sizes that set a forward's memory: layers, heads, widths, vocabulary, prompt."""

    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    vocab: int
    seq: int
    dtype_bytes: int = 4

    @classmethod
    def of(cls, w: Any, seq: int) -> ForwardShape:
        """From the evaluator's weights (forward.common.ModelWeights) and the prompt
        length."""
        return cls(
            n_layers=int(w.n_layers),
            n_heads=int(w.n_heads),
            d_model=int(w.d_model),
            d_mlp=int(w.d_mlp),
            vocab=int(w.d_vocab),
            seq=int(seq),
            dtype_bytes=int(w.dtype.itemsize),
        )

    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)


def node_row_bytes(
    shape: ForwardShape, *, capture: bool = False, per_prompt_values: bool = False,
    logits: bool = True,
) -> int:  # fmt: skip
    """Transient bytes of one row of forward_nodes (a captured sweep or a circuit pass)."""
    s, d, h, n_l = shape.seq, shape.d_model, shape.n_heads, shape.n_layers
    resid = 3 * s * d  # the residual, its previous value, the embeddings
    attention = 3 * s * d + 3 * s * d + 2 * h * s * s + 3 * s * d  # qkv, copies, scores, z
    mlp = 2 * s * shape.d_mlp + 2 * s * d
    elements = resid + max(attention, mlp)
    if capture:
        elements += 2 * n_l * s * d  # z and mlp_out of every layer
    if per_prompt_values:
        elements += 2 * n_l * s * d  # the row's own replacement values
    if logits:
        elements += 3 * shape.vocab  # logits, log-softmax, probabilities
    return elements * shape.dtype_bytes + s * (8 + 2 * (n_l * (h + 1)))  # ids, masks


def edge_row_bytes(shape: ForwardShape, *, per_prompt_values: bool = False) -> int:
    """Transient bytes of one row of forward_edges: the buffer of every sender's (actual -
    ablated) [S, n_senders, d] dominates (its slot for the ablated residual is among the
    residual-sized terms; a circuit that needs fewer senders takes less); each layer's
    per-head inputs [S, 3H, d] (three copies: sum, layer norm, projection input) come on
    top."""
    s, d, h = shape.seq, shape.d_model, shape.n_heads
    elements = s * shape.n_senders * d + 3 * s * 3 * h * d + 3 * s * h * d
    elements += 2 * s * shape.d_mlp + 4 * s * d + 3 * shape.vocab
    if per_prompt_values:
        elements += s * shape.n_senders * d
    return elements * shape.dtype_bytes


def budget_bytes(device: Any) -> int:
    """Bytes one chunk may take on `device` (see the module docstring)."""
    import torch

    dev = torch.device(str(device))
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        idle = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(GPU_FREE_SHARE * (free + idle))
    return CPU_BUDGET_BYTES


def rows_for(budget: int, row_bytes: int) -> int:
    """Rows per chunk: as many as the budget holds, at least 1, at most MAX_ROWS."""
    return max(1, min(MAX_ROWS, budget // max(1, row_bytes)))


__all__ = [
    "CPU_BUDGET_BYTES",
    "ForwardShape",
    "budget_bytes",
    "edge_row_bytes",
    "node_row_bytes",
    "rows_for",
]
