"""Holm–Bonferroni against hand-worked examples."""

import numpy as np
import pytest

from seqcirc.errors import InputError
from seqcirc.stats import holm_adjust


def test_holm_hand_worked():
    # sorted: 0.005 (x4) 0.01 (x3) 0.03 (x2) 0.04 (x1) -> 0.02, 0.03, 0.06, 0.04
    # running max -> 0.02, 0.03, 0.06, 0.06; back in input order:
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # at alpha = 0.05 Holm rejects claims 1 and 4 only; Bonferroni (x4) would reject only 4
    assert list(adjusted <= 0.05) == [True, False, False, True]


def test_holm_caps_at_one_and_keeps_order():
    np.testing.assert_allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm_adjust([0.2]), [0.2])
    assert holm_adjust([]).size == 0
    # ties keep a valid, monotone adjustment
    np.testing.assert_allclose(holm_adjust([0.01, 0.01, 0.5]), [0.03, 0.03, 0.5])


def test_holm_matches_a_slow_reference():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 13):
        p = rng.random(m) ** 3
        order = sorted(range(m), key=lambda i: p[i])
        slow = [0.0] * m
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            slow[i] = running
        np.testing.assert_allclose(holm_adjust(p), slow, rtol=1e-12)


def test_holm_refuses_values_outside_unit_interval():
    with pytest.raises(InputError):
        holm_adjust([0.1, 1.2])
    with pytest.raises(InputError):
        holm_adjust([np.nan])
