"""Holm across a file's p-value claims, which p decides a claim, and p-value formatting."""

import pytest

from seqcirc.errors import InputError
from seqcirc.stats import (
    PValueClaim,
    adjust_claims,
    format_p,
    independence_test,
    p_floor,
    random_baseline_test,
    sufficiency_test,
)


def _claims():
    # the hand-worked Holm example: p = (0.01, 0.04, 0.03, 0.005) -> (0.03, 0.06, 0.06, 0.02)
    return [
        PValueClaim("c1", "random_baseline", 0.01, "<", 0.05),
        PValueClaim("c2", "sufficiency", 0.04, "<", 0.05),
        PValueClaim("c3", "equivalence", 0.03, ">=", 0.05),
        PValueClaim("c4", "minimality", 0.005, "<", 0.05),
    ]


def test_holm_decides_rejection_claims_and_raw_p_decides_non_rejection_claims():
    out = adjust_claims(_claims())
    assert [c.p_adjusted for c in out] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [c.p_raw for c in out] == [0.01, 0.04, 0.03, 0.005]
    assert [c.family_size for c in out] == [4] * 4
    # c2 passes on its raw p (0.04 < 0.05) but fails after Holm (0.06)
    assert [c.decided_on for c in out] == ["adjusted", "adjusted", "raw", "adjusted"]
    assert [c.holds for c in out] == [True, False, False, True]
    # c3 claims equivalence is NOT rejected: its raw 0.03 fails p >= 0.05; the adjusted
    # 0.06 would have passed it, so the correction is not allowed to help
    assert out[2].p_decisive == 0.03


def test_floor_makes_some_claims_unattainable():
    few = random_baseline_test(0.9, [0.1] * 99, seed=1)  # R = 99: floor 0.01
    assert p_floor(few.to_json()) == pytest.approx(0.01)

    def claim(op):  # type: ignore[no-untyped-def]
        return PValueClaim("r", few.test, few.p_value, op, 0.01, p_floor(few.to_json()), few.seed)

    (adj,) = adjust_claims([claim("<")])
    assert not adj.attainable and not adj.holds
    assert adj.seed == 1
    (ok,) = adjust_claims([claim("<=")])
    assert ok.attainable and ok.holds
    suff = sufficiency_test(0.0, [1.0] * 100)
    assert p_floor(suff.to_json()) is None
    ind = independence_test([0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 3.0, 2.0], seed=0, n_permutations=49)
    assert p_floor(ind.to_json()) == pytest.approx(1 / 50)


def test_format_p():
    assert format_p(0.01234) == "0.012"
    assert format_p(1.0) == "1"
    assert format_p(3.14e-7) == "3.1e-07"
    # 0.0499 would print as "0.05" and read as failing "p < 0.05": more digits instead
    assert format_p(0.04991, threshold=0.05) == "0.0499"
    assert format_p(0.05004, threshold=0.05) == "0.05004"
    assert format_p(0.2, threshold=0.05) == "0.2"
    assert format_p(1 / 200, floor=1 / 200) == "0.005 (floor 1/200)"


def test_adjusted_claims_record_the_correction():
    out = adjust_claims(_claims())
    assert out[0].to_json()["correction"] == "holm"


def test_bad_claims_are_refused():
    with pytest.raises(InputError):
        adjust_claims(
            [PValueClaim("a", "x", 0.1, "<", 0.05), PValueClaim("a", "x", 0.2, "<", 0.05)]
        )
    with pytest.raises(InputError):
        adjust_claims([PValueClaim("a", "x", 0.1, "==", 0.05)])
    assert adjust_claims([]) == ()
