"""How well attribution ranks the edges of the bundled model: every method's scores
against the exact effect of each edge ablated alone (one evaluator pass per edge).

    .venv/bin/python scripts/attribution_ranks.py [--task months] [--prompts 255]

Prints Spearman's rank correlation of each method's scores with the exact effects (and
of their absolute values), and how many of the exact top-10 edges by |effect| each
method's top 10 holds. docs/attribution.md quotes a run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", default="seqcirc-mini")
    p.add_argument("--task", default="months")
    p.add_argument("--prompts", type=int, default=255, help="a multiple of 3")
    p.add_argument("--ablate", default="mean", help="mean | mean-pooled | resample | zero")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)

    from seqcirc.discovery.attribute import attribute
    from seqcirc.engine.prepare import prepare
    from seqcirc.usecases.attribute import edge_ablation
    from seqcirc.usecases.discover import model_and_task

    _, loaded, task = model_and_task(args.model, args.task, name=args.task,
                                     prompts=args.prompts, seed=0, filter_correct=True,
                                     device="cpu")  # fmt: skip
    state = prepare(loaded.bridge, task, edge_ablation(args.ablate))
    t0 = time.perf_counter()
    exact = attribute(state, "exact").scores
    print(f"{args.model}, task {args.task}, {state.n_prompts} prompts, {args.ablate} ablation: "
          f"{exact.size} edges, exact effects in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    top = set(np.argsort(-np.abs(exact))[:10])
    print(f"{'method':<22} {'spearman':>9} {'|.| spearman':>13} {'top-10 shared':>14} {'s':>6}")
    for method in ("eap", "eap-ig-inputs", "eap-ig-activations"):
        steps = args.steps if method != "eap" else None
        t0 = time.perf_counter()
        s = attribute(state, method, steps=steps).scores
        secs = time.perf_counter() - t0
        rho = spearmanr(s, exact).statistic
        rho_abs = spearmanr(np.abs(s), np.abs(exact)).statistic
        shared = len(top & set(np.argsort(-np.abs(s))[:10]))
        label = method + (f" ({steps})" if steps else "")
        print(f"{label:<22} {rho:>9.3f} {rho_abs:>13.3f} {shared:>11}/10 {secs:>6.1f}")


if __name__ == "__main__":
    main()
