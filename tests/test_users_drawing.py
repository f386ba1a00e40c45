"""dev/corrections/users.py drawn_as: the simulated user who draws each error as a person
clicking corners would (rough) or generously (loose), never on the scored half."""

from __future__ import annotations

import numpy as np
import pytest

from map_refiner.dev.corrections.users import drawn_as


def _square(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((100, 100), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_traced_drawings_are_the_errors_themselves() -> None:
    errors = [(_square(20, 50, 10, 40), 1)]
    assert drawn_as(errors, "traced", 0.3, 50) is errors


def test_a_loose_drawing_covers_the_error_and_a_band_around_it_on_the_left_half_only() -> None:
    """1 m at 0.25 m pixels: 4 px further out on every side, corners rounded; a polygon
    reaching the half line is cut there."""
    square = _square(20, 50, 10, 40)
    edge = _square(60, 70, 30, 60)  # crosses the half line at 50
    (loose, cls), (cut, _) = drawn_as([(square, 1), (edge, 0)], "loose:1", 0.25, 50)
    assert cls == 1 and (loose & square).sum() == square.sum()
    assert loose[16:54, 14:36].all() and not loose[:15].any() and not loose[55:].any()
    assert 38 * 38 - 4 * 16 <= loose.sum() <= 38 * 38  # rounded corners lose a little
    assert not cut[:, 50:].any() and cut[60:70, 30:50].all() and cut[56, 30:50].all()


def test_rough_drawings_move_each_outline_by_at_most_the_distance_and_are_seeded() -> None:
    errors = [(_square(10 + 20 * i, 24 + 20 * i, 10, 30), 1) for i in range(4)]
    a = drawn_as(errors, "rough:1", 0.25, 50, seed=3)
    b = drawn_as(errors, "rough:1", 0.25, 50, seed=3)
    assert all((x == y).all() for (x, _), (y, _) in zip(a, b, strict=True))
    sizes = []
    for (mask, _), (drawn, _) in zip(errors, a, strict=True):
        grown = np.zeros_like(mask)
        ys, xs = np.nonzero(mask)
        grown[ys.min() - 5 : ys.max() + 6, xs.min() - 5 : xs.max() + 6] = True
        inner = np.zeros_like(mask)
        inner[ys.min() + 5 : ys.max() - 4, xs.min() + 5 : xs.max() - 4] = True
        assert not (drawn & ~grown).any() and (drawn & inner).sum() == inner.sum()
        sizes.append(int(drawn.sum()))
    assert len(set(sizes)) > 1  # each polygon its own offset


def test_an_unknown_drawing_or_one_without_a_distance_is_refused() -> None:
    errors = [(_square(20, 50, 10, 40), 1)]
    with pytest.raises(ValueError, match="drawing is one of"):
        drawn_as(errors, "sketchy:1", 0.3, 50)
    with pytest.raises(ValueError, match="needs a distance"):
        drawn_as(errors, "loose", 0.3, 50)


def test_inside_drawings_stay_within_the_error() -> None:
    errors = [(_square(10 + 20 * i, 24 + 20 * i, 10, 30), 1) for i in range(4)]
    drawn = drawn_as(errors, "inside:1", 0.25, 50, seed=1)
    for (mask, _), (inner, _) in zip(errors, drawn, strict=True):
        assert inner.any() and not (inner & ~mask).any()


def test_shifted_drawings_keep_the_size_and_move_each_outline_by_the_distance() -> None:
    """1 m at 0.25 m pixels: each square the same size, moved 4 px (rounded per axis) in a
    direction of its own, so generous on one side and inside on the other."""
    errors = [(_square(10 + 20 * i, 24 + 20 * i, 10, 30), 1) for i in range(4)]
    drawn = drawn_as(errors, "shifted:1", 0.25, 50, seed=2)
    moves = set()
    for (mask, _), (moved, _) in zip(errors, drawn, strict=True):
        assert moved.sum() == mask.sum()
        (ys, xs), (my, mx) = np.nonzero(mask), np.nonzero(moved)
        dy, dx = int(my.min() - ys.min()), int(mx.min() - xs.min())
        assert 3 <= np.hypot(dy, dx) <= 5 and (moved & ~mask).any() and (mask & ~moved).any()
        moves.add((dy, dx))
    assert len(moves) > 1


def test_snapped_drawings_move_a_shifted_roof_onto_its_edges_and_keep_background() -> None:
    """study --drawing STYLE+snap: the building polygon drawn 3 px east of a bright roof
    gives up most of its strip past the roof and gains most of the roof it left out;
    the background polygon stays as drawn."""
    from map_refiner.dev.corrections.users import snapped_to_edges

    rng = np.random.default_rng(0)
    img = rng.normal(90, 8, (3, 100, 100)).astype(np.float32)
    img[:, 20:40, 20:40] += 70
    roof = _square(20, 40, 20, 40)
    drawn = _square(20, 40, 23, 43)
    yard = _square(2, 12, 2, 12)
    (moved, c1), (kept, c0) = snapped_to_edges([(drawn, 1), (yard, 0)], img, 0.25, 100)
    assert (c1, c0) == (1, 0) and (kept == yard).all()
    assert (moved & ~roof).sum() < 0.7 * (drawn & ~roof).sum()
    assert (roof & ~moved).sum() < 0.7 * (roof & ~drawn).sum()


def test_a_core_drawing_is_the_innermost_share_of_each_error_and_nothing_outside() -> None:
    """core:F (session 44): a patch of each error as large as a click's outlines, exact."""
    square = _square(20, 50, 10, 40)  # 900 px, its centre at (35, 25)
    ((core, cls),) = drawn_as([(square, 1)], "core:0.2", 0.25, 50)
    assert cls == 1 and not (core & ~square).any()
    assert 0.15 * 900 <= core.sum() <= 0.3 * 900
    assert core[34:36, 24:26].all() and not core[20].any() and not core[:, 10].any()
    ((default, _),) = drawn_as([(square, 1)], "core", 0.25, 50)
    assert (default == core).all()  # 0.2 unless told


def test_a_click_drawing_needs_the_image_it_grows_its_outlines_from() -> None:
    with pytest.raises(ValueError, match="pass image"):
        drawn_as([(_square(20, 50, 10, 40), 1)], "click", 0.25, 50)
