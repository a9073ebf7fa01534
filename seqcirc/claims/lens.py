"""Logit-lens claims: `expect lens(layer=9) rank(correct) <= 1`, on the unablated model.

The claim decodes the residual stream at END after block `layer` (seqcirc.lens) on the
circuit's task's clean prompts (filtered when the task says `filter correct`) and reads
one measure of one target:
  rank(T)   the median over the prompts of T's rank among all tokens (1 = top; ties
            count in T's favour; with an even count, the mean of the two middle ranks);
  logit(T)  the mean of T's decoded logit;  prob(T)  the mean of its softmax probability;
T is `correct` (the answer) or `last` (the task's incorrect token, the last shown
member). The circuit's ablation plays no part: the lens reads the full model, as the
paper's logit lens did. Per-prompt values and the share of prompts where T is top-1 are
in the result's detail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqcirc.claims.context import ClaimContext, ClaimValue
from seqcirc.errors import InputError
from seqcirc.lens.stream import MEASURES, TARGETS, LensResult, logit_lens
from seqcirc.plan import Claim
from seqcirc.source import Span

# The last lens computed: (bridge, task, result). A file's lens claims on one circuit
# read one run of the model, not one each.
_LAST: list[tuple[Any, Any, LensResult]] = []


def lens_of(bridge: Any, task: Any) -> LensResult:
    """The per-block lens of `task` on `bridge`, computed once for consecutive claims."""
    if _LAST and _LAST[0][0] is bridge and _LAST[0][1] is task:
        return _LAST[0][2]
    result = logit_lens(bridge, task)
    _LAST[:] = [(bridge, task, result)]
    return result


def _fail(claim: Claim, message: str, hint: str) -> InputError:
    span = Span(claim.path, claim.line, claim.col) if claim.path and claim.line else None
    return InputError(message, code="E361", span=span, hint=hint)


def lens_value(result: LensResult, layer: int, measure: str, target: str) -> tuple[float, Any]:
    """The claim's value (see the module docstring) and its per-prompt values."""
    per_prompt = result.per_prompt(str(layer), measure, target)
    value = float(np.median(per_prompt)) if measure == "rank" else float(per_prompt.mean())
    return value, per_prompt


def lens_claim(claim: Claim, ctx: ClaimContext) -> ClaimValue:
    """The handler of `expect lens(layer=L) MEASURE(TARGET) op t`."""
    p = claim.params_dict()
    layer, measure, target = p.get("layer"), p.get("measure"), p.get("target")
    if measure not in MEASURES or target not in TARGETS:
        raise _fail(claim, f"lens needs a measure and a target, got {measure}({target})",
                    "e.g. lens(layer=9) rank(correct) <= 1")  # fmt: skip
    bridge = getattr(ctx.model, "bridge", ctx.model)  # a LoadedModel or a bare bridge
    if bridge is None:
        raise _fail(claim, "a lens claim needs the model", "evaluate the plan with a model")
    n_layers = int(bridge.cfg.n_layers)
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise _fail(claim, f"lens(layer={layer}) is not a layer of this model",
                    f"layers 0..{n_layers - 1}")  # fmt: skip
    result = lens_of(bridge, ctx.state.task)
    value, per_prompt = lens_value(result, layer, measure, target)
    ranks = result.per_prompt(str(layer), "rank", target)
    detail = {
        "layer": layer, "measure": measure, "target": target,
        "statistic": "median" if measure == "rank" else "mean",
        "n_prompts": int(per_prompt.size), "top1_share": float((ranks == 1).mean()),
        "model": "unablated", "final_max_abs_diff": result.final_max_abs_diff,
    }  # fmt: skip
    return ClaimValue(value, per_prompt=tuple(float(x) for x in per_prompt), detail=detail)
