"""training/corrections/overdrawn.py: where a hand drew past an object's edge, the image's
edges say how far (FitParams.outline_edges), and an outline on its edge keeps every
pixel."""

from __future__ import annotations

import numpy as np
import pytest

from map_refiner.training.corrections.overdrawn import (
    DIRECTIONS,
    MIN_SIDE_M,
    colour_edges,
    edge_profile,
    facing,
    overdrawn,
    overdrawn_steps,
    side_rings,
)
from map_refiner.training.tile import IGNORE


def roof_image(seed: int = 0) -> np.ndarray:
    """A 60 x 60 noisy ground with a bright 20 x 20 roof at rows and columns 20..40."""
    rng = np.random.default_rng(seed)
    img = rng.normal(90, 8, (3, 60, 60))
    img[:, 20:40, 20:40] += 70
    return img.astype(np.float32)


def drawn(y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((60, 60), IGNORE, np.uint8)
    features = np.full((60, 60), -1, np.int32)
    labels[y0:y1, x0:x1], features[y0:y1, x0:x1] = 1, 0
    return labels, features


def reader(img: np.ndarray):
    return lambda y0, y1, x0, x1: img[:, y0:y1, x0:x1]


@pytest.mark.parametrize("over", [3, 5])
def test_an_outline_drawn_past_the_roof_gives_up_the_ring_outside_it(over: int) -> None:
    img = roof_image()
    labels, features = drawn(20 - over, 40 + over, 20 - over, 40 + over)
    out = overdrawn(labels, features, reader(img), pixel_m=0.25)  # reach 6 pixels
    want = np.zeros_like(out)
    want[20 - over : 40 + over, 20 - over : 40 + over] = True
    want[20:40, 20:40] = False
    assert (out == want).all()


@pytest.mark.parametrize(
    "box",
    [
        (20, 40, 20, 40),
        (19, 41, 19, 41),
        (18, 42, 18, 42),
        (22, 38, 22, 38),
        (24, 36, 21, 39),
        (10, 50, 10, 50),
    ],
)
def test_an_outline_on_the_edge_or_inside_it_keeps_every_pixel(box) -> None:
    """On the edge, a pixel or two off it (within the smoothed edge's reach: the outline
    counts as on an edge of its own, NO_EDGE), inside it, or further out than the search
    reaches (the default, whole-polygon rule)."""
    labels, features = drawn(*box)
    assert not overdrawn(labels, features, reader(roof_image()), pixel_m=0.25).any()


def test_an_outline_two_pixels_out_on_the_edges_flank_gives_up_part_of_its_ring() -> None:
    """Two pixels out, the outline stands out from the ground only as the smoothed
    edge's flank: the polygon as a whole keeps it (NO_EDGE), the opt-in stretch rule
    (no dip in a stretch's profile between the outline and the edge) gives up each
    stretch's strip, none of the roof."""
    labels, features = drawn(18, 42, 18, 42)
    img, roof = roof_image(), roof_mask()
    out = overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=MIN_SIDE_M)
    ring = (labels != IGNORE) & ~roof
    assert not (out & roof).any() and out.sum() >= 0.3 * ring.sum()
    assert not overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=0).any()


def test_no_edge_in_the_image_no_pixel_given_up() -> None:
    flat = np.random.default_rng(1).normal(90, 8, (3, 60, 60)).astype(np.float32)
    labels, features = drawn(17, 43, 17, 43)
    assert not overdrawn(labels, features, reader(flat), pixel_m=0.25).any()


def test_a_colour_edge_of_equal_brightness_counts() -> None:
    """A red roof on green ground of the same brightness: the bands' mean has no edge,
    each band has one."""
    img = np.zeros((3, 60, 60), np.float32) + np.random.default_rng(2).normal(0, 2, (3, 60, 60))
    img[0], img[1] = img[0] + 60, img[1] + 140
    img[0, 20:40, 20:40] += 80
    img[1, 20:40, 20:40] -= 80
    assert np.ptp(img.mean(0)[15:45, 15:45]) < 20
    labels, features = drawn(17, 43, 17, 43)
    out = overdrawn(labels, features, reader(img), pixel_m=0.25)
    assert out.sum() == 26 * 26 - 20 * 20 and not out[20:40, 20:40].any()


def test_the_profile_peaks_where_the_shrunk_outline_meets_the_edge() -> None:
    img = roof_image()
    labels, _ = drawn(17, 43, 17, 43)
    p = edge_profile(labels != IGNORE, colour_edges(img, 0.25), 5)
    assert p.shape == (11,) and int(np.nanargmax(p)) in (5 + 2, 5 + 3)
    assert overdrawn_steps(p) in (2, 3)
    flat = np.ones(11)
    assert overdrawn_steps(flat) == 0  # no step clearly stronger than the outline drawn
    assert overdrawn_steps(np.array([np.nan, 1.0, np.nan])) == 0
    # a stronger edge outside the outline than inside: the outline is inside the object
    assert overdrawn_steps(np.array([3.0, 1.0, 2.0])) == 0
    assert overdrawn_steps(np.array([1.0, 1.0, 2.0])) == 1
    assert overdrawn_steps(np.array([1.0, 1.0, 1.4])) == 0  # under EDGE_GAIN (1.5)
    # the outline drawn stands out from the ground outside it: an edge of its own
    assert overdrawn_steps(np.array([1.0, 1.0, 1.5, 4.0, 5.0])) == 0
    assert overdrawn_steps(np.array([1.0, 1.0, 1.5, 4.0, 5.0]), no_edge=0) == 2
    # ... unless it lies on the rising flank of the edge inside (no dip on the way in)
    assert overdrawn_steps(np.array([1.0, 1.0, 1.5, 4.0, 5.0]), flank=True) == 2
    assert overdrawn_steps(np.array([1.0, 1.0, 1.5, 1.2, 5.0]), flank=True) == 0


def test_two_polygons_are_judged_each_on_its_own() -> None:
    img = roof_image()
    labels = np.full((60, 60), IGNORE, np.uint8)
    features = np.full((60, 60), -1, np.int32)
    labels[17:43, 17:43], features[17:43, 17:43] = 1, 0  # 3 px past the roof
    labels[2:12, 2:12], features[2:12, 2:12] = 0, 1  # background far from any edge
    out = overdrawn(labels, features, reader(img), pixel_m=0.25)
    assert not out[:15, :15].any() and out[17:43, 17:43].sum() == 26 * 26 - 20 * 20


def test_a_background_polygon_outlines_no_object_and_is_kept_whole() -> None:
    """A false roof drawn as background three pixels past the roof: with the background
    class named (data.py passes the model's), its strongest edges inside may be anything,
    so it keeps every pixel; a building polygon drawn the same way does not."""
    img = roof_image()
    labels, features = drawn(17, 43, 17, 43)
    labels[labels == 1] = 0
    assert overdrawn(labels, features, reader(img), pixel_m=0.25).any()
    assert not overdrawn(labels, features, reader(img), pixel_m=0.25, ground=0).any()
    labels[labels == 0] = 1
    assert overdrawn(labels, features, reader(img), pixel_m=0.25, ground=0).any()


def roof_mask() -> np.ndarray:
    m = np.zeros((60, 60), bool)
    m[20:40, 20:40] = True
    return m


@pytest.mark.parametrize("move", [(0, 3), (3, 0), (-5, 0), (0, 5)])
def test_an_outline_drawn_to_one_side_gives_up_part_of_its_strip_there_and_nothing_else(
    move: tuple[int, int],
) -> None:
    """Moved 3 or 5 px off the roof: generous on one side, inside on the other. The
    polygon as a whole shows no clear edge inside (the default rule finds nothing); with
    the stretch rule the stretch on the generous side does, and gives up its strip (away
    from the corners, whose pixels face two ways), none of the roof."""
    dy, dx = move
    labels, features = drawn(20 + dy, 40 + dy, 20 + dx, 40 + dx)
    img, roof = roof_image(), roof_mask()
    strip = (labels != IGNORE) & ~roof
    out = overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=MIN_SIDE_M)
    assert not (out & roof).any() and not (out & ~strip).any()
    assert out.sum() >= 0.4 * strip.sum()
    assert not overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=0).any()


@pytest.mark.parametrize("move", [(-3, -3), (2, -4), (-3, 3)])
def test_an_outline_moved_off_a_corner_keeps_every_roof_pixel_stretch_by_stretch(
    move: tuple[int, int],
) -> None:
    """Moved diagonally: the polygon as a whole finds the roof's edge inside it and the
    default rule shrinks it all round, taking roof pixels on the tight sides (what the
    stretch rule is for); with the stretch rule the generous stretches give up only
    their own strips."""
    dy, dx = move
    labels, features = drawn(20 + dy, 40 + dy, 20 + dx, 40 + dx)
    img, roof = roof_image(), roof_mask()
    out = overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=MIN_SIDE_M)
    assert out.any() and not (out & roof).any()
    whole = overdrawn(labels, features, reader(img), pixel_m=0.25)
    assert (whole & roof).sum() > 50


def test_each_outline_pixel_faces_the_way_out_of_its_side() -> None:
    """A square's sides face right, left, down and up; its corners diagonally."""
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    f = facing(m, 2)
    assert (f[~m] == -1).all() and (f[8:22, 8:22] == -1).all()
    assert (f[10:20, 24] == DIRECTIONS.index((0, 1))).all()
    assert (f[10:20, 5] == DIRECTIONS.index((0, -1))).all()
    assert (f[24, 10:20] == DIRECTIONS.index((1, 0))).all()
    assert (f[5, 10:20] == DIRECTIONS.index((-1, 0))).all()
    assert f[24, 24] == DIRECTIONS.index((1, 1)) and f[5, 5] == DIRECTIONS.index((-1, -1))


def test_a_stretchs_rings_step_in_and_out_along_its_direction() -> None:
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    east = facing(m, 2) == DIRECTIONS.index((0, 1))
    rings = side_rings(m, (0, 1), 3, east)
    assert len(rings) == 7
    for k, col in zip(range(7), (27, 26, 25, 24, 23, 22, 21), strict=True):
        ys, xs = np.nonzero(rings[k])
        assert set(xs.tolist()) == {col} and set(ys.tolist()) == set(np.nonzero(east[:, 24])[0])


def test_a_stretch_that_meets_another_polygon_or_the_images_edge_is_not_judged() -> None:
    """The roof drawn 3 px too far east in two polygons split at column 32 (no outline
    was drawn along the split): only the east stretch gives up its strip; with the roof
    at the image's west edge, the stretch along that edge has no outside to compare."""
    img, roof = roof_image(), roof_mask()
    labels, features = drawn(20, 40, 20, 43)
    features[20:40, 20:32] = 1
    out = overdrawn(labels, features, reader(img), pixel_m=0.25, min_side_m=MIN_SIDE_M)
    assert not (out & roof).any() and out[:, 40:43].sum() >= 0.4 * 3 * 20
    cut = img[:, :, 20:]  # the roof now starts at the image's first column
    labels, features = drawn(20, 40, 0, 23)
    out = overdrawn(labels, features, reader(cut), pixel_m=0.25, min_side_m=MIN_SIDE_M)
    assert not out[:, :20].any() and out[:, 20:23].any()
