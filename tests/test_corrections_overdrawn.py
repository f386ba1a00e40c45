"""training/corrections/overdrawn.py: where a hand drew past an object's edge, the image's
edges say how far (FitParams.outline_edges), and an outline on its edge keeps every
pixel."""

from __future__ import annotations

import numpy as np
import pytest

from map_refiner.training.corrections.overdrawn import (
    colour_edges,
    edge_profile,
    overdrawn,
    overdrawn_steps,
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
    reaches."""
    labels, features = drawn(*box)
    assert not overdrawn(labels, features, reader(roof_image()), pixel_m=0.25).any()


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
