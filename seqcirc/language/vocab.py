"""The words of the .circ language and what each accepts: one table, used by the checks,
the compiler and the docs. A parameter spec maps a name to (type, default)."""

from __future__ import annotations

import re

ROLES: dict[str, dict[str, type]] = {
    "successor": {"top": int},
    "copy": {"top": int},
    "attends": {"from": str, "to": str},
    "duplicate": {},
    "previous_token": {},
    "induction": {},
}
ROLE_DEFAULTS: dict[str, dict[str, object]] = {"successor": {"top": 5}, "copy": {"top": 5}}

# Claims compared against a value: name -> accepted parameters.
VALUE_CLAIMS: dict[str, dict[str, type]] = {
    "faithfulness": {"variant": str, "bound": str},
    "completeness": {"random": int, "greedy": bool, "groups": bool, "bound": str},
    "minimality": {"bound": str},
}
FAITHFULNESS_VARIANTS = ("ratio", "normalized")
BOUNDS = ("lower", "upper", "point")

# Claims decided by a p-value (`... at p < 0.01`); `beats random(...)` is random_baseline.
TEST_CLAIMS: dict[str, dict[str, type]] = {
    "random_baseline": {"n": int, "layer_matched": bool, "complement_only": bool},
    "equivalence": {"epsilon": float},
    "independence": {"permutations": int},
    "sufficiency": {"n": int, "q": float},
    "minimality_test": {"n": int, "q": float},
}
TEST_ALIASES = {"minimality": "minimality_test"}

METRICS = ("logit_diff", "prob", "accuracy", "kl")
METRIC_ARGS: dict[str, tuple[str, ...]] = {"correct": ("next",), "incorrect": ("last",)}
CORRUPTIONS = ("random_members", "shuffled_members", "random_tokens")
FILTERS = ("correct",)

TASK_PARAMS: dict[str, type] = {
    "template": str,
    "members": int,
    "prompts": int,
    "seed": int,
    "interval": int,
    "start": int,
    "range": int,
}
TASK_DEFAULTS: dict[str, object] = {"template": "all", "members": 4, "prompts": 1536}
TEMPLATE_CHOICES = ("born_in", "done_in", "lost_in", "all")

GRANULARITIES = {"nodes": "node", "edges": "edge"}
ABLATION_VALUES = ("mean", "resample", "zero")
DIRECTIONS = {
    "complement": "ablate_complement",
    "ablate_complement": "ablate_complement",
    "patch": "patch_circuit",
    "patch_circuit": "patch_circuit",
}
HEAD_INPUTS = ("q", "k", "v")

POSITION = re.compile(r"(S|N)([1-9]\d{0,3})|END")


def position_names(members: int) -> tuple[str, ...]:
    """Named positions of a generated prompt with `members` shown members."""
    return (
        *(f"S{i}" for i in range(1, members + 1)),
        *(f"N{i}" for i in range(1, members + 2)),
        "END",
    )
