"""Bounds on the sizes a command-line option states, from the language's one table
(seqcirc.language.vocab.LIMITS): `seqcirc roles --top 10**9` or `discover --prompts
10**9` is an input error before a model loads, never a run that exhausts memory."""

from __future__ import annotations

from seqcirc.errors import InputError
from seqcirc.language.vocab import LIMITS


def check_option_sizes(code: str, **options: tuple[int, str]) -> None:
    """Each option `--name`: (value, LIMITS key); the value must lie in 0..LIMITS[key]
    (what must be at least 1 the commands check themselves, with their own words)."""
    for name, (value, key) in options.items():
        bound = LIMITS[key]
        if not 0 <= value <= bound:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{flag} {value} is out of range: at most {bound:,}",
                code=code,
                hint=f"seqcirc bounds every size a user states ({key} <= {bound:,})",
            )
