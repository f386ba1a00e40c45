"""dev/default_model/agreement_probe.py: two models' maps compared over the same windows."""

from __future__ import annotations

import numpy as np

from map_refiner.dev.default_model.agreement_probe import agreement


def test_agreement_is_the_building_iou_over_pixels_both_maps_cover():
    a = np.array([[1, 1, 0, -1]], np.int8)
    b = np.array([[1, 0, 0, 1]], np.int8)  # the last pixel is off a's image: not counted
    assert agreement([a], [b]) == 0.5
    # summed over windows, not averaged: a window with many buildings weighs more
    c, d = np.ones((1, 6), np.int8), np.ones((1, 6), np.int8)
    assert agreement([a, c], [b, d]) == 7 / 8


def test_agreement_is_none_where_neither_map_has_a_building():
    empty = np.zeros((2, 2), np.int8)
    assert agreement([empty], [empty]) is None
