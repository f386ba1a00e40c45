"""A change picked on the changes raster becomes a polygon of the class it had
(engine/scoring/turn_back.py): the connected region only, 8-connected, with what it was
and became, and nothing where nothing changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr
from test_map_changes import GT, class_map

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.scoring.changes import map_changes
from map_refiner.engine.scoring.turn_back import (
    change_region_at,
    changes_in_area,
    changes_in_shape,
    largest_changes,
)


def _at(col: float, row: float, gt=GT) -> tuple[float, float]:  # noqa: ANN001
    """The map coordinates of a pixel's centre."""
    return gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]


@pytest.fixture
def changed(tmp_path: Path) -> tuple[Path, Path]:
    """A roof erased (rows 5-14, columns 5-24), two new buildings touching at a corner
    (8-connected, one region) and one apart; returns (changes raster, previous map)."""
    old = np.zeros((60, 80), np.uint8)
    old[5:15, 5:25] = 1
    new = old.copy()
    new[5:15, 5:25] = 0  # the erased roof: 200 px became background
    new[30:34, 40:44] = 1  # 16 px
    new[34:38, 44:48] = 1  # 16 px touching the other at a corner
    new[50:52, 70:72] = 1  # 4 px apart
    before = class_map(tmp_path / "old.tif", old)
    after = class_map(tmp_path / "new.tif", new)
    out = tmp_path / "changes.tif"
    map_changes(before, after, out)
    return out, before


def _pixels(region) -> int:  # noqa: ANN001
    return round(ogr.CreateGeometryFromWkt(region.wkt).GetArea() / (GT[1] * -GT[5]))


def test_an_erased_roof_turns_back_into_a_building(changed) -> None:  # noqa: ANN001
    changes, before = changed
    region = change_region_at(changes, before, *_at(10, 8))
    assert region is not None
    assert (region.was, region.became, region.pixels, region.cut) == (
        "building",
        "background",
        200,
        False,
    )
    assert region.area_m2 == pytest.approx(50.0, rel=1e-3)  # 0.25 m² pixels
    assert _pixels(region) == 200
    outline = ogr.CreateGeometryFromWkt(region.wkt)
    assert outline.GetEnvelope() == pytest.approx(
        (GT[0] + 5 * 0.5, GT[0] + 25 * 0.5, GT[3] - 15 * 0.5, GT[3] - 5 * 0.5)
    )
    assert "32631" in region.srs_wkt and region.describe() == "50 m² that became background"


def test_a_region_is_8_connected_and_only_itself(changed) -> None:  # noqa: ANN001
    changes, before = changed
    region = change_region_at(changes, before, *_at(46, 36))  # the second square
    assert (region.was, region.became, region.pixels) == ("background", "building", 32)
    outline = ogr.CreateGeometryFromWkt(region.wkt)  # two squares meeting at a corner
    assert outline.IsValid() and outline.GetArea() == pytest.approx(32 * 0.25)
    alone = change_region_at(changes, before, *_at(70, 50))
    assert alone.pixels == 4


def test_nothing_where_nothing_changed_or_off_the_raster(changed) -> None:  # noqa: ANN001
    changes, before = changed
    assert change_region_at(changes, before, *_at(60, 10)) is None  # unchanged background
    assert change_region_at(changes, before, *_at(-3, 10)) is None
    assert change_region_at(changes, before, *_at(10, 500)) is None


def test_a_region_larger_than_the_window_is_said_to_be_cut(changed) -> None:  # noqa: ANN001
    changes, before = changed
    region = change_region_at(changes, before, *_at(10, 8), reach_px=3)
    assert region.cut and region.pixels == 49  # 7 x 7 around the pick
    whole = change_region_at(changes, before, *_at(10, 8), reach_px=30)
    assert not whole.cut and whole.pixels == 200


def test_a_previous_map_without_class_names_is_refused(changed, tmp_path) -> None:  # noqa: ANN001
    changes, before = changed
    plain = tmp_path / "plain.tif"
    gdal.Translate(str(plain), str(before))
    ds = gdal.Open(str(plain), gdal.GA_Update)
    ds.GetRasterBand(1).SetCategoryNames([])
    ds = None
    for aux in tmp_path.glob("plain.tif.aux.xml"):
        aux.unlink()
    with pytest.raises(MapRefinerError, match="does not name its classes"):
        change_region_at(changes, plain, *_at(10, 8))


def _edge(col: float, row: float) -> tuple[float, float]:
    """The map coordinates of a pixel's upper-left corner."""
    return GT[0] + col * GT[1], GT[3] + row * GT[5]


def test_a_rectangle_turns_back_every_change_in_it_one_polygon_per_class(changed) -> None:  # noqa: ANN001
    """Session 41: the whole picture at once. A rectangle over everything: the erased
    roof back to building (200 px), the three new buildings back to background (36 px);
    one (multi)polygon for each class they had."""
    changes, before = changed
    (xa, ya), (xb, yb) = _edge(0, 60), _edge(80, 0)
    found = changes_in_area(changes, before, xa, ya, xb, yb)
    assert found is not None
    assert found.pixels_by_class == {"background": 36, "building": 200}
    assert found.pieces == 4  # 4-connected: the two squares touching at a corner are two
    roof = ogr.CreateGeometryFromWkt(found.wkt_by_class["building"])
    assert roof.GetArea() == pytest.approx(200 * 0.25)
    new = ogr.CreateGeometryFromWkt(found.wkt_by_class["background"])
    assert new.GetArea() == pytest.approx(36 * 0.25)
    # three parts meeting at a corner at most: a valid multipolygon
    assert new.GetGeometryCount() == 3 and new.IsValid()
    assert roof.IsValid()
    assert "32631" in found.srs_wkt
    assert found.describe() == "9.0 m² back to background, 50 m² back to building"


def test_a_rectangle_cuts_changes_at_its_sides(changed) -> None:  # noqa: ANN001
    """Only pixels whose centre lies inside: half the roof (columns 5-14 of 5-24), none
    of the buildings; a rectangle drawn from any corner is the same."""
    changes, before = changed
    (xa, ya), (xb, yb) = _edge(0, 20), _edge(15, 0)
    found = changes_in_area(changes, before, xb, yb, xa, ya)  # corners swapped
    assert found is not None and found.pixels_by_class == {"building": 100}
    roof = ogr.CreateGeometryFromWkt(found.wkt_by_class["building"])
    assert roof.GetEnvelope() == pytest.approx(
        (GT[0] + 5 * 0.5, GT[0] + 15 * 0.5, GT[3] - 15 * 0.5, GT[3] - 5 * 0.5)
    )


def test_an_outline_turns_back_only_the_part_of_a_change_inside_it(changed) -> None:  # noqa: ANN001
    """A freehand outline around the wrong part of a change: the changed pixels whose
    centre lies inside it, cut at the outline (a triangle over the erased roof's left end:
    rows 5-14, columns 5-24), nothing of the changes outside."""
    changes, before = changed
    corners = [_edge(0, 0), _edge(20.25, 0), _edge(0, 20.25), _edge(0, 0)]  # x + y <= 20.25
    wkt = "POLYGON ((" + ",".join(f"{x} {y}" for x, y in corners) + "))"
    found = changes_in_shape(changes, before, wkt)
    # roof pixels (col, row) whose centre (col + 0.5, row + 0.5) lies under the hypotenuse
    expected = sum(1 for c in range(5, 25) for r in range(5, 15) if c + r + 1 < 20.25)
    assert found is not None and found.pixels_by_class == {"building": expected}
    assert 0 < expected < 200
    outline = ogr.CreateGeometryFromWkt(found.wkt_by_class["building"])
    assert outline.IsValid() and outline.GetArea() == pytest.approx(expected * 0.25)
    # a shape with no area, or around nothing that changed, turns nothing back
    assert changes_in_shape(changes, before, "POLYGON ((0 0,1 1,0 0))") is None
    far = [_edge(60, 5), _edge(70, 5), _edge(70, 15), _edge(60, 15), _edge(60, 5)]
    assert (
        changes_in_shape(
            changes, before, "POLYGON ((" + ",".join(f"{x} {y}" for x, y in far) + "))"
        )
        is None
    )


def test_a_rectangle_with_no_change_or_off_the_raster_turns_nothing_back(changed) -> None:  # noqa: ANN001
    changes, before = changed
    (xa, ya), (xb, yb) = _edge(50, 20), _edge(80, 0)  # unchanged background
    assert changes_in_area(changes, before, xa, ya, xb, yb) is None
    (xa, ya), (xb, yb) = _edge(-50, 20), _edge(-10, 0)  # beside the raster
    assert changes_in_area(changes, before, xa, ya, xb, yb) is None


def test_a_rectangle_too_large_to_read_says_what_to_do(changed) -> None:  # noqa: ANN001
    changes, before = changed
    (xa, ya), (xb, yb) = _edge(0, 60), _edge(80, 0)
    with pytest.raises(MapRefinerError, match=r"covers 80 x 60 pixels .* at most about 40 x 40"):
        changes_in_area(changes, before, xa, ya, xb, yb, max_px=1600)


def test_the_largest_changes_come_first_each_what_a_click_turns_back(changed) -> None:  # noqa: ANN001
    changes, before = changed
    found = largest_changes(changes, before)
    # the 4 px change lies under the 16 px a listed change needs
    assert [(r.was, r.became, r.pixels, r.cut) for r in found] == [
        ("building", "background", 200, False),
        ("background", "building", 32, False),
    ]
    for region in found:  # the same polygon as a click on it
        at = ogr.CreateGeometryFromWkt(region.wkt).PointOnSurface()
        clicked = change_region_at(changes, before, at.GetX(), at.GetY())
        assert ogr.CreateGeometryFromWkt(region.wkt).Equals(ogr.CreateGeometryFromWkt(clicked.wkt))
        assert ogr.CreateGeometryFromWkt(region.wkt).IsValid()
    assert [r.pixels for r in largest_changes(changes, before, top=1)] == [200]
    assert [r.pixels for r in largest_changes(changes, before, min_pixels=1)] == [200, 32, 4]
    assert largest_changes(changes, before, min_pixels=500) == []


def test_changes_across_a_tile_side_are_listed_as_cut_parts(changed) -> None:  # noqa: ANN001
    changes, before = changed
    # tiles of 16 px: the roof (columns 5-24) is cut at column 16 into 11 and 9 columns
    found = largest_changes(changes, before, tile_px=16, min_pixels=1)
    roof = [r for r in found if r.became == "background"]
    assert sorted(r.pixels for r in roof) == [90, 110] and all(r.cut for r in roof)
    alone = [r for r in found if r.pixels == 4]
    assert len(alone) == 1 and not alone[0].cut
    assert sum(r.pixels for r in found) == 200 + 32 + 4


def test_no_change_lists_nothing_and_a_cancel_stops_the_search(tmp_path) -> None:  # noqa: ANN001
    from map_refiner.engine.errors import CancelledError

    old = np.zeros((40, 40), np.uint8)
    old[5:15, 5:15] = 1
    before = class_map(tmp_path / "old.tif", old)
    new = old.copy()
    new[20:30, 20:30] = 1
    after = class_map(tmp_path / "new.tif", new)
    out = tmp_path / "changes.tif"
    map_changes(before, after, out)
    same = tmp_path / "same.tif"
    map_changes(before, class_map(tmp_path / "copy.tif", old), same)
    assert largest_changes(same, before) == []
    with pytest.raises(CancelledError):
        largest_changes(out, before, is_cancelled=lambda: True)


def test_dropping_specks_first_lists_the_same_changes(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The sieve that drops groups of changes under the smallest listed size before the
    polygons are made (fast on a noisy round) changes nothing in the list."""
    from map_refiner.engine.scoring import turn_back

    rng = np.random.default_rng(3)
    old = (rng.random((160, 160)) < 0.3).astype(np.uint8)
    new = np.where(rng.random((160, 160)) < 0.25, 1 - old, old)
    new[20:40, 30:60] = 1 - old[20:40, 30:60]  # and a few large changes among the noise
    new[100:130, 90:100] = 1
    before = class_map(tmp_path / "old.tif", old)
    out = tmp_path / "changes.tif"
    map_changes(before, class_map(tmp_path / "new.tif", new), out)
    for min_pixels in (4, 16):
        sieved = largest_changes(out, before, top=100, min_pixels=min_pixels)
        with monkeypatch.context() as m:
            m.setattr(turn_back, "_without_specks", lambda code, _min: code)
            plain = largest_changes(out, before, top=100, min_pixels=min_pixels)
        assert sieved == plain and len(plain) > 2


def test_changes_between_three_classes_say_what_each_was_and_became(tmp_path) -> None:  # noqa: ANN001
    """A three-class map (LoveDA's kind): each listed change names its own pair of
    classes, and a change of one pair next to one of another is listed apart."""
    names = ["background", "building", "water"]
    old = np.zeros((40, 40), np.uint8)
    old[5:15, 5:15] = 1  # a building ...
    new = old.copy()
    new[5:15, 5:10] = 2  # ... half of it became water (50 px)
    new[5:15, 10:15] = 0  # ... the other half background (50 px), touching it
    new[25:35, 25:35] = 2  # background became water (100 px)
    before = class_map(tmp_path / "old.tif", old, names=names)
    out = tmp_path / "changes.tif"
    map_changes(before, class_map(tmp_path / "new.tif", new, names=names), out)
    found = largest_changes(out, before)
    assert [(r.was, r.became, r.pixels) for r in found] == [
        ("background", "water", 100),
        ("building", "water", 50),
        ("building", "background", 50),
    ]
