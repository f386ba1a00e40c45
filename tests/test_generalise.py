"""dev/prior/generalise.py: a coarse map's merged blocks and simplified outlines, which the
prior studies make from a reference and the snap model's training may learn from."""

from __future__ import annotations

import numpy as np

from map_refiner.dev.prior.generalise import merged, simplified


def _two_houses(gap: int) -> np.ndarray:
    m = np.zeros((60, 80), bool)
    m[10:30, 10:30] = True
    m[10:30, 30 + gap : 50 + gap] = True
    return m


def test_close_buildings_merge_into_one_block_and_far_ones_stay_apart() -> None:
    from scipy import ndimage

    close = merged(_two_houses(3), 4)
    assert ndimage.label(close)[1] == 1 and close[20, 30:33].all()
    assert (close & _two_houses(3)).sum() == _two_houses(3).sum()  # nothing taken away
    far = merged(_two_houses(12), 4)
    assert ndimage.label(far)[1] == 2


def test_a_building_at_the_border_keeps_its_edge() -> None:
    m = np.zeros((40, 40), bool)
    m[0:15, 0:15] = True
    assert (merged(m, 4) == m).all()


def test_simplified_outlines_keep_a_rectangle_and_cut_an_l_shaped_corner() -> None:
    rect = np.zeros((50, 50), bool)
    rect[10:30, 10:40] = True
    assert (simplified(rect, 2) == rect).all()
    ell = np.zeros((60, 60), bool)
    ell[10:50, 10:20] = True
    ell[40:50, 10:50] = True
    assert abs(int(simplified(ell, 1).sum()) - int(ell.sum())) <= 2
    coarse = simplified(ell, 15)  # the inner corner dropped: a triangle over the L
    assert coarse.sum() < ell.sum() and coarse.any()
    assert not simplified(np.zeros((20, 20), bool), 3).any()
