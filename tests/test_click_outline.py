"""The study's click tool (dev/corrections/click_outline.py, session 44: measured, not
built into the product): a click inside an object gives its outline from the image,
inside its edges; look-alikes joined by a thin bridge, holes, fine imagery, objects
larger than the read and bad clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr

from map_refiner.dev.corrections.click_outline import (
    edge_tolerance,
    minimax_from,
    outline_at,
)
from map_refiner.engine.errors import MapRefinerError
from tests.helpers_engine import UTM33N, write_image

X0, Y0 = 500000.0, 4000000.0


def ground(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noisy grey-green ground, ``(3, h, w)`` floats."""
    rng = np.random.default_rng(seed)
    img = np.empty((3, h, w))
    for band, mean in enumerate((95, 110, 80)):
        img[band] = rng.normal(mean, 10, (h, w))
    return img


def roof(img: np.ndarray, rows: slice, cols: slice, colour=(200, 90, 70)) -> None:  # noqa: ANN001
    for band, value in enumerate(colour):
        img[band, rows, cols] = value + (img[band, rows, cols] - img[band].mean()) * 0.3


def save(tmp_path: Path, img: np.ndarray, pixel_m: float = 0.5, name: str = "s.tif") -> Path:
    path = tmp_path / name
    gt = (X0, pixel_m, 0.0, Y0, 0.0, -pixel_m)
    write_image(path, np.clip(img, 1, 255).astype(np.uint8), gt, UTM33N)
    return path


def at(col: float, row: float, pixel_m: float = 0.5) -> tuple[float, float]:
    return X0 + (col + 0.5) * pixel_m, Y0 - (row + 0.5) * pixel_m


def box(c0: float, r0: float, c1: float, r1: float, pixel_m: float = 0.5) -> ogr.Geometry:
    x0, y0 = X0 + c0 * pixel_m, Y0 - r1 * pixel_m
    x1, y1 = X0 + c1 * pixel_m, Y0 - r0 * pixel_m
    return ogr.CreateGeometryFromWkt(
        f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    )


def iou(wkt: str, other: ogr.Geometry) -> float:
    found = ogr.CreateGeometryFromWkt(wkt)
    return found.Intersection(other).GetArea() / found.Union(other).GetArea()


def test_a_click_inside_a_roof_gives_its_outline_just_inside_its_edges(tmp_path) -> None:  # noqa: ANN001
    img = ground(160, 160)
    roof(img, slice(50, 90), slice(60, 110))  # 20 x 25 m
    path = save(tmp_path, img)
    found = outline_at(path, *at(80, 65))
    the_roof = box(60, 50, 110, 90)
    assert iou(found.wkt, the_roof) > 0.9
    outline = ogr.CreateGeometryFromWkt(found.wkt)
    # inside the edges: at most a sliver outside the roof (the simplified staircase)
    assert outline.Difference(the_roof).GetArea() < 0.01 * the_roof.GetArea()
    assert found.area_m2 == pytest.approx(500, rel=0.1)
    assert not found.cut
    assert "UTM zone 33N" in found.srs_wkt
    assert found.describe().endswith("m²")


def test_a_look_alike_joined_by_a_one_pixel_bridge_is_left_out(tmp_path) -> None:  # noqa: ANN001
    img = ground(160, 160)
    roof(img, slice(40, 70), slice(30, 70))
    roof(img, slice(40, 70), slice(90, 130))  # the neighbour, the same colour
    roof(img, slice(55, 56), slice(70, 90))  # a one-pixel wire between them
    found = outline_at(save(tmp_path, img), *at(45, 50))
    assert iou(found.wkt, box(30, 40, 70, 70)) > 0.85
    outline = ogr.CreateGeometryFromWkt(found.wkt)
    assert outline.Intersection(box(90, 40, 130, 70)).GetArea() == 0


def test_a_roof_with_a_dark_spot_comes_back_without_a_hole(tmp_path) -> None:  # noqa: ANN001
    img = ground(120, 120)
    roof(img, slice(30, 80), slice(30, 80))
    img[:, 50:56, 50:56] = 20  # a chimney's shadow
    found = outline_at(save(tmp_path, img), *at(40, 40))
    outline = ogr.CreateGeometryFromWkt(found.wkt)
    assert outline.GetGeometryType() == ogr.wkbPolygon
    assert outline.GetGeometryCount() == 1  # the exterior ring only
    assert outline.Contains(box(50, 50, 56, 56))


def test_fine_imagery_is_worked_on_a_coarser_grid_and_still_outlined(tmp_path) -> None:  # noqa: ANN001
    pixel_m = 0.08  # a drone: 750 pixels cover the 60 m read
    img = ground(900, 900)
    roof(img, slice(300, 500), slice(350, 600))  # 16 x 20 m
    path = save(tmp_path, img, pixel_m)
    found = outline_at(path, *at(420, 380, pixel_m))
    assert iou(found.wkt, box(350, 300, 600, 500, pixel_m)) > 0.9
    assert not found.cut


def test_an_object_larger_than_the_read_is_cut_and_says_so(tmp_path) -> None:  # noqa: ANN001
    img = ground(400, 400)
    roof(img, slice(190, 210), slice(0, 400))  # 200 m long: past the 30 m read
    found = outline_at(save(tmp_path, img), *at(200, 200), reach_m=15.0)
    assert found.cut
    assert iou(found.wkt, box(170, 190, 230, 210)) > 0.8


def test_clicks_that_cannot_be_outlined_say_why(tmp_path) -> None:  # noqa: ANN001
    img = ground(60, 60)
    path = save(tmp_path, img)
    with pytest.raises(MapRefinerError, match="outside s.tif: click on the image"):
        outline_at(path, X0 - 10, Y0)
    with pytest.raises(MapRefinerError, match="has 3 band"):
        outline_at(path, *at(10, 10), bands=(1, 2, 4))
    holes = img.copy()
    holes[:, :10, :10] = 0  # no data (nothing declared: black in every band)
    write_image(tmp_path / "h.tif", holes.clip(0, 255).astype(np.uint8), epsg=UTM33N)
    with pytest.raises(MapRefinerError, match="no data where you clicked"):
        outline_at(tmp_path / "h.tif", 500000.0 + 2, 4000000.0 - 2)


def test_the_level_a_pixel_joins_at_is_the_highest_step_on_its_lowest_path() -> None:
    height = np.array(
        [
            [0.0, 5.0, 1.0],
            [1.0, 5.0, 1.0],
            [2.0, 3.0, 1.0],
        ],
        np.float32,
    )
    level = minimax_from(height, (0, 0))
    # (0, 2) is reached round the bottom: over 2 and 3, never over the 5s
    assert level.tolist() == [[0, 5, 3], [1, 5, 3], [2, 3, 3]]
    walled = height.copy()
    walled[2, 1] = np.inf  # no data
    walled[0, 1] = walled[1, 1] = np.inf
    assert np.isinf(minimax_from(walled, (0, 0))[:, 2]).all()


def test_the_tolerance_kept_puts_the_outline_on_the_strongest_edges() -> None:
    # a 10 x 10 square joins at levels up to 1, a ragged arm beside it at 2, the rest at 5;
    # the edges are strong round the square only: its level is kept, not the arm's
    minimax = np.full((40, 40), 5.0, np.float32)
    minimax[15:25, 15:25] = np.linspace(0.1, 1.0, 100).reshape(10, 10)
    minimax[19:21, 25:40] = 2.0  # an arm along a road of the roof's colour
    edges = np.zeros((40, 40), np.float32)
    edges[14:26, 14:26] = 1.0
    edges[15:25, 15:25] = 0.0  # inside the square: flat
    t = edge_tolerance(minimax, edges, 4, 800)
    assert 1.0 <= t < 2.0
