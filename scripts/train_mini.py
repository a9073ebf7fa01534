"""Train seqcirc-mini, the bundled GPT-2-architecture model, on the paper's tasks.

    .venv/bin/python scripts/train_mini.py            # writes seqcirc/bundled/seqcirc-mini/

Seeded and deterministic on CPU (fixed thread count, deterministic torch algorithms):
the same command on the same torch version regenerates the shipped weights. The data
sampler lives here on purpose (not in seqcirc.tasks) so the training distribution is
frozen with the weights.

Data: "{N1} born in {S1}. ... {N5} born in {S5}" over every ordered set in
seqcirc.tasks.sets, with the three templates, distinct names, and arithmetic steps
k = 1, 2, 3 (numerals also 10). The loss is taken only where the next token is a member
S2..S5, i.e. at each "in". The last token ("in") never tells the answer, and the step
must be read from earlier members, so the model has to attend.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seqcirc.models.shapes import BUNDLED_DIR
from seqcirc.tasks.sets import DEFAULT_RANGE, NAMES, ORDERED_SETS, TEMPLATES

BOS = "<|endoftext|>"
UNK = "<unk>"
SEED = 7001
N_MEMBERS = 5  # four given, the fifth predicted (the paper's format)
STEPS = {1: 0.55, 2: 0.25, 3: 0.20}  # interval k -> probability
NUMERAL_STEPS = {1: 0.5, 2: 0.2, 3: 0.15, 10: 0.15}


def build_vocab() -> list[str]:
    """Every word a built-in task can produce, in a fixed order."""
    words: list[str] = [BOS, UNK, "."]
    for template in TEMPLATES.values():
        words += template.split()
    for members in ORDERED_SETS.values():
        words += members
    words += NAMES
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)


def build_tokenizer(vocab: list[str]):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    # Words and punctuation split apart, spaces dropped: " 5" and "5" are the same token.
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=BOS,
        unk_token=UNK,
        pad_token=BOS,
        model_max_length=64,
        add_bos_token=False,
    )


def sample_members(rng: np.random.Generator, set_name: str, step: int | None) -> list[str]:
    members = ORDERED_SETS[set_name]
    steps = NUMERAL_STEPS if set_name == "numerals" else STEPS
    # Half the time stay inside the paper's default range (e.g. numerals 1-12).
    span = DEFAULT_RANGE[set_name] if rng.random() < 0.5 else len(members)
    if step is not None and (N_MEMBERS - 1) * step >= span:
        span = len(members)
    if step is None:
        ok = {k: p for k, p in steps.items() if (N_MEMBERS - 1) * k < span}
        ks = list(ok)
        probs = np.array([ok[k] for k in ks])
        step = int(rng.choice(ks, p=probs / probs.sum()))
    start = int(rng.integers(0, span - (N_MEMBERS - 1) * step))
    return [members[start + i * step] for i in range(N_MEMBERS)]


def render(names: list[str], template: str, members: list[str]) -> str:
    return ". ".join(f"{n} {template} {m}" for n, m in zip(names, members, strict=True))


def sample_text(rng: np.random.Generator, set_names: list[str], step: int | None = None) -> str:
    set_name = set_names[int(rng.integers(len(set_names)))]
    names = [NAMES[i] for i in rng.choice(len(NAMES), size=N_MEMBERS, replace=False)]
    template = list(TEMPLATES.values())[int(rng.integers(len(TEMPLATES)))]
    return render(names, template, sample_members(rng, set_name, step))


def encode_batch(tokenizer, texts: list[str]) -> torch.Tensor:
    ids = [[tokenizer.bos_token_id, *tokenizer.encode(t, add_special_tokens=False)] for t in texts]
    lengths = {len(x) for x in ids}
    assert len(lengths) == 1, lengths
    return torch.tensor(ids, dtype=torch.long)


def paper_prompts(rng: np.random.Generator, set_name: str, n: int) -> tuple[list[str], list[str]]:
    """Held-out prompts in the paper's format: interval 1, S1 among the first
    DEFAULT_RANGE - 4 members; returns (prompt ending "{N5} {template}", answer)."""
    members = ORDERED_SETS[set_name]
    prompts, answers = [], []
    for _ in range(n):
        start = int(rng.integers(0, DEFAULT_RANGE[set_name] - (N_MEMBERS - 1)))
        seq = list(members[start : start + N_MEMBERS])
        names = [NAMES[i] for i in rng.choice(len(NAMES), size=N_MEMBERS, replace=False)]
        template = list(TEMPLATES.values())[int(rng.integers(len(TEMPLATES)))]
        text = render(names, template, seq)
        prompts.append(text[: text.rfind(" ")])
        answers.append(seq[-1])
    return prompts, answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=BUNDLED_DIR)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    vocab = build_vocab()
    tokenizer = build_tokenizer(vocab)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=args.d_model,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=4 * args.d_model,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.bos_token_id,
    )
    model = GPT2LMHeadModel(config)
    set_names = list(ORDERED_SETS)

    in_id = tokenizer.convert_tokens_to_ids("in")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    for step in range(args.steps):
        tokens = encode_batch(tokenizer, [sample_text(rng, set_names) for _ in range(args.batch)])
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        # Score only the members S2..S5 (the token after each "in" but the first).
        mask = inputs == in_id
        mask[:, : int(mask[0].nonzero()[0]) + 1] = False
        logits = model(inputs).logits
        loss = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d} loss {loss.item():.4f} {time.perf_counter() - t0:6.1f}s",
                flush=True,
            )
    train_s = time.perf_counter() - t0

    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in ("pytorch_model.bin", "model.safetensors"):
        (args.out / stale).unlink(missing_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    (args.out / "generation_config.json").unlink(missing_ok=True)

    # Held-out accuracy on a seed the training stream never used.
    eval_rng = np.random.default_rng(args.seed + 1)
    report: dict[str, object] = {
        "train_seconds": round(train_s, 1),
        "steps": args.steps,
        "batch": args.batch,
        "threads": args.threads,
        "accuracy": {},
    }
    acc: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for set_name in set_names:
            prompts, answers = paper_prompts(eval_rng, set_name, 300)
            ids = encode_batch(tokenizer, prompts)
            top = model(ids).logits[:, -1].argmax(-1)
            want = torch.tensor(tokenizer.convert_tokens_to_ids(answers))
            row = {"k=1 paper format": float((top == want).float().mean())}
            for k in (2, 3):
                if (N_MEMBERS - 1) * k >= len(ORDERED_SETS[set_name]):
                    continue
                texts = [sample_text(eval_rng, [set_name], step=k) for _ in range(300)]
                toks = encode_batch(tokenizer, texts)
                top = model(toks[:, :-1]).logits[:, -1].argmax(-1)
                row[f"k={k}"] = float((top == toks[:, -1]).float().mean())
            acc[set_name] = row
            print(set_name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    report["accuracy"] = acc
    report["torch"] = torch.__version__
    print(json.dumps(report, indent=1))
    print(f"total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
