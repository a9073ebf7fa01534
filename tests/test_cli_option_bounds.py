"""Sizes stated on the command line are bounded like those in a file (LIMITS): a huge
--top, --prompts, --repeat-len or --seed is exit 2 before any model loads."""

import pytest

from seqcirc.errors import InputError
from seqcirc.language.vocab import LIMITS
from seqcirc.usecases.limits import check_option_sizes
from tests.cli_in_process import seqcirc


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["roles", "seqcirc-mini", "--task", "months", "--top", "1000000000"], "--top"),
        (["roles", "seqcirc-mini", "--task", "months", "--repeat-len", "99999"], "--repeat-len"),
        (["discover", "--task", "months", "--prompts", "999999999"], "--prompts"),
        (["discover", "--task", "months", "--seed", str(2**64)], "--seed"),
    ],
)
def test_a_huge_option_is_exit_2_naming_its_bound(argv: list[str], flag: str) -> None:
    proc = seqcirc(*argv)
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "at most" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bounds_come_from_the_one_table() -> None:
    check_option_sizes("E340", prompts=(LIMITS["prompts"], "prompts"))  # the bound itself is fine
    with pytest.raises(InputError, match=f"at most {LIMITS['prompts']:,}") as info:
        check_option_sizes("E340", prompts=(LIMITS["prompts"] + 1, "prompts"))
    assert info.value.code == "E340"
    with pytest.raises(InputError):
        check_option_sizes("E809", top=(-1, "top"))
