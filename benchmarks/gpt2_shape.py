"""A GPT-2-small-shaped model with random weights (no download), its bare forward, and a
random-token task for it.

12 layers x 12 heads, d_model 768, vocab 50257: the shape the peers' timings refer to
(shared/design/environment.md). Smaller shapes serve the smoke test.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqcirc.tasks.types import TokenizedTask


@dataclass(frozen=True)
class Shape:
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    vocab: int = 50257
    n_positions: int = 1024
    init_range: float = 0.02  # Hugging Face's initializer_range (GPT-2's own)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


GPT2_SMALL = Shape()
# at d_model 16, GPT-2's init makes heads and MLPs negligible next to the embeddings, so
# every component would be pruned: larger weights give the tiny model a circuit
TINY = Shape(n_layers=2, n_heads=2, d_model=16, vocab=64, n_positions=16, init_range=0.5)


def build_model(
    shape: Shape = GPT2_SMALL, seed: int = 0, *, device: str = "cpu", plain: bool = True,
    family: str = "gpt2",
) -> tuple[Any, Any]:  # fmt: skip
    """(plain Hugging Face model, TransformerBridge) with the same random weights, on
    `device` (initialised on the CPU, so every device gets the same weights); `family`:
    gpt2, or neox / llama of the same shape (benchmarks/families.py).

    The bridge replaces the modules of the model it wraps, so the bare forward gets its
    own untouched copy; `plain=False` skips that copy (None in its place)."""
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    from benchmarks.families import family_model

    torch.manual_seed(seed)
    wrapped, arch = family_model(family, shape)
    plain_model = copy.deepcopy(wrapped).to(device) if plain else None
    bridge = build_bridge_from_module(wrapped.to(device), arch, hf_config=wrapped.config)
    return plain_model, bridge


def weights_checksum(hf_model: Any) -> float:
    """A cheap fingerprint of the weights: a worker process must rebuild the same model."""
    with torch.no_grad():
        return float(sum(p.double().abs().sum() for p in hf_model.parameters()))


def random_task(hf_model: Any, n_prompts: int, seq_len: int, seed: int = 0) -> TokenizedTask:
    """Random clean and corrupted prompts. The correct answer is the model's top token at
    the last position among tokens not in the prompt (so the full model's logit difference
    is positive, as discovery requires; with tied embeddings the prompt's own tokens win
    through the direct path, which no head or MLP carries, and every component would be
    pruned); the incorrect one is a random other token."""
    vocab = int(hf_model.config.vocab_size)
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, vocab, (n_prompts, seq_len))
    corrupted = rng.integers(0, vocab, (n_prompts, seq_len))
    device = next(hf_model.parameters()).device
    with torch.no_grad():
        logits = hf_model(torch.as_tensor(clean, device=device)).logits[:, -1].cpu()
    logits[np.arange(n_prompts)[:, None], clean] = -torch.inf
    correct = logits.argmax(-1).numpy().astype(np.int64)
    incorrect = (correct + rng.integers(1, vocab, n_prompts)) % vocab
    return TokenizedTask(
        name="random_tokens",
        clean=clean,
        corrupted=corrupted,
        correct=correct,
        incorrect=incorrect.astype(np.int64),
        positions={"END": np.full(n_prompts, seq_len - 1, dtype=np.int64)},
        meta={"generator": "benchmarks.gpt2_shape.random_task", "seed": seed},
    )


def save_task(task: TokenizedTask, path: Path, checksum: float) -> None:
    np.savez(
        path, clean=task.clean, corrupted=task.corrupted, correct=task.correct,
        incorrect=task.incorrect, end=task.answer_pos, checksum=checksum,
    )  # fmt: skip


def load_task(path: Path) -> tuple[TokenizedTask, float]:
    data = np.load(path)
    task = TokenizedTask(
        name="random_tokens", clean=data["clean"], corrupted=data["corrupted"],
        correct=data["correct"], incorrect=data["incorrect"], positions={"END": data["end"]},
    )  # fmt: skip
    return task, float(data["checksum"])


def bare_forward(hf_model: Any, tokens: torch.Tensor) -> None:
    """One bare Hugging Face forward of the batch (all positions' logits, no hooks),
    finished: on a GPU it waits for the queued kernels."""
    with torch.inference_mode():
        hf_model(tokens)
    if tokens.is_cuda:
        torch.cuda.synchronize(tokens.device)


def time_bare_forward(hf_model: Any, tokens: torch.Tensor, repeats: int = 3) -> float:
    """Median seconds of one bare Hugging Face forward of the whole batch."""
    bare_forward(hf_model, tokens)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        bare_forward(hf_model, tokens)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
