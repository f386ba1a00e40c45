"""The study's saved maps (study.save_maps) read back bit for bit, and the figures a check
could compute from them (dev/corrections/map_figures.py) on a map made by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from map_refiner.dev.corrections.map_figures import colour_figures, figures, load, outcome
from map_refiner.dev.corrections.study import save_maps


def test_saved_maps_read_back_and_their_figures(tmp_path: Path) -> None:
    shape = (50, 37)  # not a multiple of 8: the packed bits must be cut back
    pred = np.zeros(shape, bool)
    pred[40:45, 0:10] = True  # 50 px the fit removes
    fitted = np.zeros(shape, bool)
    fitted[0:20, 0:20] = True  # one object of 400 px: a flood beside a 16 px polygon
    fitted[30:32, 30:32] = True  # a roof-sized object of 4 px
    drawn_building = np.zeros(shape, bool)
    drawn_building[0:4, 0:4] = True  # 16 px, inside the flood
    drawn_background = np.zeros(shape, bool)
    drawn_background[25:29, 0:4] = True
    drawn = [(drawn_building, 1), (drawn_background, 0)]
    row = {"scene": "s", "user": "largest", "k": 2, "variant": "head+rnn"}
    row |= {"overrides": {"seed": 3}, "passed_held_out": True, "adopted": False}
    path = save_maps(tmp_path, row, pred, fitted, drawn)
    assert path.name == "s_largest_2_head+rnn_seed3.npz"
    p, f, d, r = load(path)
    np.testing.assert_array_equal(p, pred)
    np.testing.assert_array_equal(f, fitted)
    assert d[0, 0] == 2 and d[26, 1] == 1 and (d > 0).sum() == 32
    assert r == row and outcome(r) == "dropped"
    fig = figures(p, f, d)
    size = shape[0] * shape[1]
    assert fig["added"] == pytest.approx(100 * (400 - 16 + 4) / size)
    assert fig["removed"] == pytest.approx(100 * 50 / size)
    assert fig["flood"] == pytest.approx(100 * 384 / 388)  # all but the 4 px object
    assert fig["median_object"] == pytest.approx(202.0)  # objects of 400 and 4 px
    assert fig["drawn_building"] == pytest.approx(50.0)


def test_colour_figures_say_what_the_added_pixels_look_like() -> None:
    pred = np.zeros((10, 10), bool)
    pred[0:3] = True  # the starting map's buildings: grey 100
    fitted = pred.copy()
    fitted[3:5] = True  # the fit adds rows 3-4
    image = np.zeros((3, 10, 10), np.uint8)
    image[:, 0:3] = 100
    image[:, 3:5] = 110  # the added pixels: close to the buildings' grey
    image[:, 5:] = 10  # the background both maps keep
    drawn = np.zeros((10, 10), np.uint8)
    fig = colour_figures(image, pred, fitted, drawn)
    assert fig["to_building"] == pytest.approx(np.sqrt(3) * 10)
    assert fig["to_background"] == pytest.approx(np.sqrt(3) * 100)
    assert fig["colour_ratio"] == pytest.approx(0.1)
