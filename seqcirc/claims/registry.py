"""Every claim kind a plan can hold -> its handler, and whether its value is a p-value.

The one place that says which function measures a kind (evaluate_plan and the Session
look handlers up here) and which kinds form the Holm family of a file. Kinds by family:
- value claims, measured by every evaluate_plan run: the two faithfulness variants,
  completeness, minimality, and the logit lens (seqcirc.claims.lens: the unablated model);
- test claims, whose value is a test's p-value (seqcirc.claims.significance);
- role claims, measured on the model's weights and tokenizer (seqcirc.claims.roles).
The kinds the language accepts are listed in seqcirc.language.vocab; a kind there with no
handler here is reported "skipped", never "pass".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from seqcirc.claims import significance
from seqcirc.claims.context import ClaimHandler
from seqcirc.claims.faithfulness import faithfulness_claim
from seqcirc.claims.lens import lens_claim
from seqcirc.claims.measures import completeness_claim, minimality_claim
from seqcirc.claims.roles import role_claim
from seqcirc.language import vocab


@dataclass(frozen=True)
class ClaimKind:
    handler: ClaimHandler
    family: Literal["value", "test", "role"]

    @property
    def p_value(self) -> bool:
        """Its value is a test's p-value: Holm-Bonferroni runs across a file's such claims."""
        return self.family == "test"


KINDS: dict[str, ClaimKind] = {
    "faithfulness": ClaimKind(faithfulness_claim("performance_ratio"), "value"),
    "normalized_faithfulness": ClaimKind(faithfulness_claim("normalized_faithfulness"), "value"),
    "completeness": ClaimKind(completeness_claim, "value"),
    "minimality": ClaimKind(minimality_claim, "value"),
    "lens": ClaimKind(lens_claim, "value"),
    "random_baseline": ClaimKind(significance.random_baseline, "test"),
    "knockout": ClaimKind(significance.knockout, "test"),
    "equivalence": ClaimKind(significance.equivalence, "test"),
    "independence": ClaimKind(significance.independence, "test"),
    "sufficiency": ClaimKind(significance.sufficiency, "test"),
    "minimality_test": ClaimKind(significance.minimality, "test"),
    "role": ClaimKind(role_claim, "role"),
}

HANDLERS: dict[str, ClaimHandler] = {name: k.handler for name, k in KINDS.items()}
VALUE_HANDLERS: dict[str, ClaimHandler] = {
    name: k.handler for name, k in KINDS.items() if k.family == "value"
}
# Which kinds are p-value claims is the language's word (vocab.P_VALUE_KINDS, also read by
# the torch-free report layer); tests/test_claims_registry.py checks the families agree.
P_VALUE_KINDS = vocab.P_VALUE_KINDS
