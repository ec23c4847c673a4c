"""Holm / Benjamini-Hochberg adjustment against hand-computed values; p-value formatting floors."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.evaluation.multiple_testing import ANALYTIC_P_FLOOR, adjust_pvalues, bootstrap_p_floor, format_p

P = [0.01, 0.04, 0.03, 0.005]


def test_holm_hand_computed() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = 0.02, 0.03, 0.06, 0.04,
    # made non-decreasing (running max): 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(adjust_pvalues(P), [0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_hand_computed() -> None:
    # Sorted p_(i) * m / i: 0.02, 0.02, 0.04, 0.04; running min from the top keeps them; input order:
    np.testing.assert_allclose(adjust_pvalues(P, method="bh"), [0.02, 0.04, 0.04, 0.02])


def test_nan_is_left_out_of_the_family() -> None:
    out = adjust_pvalues([0.01, float("nan"), 0.04])
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])  # Holm over a family of two


def test_a_lone_headline_cell_does_not_survive_a_large_family() -> None:
    """text-forecast: p = 0.020 among 36 cells x 9 comparisons, the rest unremarkable."""
    p = np.r_[0.0204, np.linspace(0.05, 1.0, 323)]
    assert adjust_pvalues(p)[0] > 0.05 and adjust_pvalues(p, method="bh")[0] > 0.05


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust_pvalues(P, method="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([0.5, 1.5])


def test_format_p_never_quotes_below_the_floor() -> None:
    assert format_p(2.128e-15) == "< 0.0001"  # an analytic tail probability
    assert format_p(ANALYTIC_P_FLOOR) == "≤ 0.0001"
    assert format_p(0.03125) == "0.031"
    assert format_p(float("nan")) == "n/a" and format_p(None) == "n/a"
    floor = bootstrap_p_floor(1000)
    assert floor == pytest.approx(2 / 1001)
    assert format_p(floor, floor) == "≤ 0.002"
    assert format_p(0.5, floor) == "0.5"
