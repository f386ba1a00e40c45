"""dev/corrections/users.py: the simulated user who follows a where-to-draw list ranked by
the base model's disagreement with a second model."""

from __future__ import annotations

import numpy as np
import pytest

from map_refiner.dev.corrections.users import disagreement, ordered


def test_disagreement_is_half_the_l1_distance_of_the_class_probabilities() -> None:
    a = np.zeros((2, 2, 3), np.float32)
    a[1] = 1.0  # sure of class 1 everywhere
    b = a.copy()
    b[:, 0, 0] = (1.0, 0.0)  # sure of the other class at (0, 0)
    b[:, 1, 2] = (0.5, 0.5)  # unsure at (1, 2)
    d = disagreement(a, b)
    assert d[0, 0] == pytest.approx(1.0) and d[1, 2] == pytest.approx(0.5)
    assert d[0, 1] == 0.0 and d.dtype == np.float32


def test_the_disagreement_user_draws_first_where_the_models_disagree() -> None:
    """Two error regions on the left half; the base model is unsure only over the larger
    (the uncertainty user's first), the second model disagrees only over the smaller: the
    disagreement user draws that one first. Without a second model's signal it cannot
    rank anything."""
    h, w, half = 16, 32, 16
    small = np.zeros((h, w), bool)
    small[1:3, 1:3] = True
    large = np.zeros((h, w), bool)
    large[9:15, 9:15] = True
    regions = [(int(small.sum()), (small, 1)), (int(large.sum()), (large, 0))]
    probs = np.zeros((2, h, w), np.float32)
    probs[0] = 1.0  # sure everywhere
    probs[:, 8:16, 8:16] = 0.5  # but over the larger region
    signal = np.zeros((h, w), np.float32)
    signal[0:4, 0:4] = 1.0
    first = ordered(regions, "disagreement", probs, half, cell_px=4, signal=signal)
    assert first[0][0] is small and first[1][0] is large
    assert ordered(regions, "uncertainty", probs, half, cell_px=4)[0][0] is large
    with pytest.raises(ValueError, match="second model"):
        ordered(regions, "disagreement", probs, half, cell_px=4)


def test_the_interleaving_user_takes_the_two_lists_in_turns_and_draws_each_error_once() -> None:
    """Three error regions: the base model is unsure over A then B, the second model
    disagrees over C then A; in turns: A (first of uncertainty), C (first of disagreement),
    then B (A is drawn already)."""
    h, w, half = 24, 48, 24
    masks = {}
    for name, (y, x) in {"a": (1, 1), "b": (9, 9), "c": (17, 17)}.items():
        m = np.zeros((h, w), bool)
        m[y : y + 3, x : x + 3] = True
        masks[name] = m
    regions = [(9, (masks[n], 1)) for n in ("a", "b", "c")]
    probs = np.zeros((2, h, w), np.float32)
    probs[0] = 1.0
    probs[:, 0:4, 0:4] = 0.5  # most unsure over a
    probs[:, 8:12, 8:12] = np.array([0.6, 0.4], np.float32)[:, None, None]  # less over b
    signal = np.zeros((h, w), np.float32)
    signal[16:20, 16:20] = 1.0  # the models disagree most over c
    signal[0:4, 0:4] = 0.5  # then over a
    drawn = ordered(regions, "interleave", probs, half, cell_px=4, signal=signal)
    assert [next(n for n, m in masks.items() if m is d[0]) for d in drawn] == ["a", "c", "b"]
