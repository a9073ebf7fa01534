"""The ablation set-up (docs/language.md, `ablate`): what a replaced component gets,
where those values come from, at which positions, which run is intervened on, and whether
nodes or edges are cut. One frozen value that answers the engine's questions about itself
and says itself in words, once, for results and reports alike. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqcirc.errors import InputError

VALUES = ("mean", "resample", "zero")

# Field metadata: to_jsonable (plan.spec) leaves such a field out while it holds its
# default, so adding a field with a default changes no existing plan, result or hash.
OMIT_DEFAULT = "omit_default"

_VALUE_WORDS = {
    "mean": "value: mean over the corrupted prompts per position",
    "resample": "value: resample (the paired corrupted prompt)",
    "zero": "value: zero",
}
_POOLED_WORDS = "value: mean over the corrupted prompts, pooled over all positions"
# prompts of different lengths (docs/tasks.md, ragged prompts): no position index is
# shared, so the means are per named position (unnamed tokens share one)
_RAGGED_WORDS = "value: mean over the corrupted prompts per named position"
_DIRECTION_WORDS = {
    "ablate_complement": "clean input, complement ablated",
    "patch_circuit": "corrupted input, circuit patched in",
}


@dataclass(frozen=True)
class AblationWords:
    """The set-up in words. `setup`: the one line reports print; `means_from` and
    `values_from`: what results record about where the replacement values come from."""

    setup: str
    means_from: str
    values_from: str


@dataclass(frozen=True)
class AblationSpec:
    """The ablation set-up; recorded with every number (docs/language.md, `ablate`).

    Nothing here is validated on construction (a report may read back any recorded set-up);
    `check` says whether the engine can run it.
    """

    granularity: Literal["node", "edge"] = "node"
    value: Literal["mean", "resample", "zero"] = "mean"
    positions: tuple[str, ...] | None = None  # None = all positions
    direction: Literal["ablate_complement", "patch_circuit"] = "ablate_complement"
    # Mean ablation: one mean per position (the paper's, the default) or, `pooled`, one
    # mean over every prompt and position, the same at every position.
    per_position: bool = field(default=True, metadata={OMIT_DEFAULT: True})

    @property
    def is_edge(self) -> bool:
        return self.granularity == "edge"

    @property
    def patches_circuit(self) -> bool:
        """The corrupted prompt runs and circuit nodes get their clean activations."""
        return self.direction == "patch_circuit"

    @property
    def needs_corrupted_run(self) -> bool:
        """Zero ablation replaces with zeros; every other set-up reads the corrupted run."""
        return self.value != "zero"

    @property
    def per_prompt_values(self) -> bool:
        """Each prompt gets its own replacement values (resample; patching the circuit)."""
        return self.value == "resample" or self.patches_circuit

    @property
    def uses_means(self) -> bool:
        """Replacement values are means over the corrupted prompts, shared by every prompt:
        the only values small enough to keep in the on-disk means cache."""
        return self.value == "mean" and not self.patches_circuit

    @property
    def per_position_means(self) -> bool:
        return self.value == "mean" and self.per_position

    def check(self) -> None:
        """E320 where the engine cannot run this set-up (the checks stop most of these in
        a .circ file; a plan built by hand reaches the engine unchecked)."""
        if self.value not in VALUES:
            raise InputError(f"unknown ablation value {self.value!r}", code="E320")
        if self.patches_circuit and self.value != "resample":
            raise InputError(
                "patching the circuit into corrupted input runs each prompt's paired corrupted "
                f"prompt, so the ablation value must be resample, not {self.value}",
                code="E320",
                hint="write `ablate resample` with `patch circuit`, or ablate the complement",
            )
        if not self.per_position and self.value != "mean":
            raise InputError(
                f"only a mean can be pooled over positions, not {self.value}",
                code="E320",
                hint="drop `pooled`, or write `ablate mean pooled`",
            )

    def check_edges(self) -> None:
        """E320 for what an edge circuit cannot do (named positions, patching)."""
        if self.is_edge and (self.positions is not None or self.direction != "ablate_complement"):
            raise InputError(
                "edge circuits are evaluated at all positions with the complement ablated",
                code="E320",
                hint="drop the positions / patch-circuit options for an edge circuit",
            )

    def circ_value(self) -> str:
        """The value as an `ablate` line writes it: `mean`, `mean pooled`, `resample`..."""
        return self.value if self.per_position else f"{self.value} pooled"

    def describe(self, task: str = "", n_prompts: int = 0, ragged: bool = False) -> AblationWords:
        """The set-up in words; `task` and `n_prompts` name where the values come from;
        `ragged`: the prompts have different lengths (means per named position).

        Any recorded value reads back (an unknown one as itself), so reports of older or
        partial results still print a line."""
        value = str(self.value)
        if value == "mean" and not self.per_position:
            value_words = _POOLED_WORDS
        elif value == "mean" and ragged:
            value_words = _RAGGED_WORDS
        else:
            value_words = _VALUE_WORDS.get(value, f"value {self.value}")
        setup = "; ".join(
            [
                f"{self.granularity} ablation",
                value_words,
                "all positions"
                if not self.positions
                else "positions " + ", ".join(map(str, self.positions)),
                _DIRECTION_WORDS.get(str(self.direction), f"direction {self.direction}"),
            ]
        )
        if self.uses_means:
            means_from = f"{n_prompts} corrupted prompts of task {task!r}"
        else:
            means_from = f"none ({self.value} ablation, {self.direction})"
        return AblationWords(setup, means_from, self._values_from(task, n_prompts))

    def _values_from(self, task: str, n_prompts: int) -> str:
        """Where replacement values come from (the sixth choice of the ablation set-up)."""
        if self.patches_circuit:
            return "circuit nodes from the clean prompts; input: the paired corrupted prompt"
        if self.value == "mean" and not self.per_position:
            return (
                f"mean over the {n_prompts} corrupted prompts of {task!r}, "
                "pooled over all positions"
            )
        if self.value == "mean":
            return f"per-position mean over the {n_prompts} corrupted prompts of {task!r}"
        if self.value == "resample":
            return f"each prompt's paired corrupted prompt (task {task!r})"
        return "zeros (no corrupted run)"


__all__ = ["OMIT_DEFAULT", "VALUES", "AblationSpec", "AblationWords"]
