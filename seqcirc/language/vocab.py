"""The words of the .circ language and what each accepts: the one table of them, read by
the checks, the compiler, the run-time stages (generators, corruptions, metrics, role
and claim code, reports) and the docs. A parameter spec maps a name to its type.

Torch-free and import-light: everything here is plain data.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

# ---- roles --------------------------------------------------------------------------
# The parameters the role code (seqcirc.claims.roles) reads.
# successor / copy: top k; among vocab|set; set (an ordered set; default: the task's);
#   context prompts|alone; members (how many of the set's members are scored).
# attends: from, to (named positions of the task's prompts); which prompts.
# previous_token / duplicate / induction: random sequences, n_seqs of 2 x half_len tokens.
_OV_PARAMS: dict[str, type] = {
    "top": int,
    "among": str,
    "set": str,
    "context": str,
    "members": int,
    "paper": bool,  # the authors' member ranges (PAPER_OV_MEMBERS) instead of `members`
}
# The members the authors' OV scores read (notebooks/gpt2_expms/OV_scores): prompts of 4
# consecutive members starting at numerals 1..97, number words one..eight, months
# January..August, so members 1-100, one-eleven and January-November are in scope.
PAPER_OV_MEMBERS: dict[str, int] = {"numerals": 100, "number_words": 11, "months": 11}
_PATTERN_PARAMS: dict[str, type] = {"n_seqs": int, "half_len": int}
ROLES: dict[str, dict[str, type]] = {
    "successor": _OV_PARAMS,
    "copy": _OV_PARAMS,
    "attends": {"from": str, "to": str, "which": str},
    "duplicate": _PATTERN_PARAMS,
    "previous_token": _PATTERN_PARAMS,
    "induction": _PATTERN_PARAMS,
}
OV_AMONG = ("vocab", "set")
OV_CONTEXTS = ("prompts", "alone")
# Role parameters that name one of a few choices (`set` names an ordered set).
ROLE_CHOICES: dict[str, tuple[str, ...]] = {
    "among": OV_AMONG,
    "context": OV_CONTEXTS,
    "which": ("clean", "corrupted"),
}
# What the plan records for parameters a role claim leaves out.
ROLE_DEFAULTS: dict[str, dict[str, object]] = {"successor": {"top": 5}, "copy": {"top": 5}}
# What the pattern roles use when n_seqs / half_len are left out (seqcirc.claims.roles).
PATTERN_DEFAULTS = {"n_seqs": 8, "half_len": 20}
OV_WINDOW = 4  # members per OV prompt under context=prompts (the paper's OV-score prompts)

# ---- claims -------------------------------------------------------------------------
# Claims compared against a value: name -> accepted parameters.
VALUE_CLAIMS: dict[str, dict[str, type]] = {
    "faithfulness": {"variant": str, "bound": str},
    "completeness": {"random": int, "greedy": bool, "groups": bool, "bound": str},
    "minimality": {"signed": bool, "bound": str},  # signed: keep the drop's sign
    # the logit lens on the unablated model: `expect lens(layer=9) rank(correct) <= 1`
    "lens": {"layer": int},
}
# What a lens claim measures (`rank(correct)`): only `lens` takes a measure. rank: the
# median over the task's clean prompts of the target's rank at END (1 = top); logit,
# prob: the mean decoded logit / softmax probability. Targets: correct (the answer) and
# last (the task's incorrect token: the last shown member).
LENS_MEASURES = ("rank", "logit", "prob")
LENS_TARGETS = ("correct", "last")
FAITHFULNESS_VARIANTS = ("ratio", "normalized")
BOUNDS = ("lower", "upper", "point")

# Claims decided by a p-value (`... at p < 0.01`); `beats random(...)` is random_baseline.
TEST_CLAIMS: dict[str, dict[str, type]] = {
    "random_baseline": {"n": int, "layer_matched": bool, "complement_only": bool},
    # knocking the circuit out vs knocking out random node sets of its size (the paper's
    # Llama-2 control): `expect knockout(n=50) at p < 0.05`
    "knockout": {"n": int, "layer_matched": bool, "complement_only": bool},
    "equivalence": {"epsilon": float},
    "independence": {"permutations": int},
    "sufficiency": {"n": int, "q": float},
    "minimality_test": {"n": int, "q": float},
}
TEST_ALIASES = {"minimality": "minimality_test"}
# Plan claim kinds whose value is a p-value: one Holm family per file.
P_VALUE_KINDS = frozenset(TEST_CLAIMS)

# A claim's comparison (the grammar's COMPARE) -> how its value meets the threshold.
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}

# ---- tasks --------------------------------------------------------------------------
METRICS = ("logit_diff", "prob", "accuracy", "kl", "logprob")
# The metrics that read every token of a several-token answer (teacher-forced; docs/
# language.md); the others read one answer token, and such a task's answers must be one
# token each (T310).
MULTI_TOKEN_METRICS = ("logit_diff", "accuracy", "logprob")
CORRECT_CHOICES = ("next",)
INCORRECT_CHOICES = ("last",)
METRIC_ARGS: dict[str, tuple[str, ...]] = {
    "correct": CORRECT_CHOICES,
    "incorrect": INCORRECT_CHOICES,
}
# Every parameter a `metric` clause takes, with its type: correct/incorrect name the
# answers; `accuracy(generate, max_new_tokens=N, match="REGEX")` scores greedy decoding
# (docs/language.md, "Generation"); in `match`, {answer} stands for the answer text.
METRIC_PARAMS: dict[str, type] = {
    "correct": str,
    "incorrect": str,
    "generate": bool,
    "max_new_tokens": int,
    "match": str,
}
GENERATE_METRICS = ("accuracy",)  # the metrics `generate` applies to
ANSWER_PLACEHOLDER = "{answer}"
# Corruption -> what the corrupted prompt is (seqcirc.tasks.corrupt draws it).
CORRUPTIONS: dict[str, str] = {
    "random_members": (
        "the paper's: same template and names, each member replaced by a random member "
        "of the task's range"
    ),
    "shuffled_members": "same template and names, the clean prompt's members in a random order",
    "random_tokens": (
        "same template; names redrawn at random and members drawn from the whole set "
        "(not only the task's range)"
    ),
}
FILTERS = ("correct",)
# `bos on|off|auto`: whether the task's prompts start with the BOS token. auto: as the
# model's loader does (TransformerLens' default_prepend_bos); the paper's authors ran off.
BOS_CHOICES = ("auto", "on", "off")

DEFAULT_MEMBERS = 4
DEFAULT_PROMPTS = 1536
TASK_PARAMS: dict[str, type] = {
    "template": str,
    "members": int,
    "prompts": int,
    "seed": int,
    "interval": int,
    "start": int,
    "range": int,
    "fillers": str,  # names (default) | paper: the authors' nouns and first names
    "s1": str,  # random (default) | balanced: each of the first `start` members equally often
    "filter_with": str,  # a sequence: `filter correct` keeps prompt i only if its version
    # in that sequence passes too (the authors' joint filter of number words and months)
    "step": int,  # numerals only: the members are step, 2 step, ..., 100 step
}
STEP_SEQUENCES = ("numerals",)  # the sequences `step` applies to
FILLERS = ("names", "paper")
S1_CHOICES = ("random", "balanced")
TASK_DEFAULTS: dict[str, object] = {
    "template": "all",
    "members": DEFAULT_MEMBERS,
    "prompts": DEFAULT_PROMPTS,
}
# The paper's three templates: "{N} born in {S}." repeated, ending "{N5} born in".
TEMPLATES: dict[str, str] = {
    "born_in": "born in",
    "done_in": "done in",
    "lost_in": "lost in",
}
TEMPLATE_CHOICES = (*TEMPLATES, "all")  # all: equal thirds of the three

# ---- circuits -----------------------------------------------------------------------
GRANULARITIES = {"nodes": "node", "edges": "edge"}
ABLATION_VALUES = ("mean", "resample", "zero")
DIRECTIONS = {
    "complement": "ablate_complement",
    "ablate_complement": "ablate_complement",
    "patch": "patch_circuit",
    "patch_circuit": "patch_circuit",
}
HEAD_INPUTS = ("q", "k", "v")

# ---- bounds -------------------------------------------------------------------------
# The largest value a file (or an option) may state, by parameter name: generous for real
# use, small enough that a run never exhausts memory or runs for days. `seqcirc check`
# refuses more (E251, E220/E221, E103) and names the bound. Task members, interval,
# start and range are bounded by their ordered set instead; role `top` and `half_len`
# also by the model's vocabulary and context where its shape is known.
LIMITS: dict[str, int] = {
    "seed": 2**63 - 1,  # file and task seeds: what every seeded generator accepts
    "prompts": 100_000,  # prompts of a generated task (and --prompts)
    "n": 100_000,  # random circuits drawn: beats random(n), sufficiency/minimality(n)
    "random": 100_000,  # random subsets of completeness(random=)
    "permutations": 100_000,  # independence(permutations=)
    "top": 100_000,  # successor/copy top k when the model's vocabulary is unknown
    "members": 10_000,  # role members when the ordered set is not known
    "n_seqs": 1_000,  # random sequences of the pattern roles
    "half_len": 4_096,  # tokens in each half of a pattern role's sequence
    "pattern_cells": 2**24,  # n_seqs x (2 half_len + 1)^2 attention weights per head
    "layers": 1_000,  # layers of a model whose shape is not known offline
    "heads": 1_000,  # heads per layer of such a model
    "layer": 999,  # a lens claim's layer on such a model (else the model's last layer)
    "set_depth": 100,  # nesting of set algebra (a flat chain a & b & c counts 1)
    "import_depth": 64,  # a file importing a file importing a file ... (E111)
    "ig_steps": 10_000,  # interpolation steps of `seqcirc attribute` / `discover` (EAP-IG)
    "max_new_tokens": 256,  # tokens generated per prompt: metric accuracy(generate, ...)
    "step": 10_000,  # numerals `step`: members up to 100 x 10,000 = 1,000,000
}

POSITION = re.compile(r"(S|N)([1-9]\d{0,3})|END")


def position_names(members: int) -> tuple[str, ...]:
    """Named positions of a generated prompt with `members` shown members."""
    return (
        *(f"S{i}" for i in range(1, members + 1)),
        *(f"N{i}" for i in range(1, members + 2)),
        "END",
    )
