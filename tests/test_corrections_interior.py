"""training/corrections/interior.py: a fit may trust only each drawn polygon's interior
(FitParams.edge_band_m), where a hand-drawn outline cannot be off."""

from __future__ import annotations

import numpy as np

from map_refiner.training.corrections.interior import _all_within, interior
from map_refiner.training.tile import IGNORE


def test_all_within_matches_a_brute_force_square_erosion() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        m = rng.random((17, 21)) < 0.8
        r = int(rng.integers(1, 4))
        padded = np.pad(m, r, mode="edge")
        want = np.array(
            [
                [padded[i : i + 2 * r + 1, j : j + 2 * r + 1].all() for j in range(m.shape[1])]
                for i in range(m.shape[0])
            ]
        )
        assert (_all_within(m, r) == want).all()


def test_the_band_inside_each_outline_is_left_out_and_small_polygons_keep_every_pixel() -> None:
    labels = np.full((40, 40), IGNORE, np.uint8)
    features = np.full((40, 40), -1, np.int32)
    labels[5:25, 5:15], features[5:25, 5:15] = 1, 0  # a building drawn 20 x 10
    labels[5:25, 15:25], features[5:25, 15:25] = 0, 1  # background drawn beside it
    labels[30:33, 30:33], features[30:33, 30:33] = 1, 2  # a 3 x 3 polygon
    out = interior(labels, 2, features)
    assert (out[7:23, 7:13] == 1).all() and (out[7:23, 17:23] == 0).all()
    # two pixels of each outline go: the undrawn side and the other class's side
    assert (out[5:7, 5:25] == IGNORE).all() and (out[5:25, 13:17] == IGNORE).all()
    assert (out[30:33, 30:33] == 1).all()  # nothing two pixels inside: kept whole
    assert ((out != IGNORE) <= (labels != IGNORE)).all() and (
        out[out != IGNORE] == labels[out != IGNORE]
    ).all()
    assert interior(labels, 0, features) is labels


def test_the_array_s_edge_is_not_an_outline() -> None:
    labels = np.ones((10, 10), np.uint8)
    features = np.zeros((10, 10), np.int32)
    labels[:, 6:] = IGNORE
    features[:, 6:] = -1
    out = interior(labels, 1, features)
    assert (out[:, :5] == 1).all() and (out[:, 5] == IGNORE).all()
