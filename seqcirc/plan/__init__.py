"""The plan: what compile produces and the engine consumes (types in spec.py; no torch).

`compile.py` (the checked module -> Plan) is imported from its own module, so that
reading a plan never builds the parser.
"""

from seqcirc.plan.spec import (
    EMBED,
    LOGITS,
    PLAN_VERSION,
    AblationSpec,
    CircuitPlan,
    Claim,
    Edge,
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
    "CircuitPlan",
    "Claim",
    "Edge",
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
