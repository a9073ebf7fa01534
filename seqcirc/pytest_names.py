"""Item names of the pytest plugin (seqcirc.pytest_plugin): ids a person can type and
`-k` can match, `months.circ::months_mini::role[2.0-successor]`, unique in a circuit.

Plain functions of the plan's claims (no pytest, no torch), so the rules are tested alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plugin is loaded by every pytest run: import nothing more
    from seqcirc.plan import CircuitPlan, Claim

# The claim's word as written in the language (`beats random` is random_baseline).
_WORDS = {"random_baseline": "beats_random", "normalized_faithfulness": "faithfulness"}
# Switches that change what a claim measures, shown in its id when on.
_FLAGS = {
    "minimality": ("signed",),
    "completeness": ("greedy", "groups"),
    "random_baseline": ("layer_matched", "complement_only"),
}


def _claim_tags(claim: Claim) -> list[str]:
    """What tells a claim apart from others of its kind: a role's head and role (and an
    attends claim's positions), a faithfulness variant, the switches that are on."""
    params = claim.params_dict()
    if claim.kind == "role":
        tags = [str(params.get("head")), str(params.get("role"))]
        if params.get("role") == "attends":
            tags += [str(params.get("from")), str(params.get("to"))]
        return tags
    tags = ["normalized"] if claim.kind == "normalized_faithfulness" else []
    return tags + [flag for flag in _FLAGS.get(claim.kind, ()) if params.get(flag) is True]


def _label(word: str, tags: Sequence[str]) -> str:
    return f"{word}[{'-'.join(tags)}]" if tags else word


def claim_names(claims: Sequence[Claim]) -> list[str]:
    """Item names of a circuit's claims: `faithfulness`, `minimality[signed]`,
    `role[9.1-successor]`, `beats_random`. Claims that would share a name get their line
    (`faithfulness[line31]`), and their column too if they share the line, so every id
    in a circuit is unique; a claim whose name is its own keeps it when lines move."""
    named = [(_WORDS.get(c.kind, c.kind), _claim_tags(c)) for c in claims]
    counts = Counter(_label(w, t) for w, t in named)
    names = [
        _label(w, [*t, f"line{c.line}"]) if counts[_label(w, t)] > 1 else _label(w, t)
        for (w, t), c in zip(named, claims, strict=True)
    ]
    counts = Counter(names)
    return [
        _label(w, [*t, f"line{c.line}", f"col{c.col}"]) if counts[n] > 1 else n
        for (w, t), c, n in zip(named, claims, names, strict=True)
    ]


def circuit_node_names(circuits: Sequence[CircuitPlan]) -> list[str]:
    """The circuits' node names in a file: the circuit's own, `C-on-T` for an `expect C
    on T` pair, and `C-on-MODEL` where one name has sections on several models. No
    spaces (an id pastes into a shell) and no brackets (pytest reads those as an item's
    parameters)."""
    names = ["-".join(c.name.split()) for c in circuits]
    counts = Counter(names)
    return [
        f"{name}-on-{_word(c.model.name)}" if counts[name] > 1 else name
        for name, c in zip(names, circuits, strict=True)
    ]


def _word(text: str) -> str:
    """A model's name or folder as one word of an id: `gpt2-small`, `checkpoints_run3`."""
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "model"
