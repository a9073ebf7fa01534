"""The logit lens: the residual stream at the answer position decoded by the model's own
final norm and unembedding after every layer (and after every head and MLP), as ranks,
logits and probabilities of the answer tokens. Imports torch; `import seqcirc` does not
import this package."""

from seqcirc.lens.stream import MEASURES, TARGETS, LensResult, LensRow, lens_rows, logit_lens
from seqcirc.lens.summary import lens_table, lens_text

__all__ = [
    "MEASURES",
    "TARGETS",
    "LensResult",
    "LensRow",
    "lens_rows",
    "lens_table",
    "lens_text",
    "logit_lens",
]
