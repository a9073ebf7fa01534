"""Small .circ texts on the bundled model, shared by the CLI and plugin tests. Heads are
derived from the model's shape, so the texts follow a retrained seqcirc-mini."""

import pytest

from seqcirc.models.shapes import BUNDLED_DIR, shape_of

BUNDLED = (BUNDLED_DIR / "model.safetensors").is_file()
needs_bundled = pytest.mark.skipif(not BUNDLED, reason="bundled model not built")

TASK = """seed 3
task months = sequence(months, template=all, members=4, prompts=48)
  corrupt random_members
  metric logit_diff(correct=next, incorrect=last)
"""


def _heads() -> list[str]:
    shape = shape_of("seqcirc-mini") if BUNDLED else None
    if shape is None:
        return ["0.0", "0.1"]
    return [f"{layer}.{head}" for layer in range(shape.n_layers) for head in range(shape.n_heads)]


def heads_but_last() -> str:
    """Every head and MLP of the bundled model but its last head: faithfulness stays high."""
    shape = shape_of("seqcirc-mini") if BUNDLED else None
    mlps = f"\n  mlp 0..{shape.n_layers - 1}" if shape else ""
    return ", ".join(_heads()[:-1]) + mlps


def last_head() -> str:
    return _heads()[-1]


# Nearly the whole model: holds. One head with a point threshold of 0.99: fails.
GOOD = (
    TASK
    + f"""
circuit most on seqcirc-mini {{
  heads {heads_but_last()}
  expect faithfulness >= 0.5
}}
"""
)
BAD = (
    TASK
    + f"""
circuit tiny on seqcirc-mini {{
  heads {last_head()}
  expect faithfulness(bound=point) >= 0.99
}}
"""
)
