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


@pytest.fixture(autouse=True)
def heavy_modules_imported_outside() -> None:
    """For pytester tests: imported into a test module, it is autouse there. pytester's
    in-process runs drop modules first imported inside them; torch's C extension does
    not survive a second import, so import the evaluation stack here."""
    import seqcirc.claims.evaluate
    import seqcirc.claims.significance
    import seqcirc.language.parser  # with its AST: the checks' isinstance tests need one copy
    import seqcirc.models.load
    import seqcirc.plan.compile
    import seqcirc.report
    import seqcirc.roles
    import seqcirc.tasks
    import seqcirc.usecases.session

    if BUNDLED:  # loading imports the rest (torch.distributed and friends) once, here
        seqcirc.models.load.load_model("seqcirc-mini")
