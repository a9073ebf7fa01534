"""Model-free statistics (numpy/scipy only, no torch): paired bootstrap intervals for
faithfulness ratios, random-circuit baselines, the tests of Shi et al. 2024, Holm's
correction, and p-value reporting helpers. Definitions: docs/statistics.md."""

from seqcirc.stats.baseline import (
    RandomCircuits,
    circuit_mask,
    component_index,
    component_nodes,
    mask_nodes,
    n_components,
    random_baseline_p,
    random_baseline_test,
    sample_random_circuits,
    sample_subset_masks,
)
from seqcirc.stats.bootstrap import (
    BootstrapInterval,
    bootstrap_ratio,
    normalized_faithfulness_ci,
    performance_ratio_ci,
)
from seqcirc.stats.hsic import hsic_statistic, independence_test
from seqcirc.stats.multiple import holm_adjust
from seqcirc.stats.reporting import (
    AdjustedClaim,
    PValueClaim,
    adjust_claims,
    format_p,
    p_floor,
)
from seqcirc.stats.results import TestResult
from seqcirc.stats.seeds import derive_seed
from seqcirc.stats.shi import (
    MinimalityResult,
    equivalence_p_value,
    equivalence_test,
    minimality_test,
    sufficiency_test,
)

__all__ = [
    "AdjustedClaim",
    "BootstrapInterval",
    "MinimalityResult",
    "PValueClaim",
    "RandomCircuits",
    "TestResult",
    "adjust_claims",
    "bootstrap_ratio",
    "circuit_mask",
    "component_index",
    "component_nodes",
    "derive_seed",
    "equivalence_p_value",
    "equivalence_test",
    "format_p",
    "holm_adjust",
    "hsic_statistic",
    "independence_test",
    "mask_nodes",
    "minimality_test",
    "n_components",
    "normalized_faithfulness_ci",
    "p_floor",
    "performance_ratio_ci",
    "random_baseline_p",
    "random_baseline_test",
    "sample_random_circuits",
    "sample_subset_masks",
    "sufficiency_test",
]
