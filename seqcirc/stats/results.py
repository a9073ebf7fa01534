"""The result records of seqcirc's hypothesis tests: small, frozen, JSON-ready.

A p-value is always a Python float (never a scipy result object, one of the reference
implementation's slips), and the seed that drove the test's random draws is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Params = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test.

    test: equivalence | independence | sufficiency | minimality | random_baseline
    statistic: the test statistic (p-hat, HSIC, a count, the observed value)
    n: the sample size the p-value refers to (prompts, permutations' data, random circuits)
    params: the test's parameters (epsilon, q, permutations, bandwidths, ...)
    seed: the seed of the random draws behind the inputs or the test itself; None only
          when neither the test nor its inputs drew anything at random.
    rejection_means: what rejecting H0 says about the circuit, for reports.
    null_distribution: permutation statistics or random-circuit values, kept for plots.
    """

    __test__ = False  # not a pytest test class despite the name

    test: str
    statistic: float
    p_value: float
    n: int
    params: Params
    seed: int | None
    rejection_means: str
    null_distribution: NDArray[np.float64] | None = field(default=None, compare=False, repr=False)

    def param(self, key: str) -> Any:
        return dict(self.params)[key]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (the null distribution summarised by its size, not listed)."""
        return {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "n": self.n,
            "params": {k: v for k, v in self.params},
            "seed": self.seed,
            "rejection_means": self.rejection_means,
            "null_distribution_size": (
                None if self.null_distribution is None else int(self.null_distribution.size)
            ),
        }
