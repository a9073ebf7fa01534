"""The plan: what compile produces and the engine consumes (types in spec.py, the ablation
set-up in ablation.py; no torch).

`compile.py` (the checked module -> Plan) is imported from its own module, so that
reading a plan never builds the parser.
"""

from seqcirc.plan.ablation import AblationSpec, AblationWords
from seqcirc.plan.spec import (
    EMBED,
    LOGITS,
    PLAN_VERSION,
    CircuitPlan,
    Claim,
    Edge,
    Generation,
    ModelRef,
    Node,
    Params,
    Plan,
    ReceiverInput,
    TaskSpec,
    params,
    plan_to_json,
    to_jsonable,
)

__all__ = [
    "EMBED",
    "LOGITS",
    "PLAN_VERSION",
    "AblationSpec",
    "AblationWords",
    "CircuitPlan",
    "Claim",
    "Edge",
    "Generation",
    "ModelRef",
    "Node",
    "Params",
    "Plan",
    "ReceiverInput",
    "TaskSpec",
    "params",
    "plan_to_json",
    "to_jsonable",
]
