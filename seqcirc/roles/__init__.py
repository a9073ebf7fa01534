"""Head roles: OV successor/copy scores, attention-pattern scores, the role scan and
role claims. Imports torch; `import seqcirc` does not import this package."""

from seqcirc.roles.attention import (
    PATTERN_ROLES,
    attends_scores,
    detection_patterns,
    pattern_match,
    pattern_scores,
    repeated_random_tokens,
)
from seqcirc.roles.members import MemberTokens, member_contexts, member_tokens, resolve_members
from seqcirc.roles.ov import OVScores, ov_scores
from seqcirc.roles.scan import RoleTable, plot_role_heatmaps, scan_roles

__all__ = [
    "PATTERN_ROLES",
    "MemberTokens",
    "OVScores",
    "RoleTable",
    "attends_scores",
    "detection_patterns",
    "member_contexts",
    "member_tokens",
    "ov_scores",
    "pattern_match",
    "pattern_scores",
    "plot_role_heatmaps",
    "repeated_random_tokens",
    "resolve_members",
    "scan_roles",
]
