"""pytest plugin (entry point `pytest11`): circuit claims in .circ files as tests.

Hooks and fixtures only; the work lives in the library. Loaded by every pytest run in
an environment where seqcirc is installed, so it must import nothing heavy.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seqcirc", "seqcirc circuit claims")
    group.addoption(
        "--seqcirc-seed",
        action="store",
        type=int,
        default=None,
        help="seed for every random draw of seqcirc claims (default: the file's seed)",
    )
