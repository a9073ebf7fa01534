"""One seed per file (or --seed) drives every random draw: each claim gets its own
stream, derived from the root seed and the claim's id, so adding a claim never changes
another claim's numbers."""

from __future__ import annotations

import zlib

import numpy as np

from seqcirc.stats._checks import check_seed


def derive_seed(root_seed: int, *labels: str) -> int:
    """A 63-bit seed from the root seed and labels (e.g. a circuit name and a claim id).

    Stable across runs, platforms and Python versions (crc32 of UTF-8 labels fed to
    numpy's SeedSequence, not Python's salted hash()).
    """
    root = check_seed(root_seed)
    keys = [zlib.crc32(label.encode("utf-8")) for label in labels]
    state = np.random.SeedSequence([root, *keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
