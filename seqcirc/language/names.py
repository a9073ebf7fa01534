"""How one component (an attention head or an MLP) may be written: the spellings the
field uses, the one canonical spelling every printer uses, and EAP-IG/MIB's names.

Accepted wherever a `.circ` file takes a head or an MLP (docs/language.md, "Component
names"):

- canonical: heads `9.1`, MLPs `mlp9` (statements also take `mlp 9`, `mlp 0..4`);
- `L9H1`, as papers' tables write a head;
- EAP-IG / MIB node names: `a9.h1`, `m9`;
- TransformerLens hook names with the head index: `blocks.9.attn.hook_z[1]` or
  `blocks.9.attn.hook_z[:, :, 1]`; an MLP's output `blocks.9.hook_mlp_out`.

`hook_result` may stand for `hook_z` (the head's output after W_O, where EAP-IG and ACDC
read a head); both name the head, whose output seqcirc ablates at its z.
Plain data and regular expressions: no lark, no torch.
"""

from __future__ import annotations

import re

_HEAD = (
    re.compile(r"(\d+)\.(\d+)"),
    re.compile(r"L(\d+)H(\d+)"),
    re.compile(r"a(\d+)\.h(\d+)"),
    re.compile(r"blocks\.(\d+)\.attn\.hook_(?:z|result)\[(?:\s*:\s*,\s*:\s*,)?\s*(\d+)\s*\]"),
)
_MLP = (
    re.compile(r"mlp(\d+)"),
    re.compile(r"m(\d+)"),
    re.compile(r"blocks\.(\d+)\.hook_mlp_out"),
)
# Endpoints of edges besides components (plan.EMBED, plan.LOGITS) and EAP-IG's names.
EMBED, LOGITS = "embed", "logits"
MIB_INPUT, MIB_LOGITS = "input", "logits"


def parse_component(text: str) -> tuple[int, int | None] | None:
    """(layer, head) of a head, (layer, None) of an MLP, None if `text` names neither."""
    text = text.strip()
    for pattern in _HEAD:
        m = pattern.fullmatch(text)
        if m:
            return int(m[1]), int(m[2])
    for pattern in _MLP:
        m = pattern.fullmatch(text)
        if m:
            return int(m[1]), None
    return None


def canonical(layer: int, head: int | None) -> str:
    """The one spelling plans, results, reports and hints print: `9.1`, `mlp9`."""
    return f"mlp{layer}" if head is None else f"{layer}.{head}"


def mib_name(layer: int, head: int | None) -> str:
    """EAP-IG's node name (eap/graph.py AttentionNode, MLPNode): `a9.h1`, `m9`."""
    return f"m{layer}" if head is None else f"a{layer}.h{head}"


def spells_component(name: str) -> bool:
    """Whether a bare name (a would-be group name) reads as a component instead."""
    return parse_component(name) is not None


HEAD_SPELLINGS = "9.1, L9H1, a9.h1 or blocks.9.attn.hook_z[1]"
MLP_SPELLINGS = "mlp9, `mlp 9`, m9 or blocks.9.hook_mlp_out"
