"""The GPU check of dtypes and device maps (issue 17), for a machine with a CUDA GPU.

    python scripts/gpu_check.py                # Llama-shaped random model, 1.1B, bfloat16
    python scripts/gpu_check.py --smoke        # a tiny Llama on the CPU, split cpu + disk

It builds a random LlamaForCausalLM of TinyLlama's shape (22 layers, d_model 2048, 32
query heads over 4 kv heads, SwiGLU 5632, vocab 32000: 1.1B parameters; no download),
saves it as safetensors in a temporary folder and evaluates one node circuit on it
through `seqcirc.evaluate`: in bfloat16 with `device_map="auto"`, with an explicit map
file spreading the layers over every visible GPU, and in float32 on one device as the
reference. It prints, for each run: Accelerate's placement, load and evaluation seconds,
peak GPU memory, F(M), F(C), F(empty), the performance ratio, the forward-vs-bridge
check, and the bfloat16 run's differences from float32 (docs/statistics.md states the
tolerance the suite checks on the bundled model). A run the engine refuses (E302: the
hand-written forwards need the model on one device) is reported as such. The figures
go to stdout and, as JSON, to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqcirc.errors import SeqcircError  # noqa: E402
from tests.llama_tiny import llama_tokenizer  # noqa: E402  (months words as single pieces)

FULL = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
            num_attention_heads=32, num_key_value_heads=4, vocab_size=32000)  # fmt: skip
SMOKE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=2, vocab_size=320)  # fmt: skip
CIRC = """seed 0
task months = sequence(months, template=all, members=4, prompts={prompts}, start=8, range=12)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)

circuit c on "./model" {{
  ablate nodes mean(corrupted) per position direction complement
  heads 0.0, 0.1, 1.0, 1.3, 2.2
  mlp 0, 1
  expect faithfulness(bound=point) >= -1
}}
"""


def build(folder: Path, shape: dict[str, int], device: str) -> int:
    """A random Llama of `shape` saved in `folder` (bfloat16 safetensors) with a tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = llama_tokenizer()
    config = LlamaConfig(**shape, max_position_embeddings=2048, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    del model
    return n


def split_map(layers: int, smoke: bool) -> dict[str, Any]:
    """Layers spread over every visible GPU in turn; smoke: odd layers to disk, on the CPU."""
    n_gpu = torch.cuda.device_count()
    dmap: dict[str, Any] = {"model.embed_tokens": 0 if not smoke else "cpu"}
    for i in range(layers):
        dmap[f"model.layers.{i}"] = ("disk" if i % 2 else "cpu") if smoke else i * n_gpu // layers
    dmap["model.norm"] = dmap["model.rotary_emb"] = dmap["lm_head"] = "cpu" if smoke else n_gpu - 1
    return dmap


def run(path: Path, label: str, n_boot: int, **options: Any) -> dict[str, Any]:
    import seqcirc

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        result = seqcirc.evaluate(path, n_boot=n_boot, **options)
    except SeqcircError as err:
        return {"run": label, "error": f"{err.code}: {err.message}"}
    c = result.circuits[0]
    return {
        "run": label, "seconds": round(time.perf_counter() - t0, 2),
        "dtype": result.model["dtype"], "device": result.model["device"],
        "device_map": result.model["device_map"],
        "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available() else None,
        "f_model": c.f_model, "f_circuit": c.f_circuit, "f_empty": c.f_empty,
        "ratio": c.performance_ratio.value, "bridge_max_abs_diff": c.checks["bridge_max_abs_diff"],
        "prepare_s": c.timings.get("prepare_s"), "per_prompt": c.per_prompt,
    }  # fmt: skip


def compare(half: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    out = {"ratio": abs(half["ratio"] - ref["ratio"])}
    for part in ("model", "circuit", "empty"):
        d = np.abs(np.subtract(half["per_prompt"][part], ref["per_prompt"][part]))
        out[f"{part}_max"], out[f"{part}_mean"] = float(d.max()), float(d.mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny model on the CPU (seconds)")
    ap.add_argument("--prompts", type=int, default=None, help="prompts (default 255; smoke 30)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "gpu_check.json"))
    args = ap.parse_args()
    smoke = args.smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: run with --smoke, or on a machine with a GPU")
    shape = SMOKE if smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="seqcirc-gpu-check-"))
    t0 = time.perf_counter()
    n_params = build(work / "model", shape, "cpu" if smoke else "cuda")
    print(f"model: {n_params / 1e9:.3f}B parameters, built in {time.perf_counter() - t0:.1f} s")
    prompts = args.prompts or (30 if smoke else 255)
    (work / "c.circ").write_text(CIRC.format(prompts=prompts))
    (work / "map.json").write_text(json.dumps(split_map(shape["num_hidden_layers"], smoke)))
    path, device, n_boot = work / "c.circ", "cpu" if smoke else "cuda", 100 if smoke else 1000
    runs = [
        run(path, "float32, one device", n_boot, device=device),
        run(path, "bfloat16, one device", n_boot, device=device, dtype="bfloat16"),
        run(path, "bfloat16, device map auto", n_boot, dtype="bfloat16", device_map="auto"),
        run(path, "bfloat16, device map file", n_boot, dtype="bfloat16",
            device_map=str(work / "map.json")),
    ]  # fmt: skip
    ref = runs[0]
    for r in runs:
        if "error" in r:
            print(f"{r['run']:28s} refused: {r['error']}")
            continue
        if r is not ref and "error" not in ref:
            r["vs_float32"] = compare(r, ref)
        shown = {k: v for k, v in r.items() if k not in ("run", "per_prompt")}
        print(f"{r['run']:28s} {json.dumps(shown)}")
    info = {"n_params": n_params, "shape": shape, "prompts": prompts, "smoke": smoke,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "torch": torch.__version__,
            "runs": [{k: v for k, v in r.items() if k != "per_prompt"} for r in runs]}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
