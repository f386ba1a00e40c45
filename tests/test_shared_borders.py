"""Simplification that keeps shared borders: neighbouring classes still meet exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_data import real_data, write_raster
from osgeo import gdal, ogr

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.vectors.vectorize import vectorize

NAMES = ["background", "building", "road", "water"]
GT = (500000.0, 0.5, 0.0, 4000040.0, 0.0, -0.5)  # 80 x 80 pixels of 0.5 m


@pytest.fixture
def classmap(tmp_path: Path) -> Path:
    """Staircase borders everywhere: water below a slanted shore, a road across at another
    slope, a turned building touching the road, a nodata corner."""
    rows, cols = np.mgrid[0:80, 0:80]
    classes = np.zeros((80, 80), np.uint8)
    classes[rows > 50 + 0.3 * cols] = 3
    classes[np.abs(rows - (12 + 0.6 * cols)) < 6] = 2
    u, v = (cols - 50) * 0.9 + (rows - 33) * 0.4, (rows - 33) * 0.9 - (cols - 50) * 0.4
    classes[(np.abs(u) < 12) & (np.abs(v) < 7)] = 1
    classes[:6, 74:] = 255
    path = write_raster(tmp_path / "classes.tif", classes, GT, 32633, nodata=255)
    ds = gdal.Open(str(path), 1)
    ds.GetRasterBand(1).SetCategoryNames(NAMES)
    ds = None
    return path


def outlines(path: Path) -> list[tuple[str, ogr.Geometry]]:
    ds = ogr.Open(str(path))
    return [(f.GetField("class"), f.GetGeometryRef().Clone()) for f in ds.GetLayer(0)]


def vertices(polys: list[tuple[str, ogr.Geometry]]) -> int:
    return sum(
        g.GetGeometryRef(r).GetPointCount() for _, g in polys for r in range(g.GetGeometryCount())
    )


def shared_length(a: ogr.Geometry, b: ogr.Geometry) -> float:
    return a.Boundary().Intersection(b.Boundary()).Length()


def coverage(polys: list[tuple[str, ogr.Geometry]]) -> tuple[float, float]:
    """The polygons' summed area and the area of their union."""
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for _, geom in polys:
        union.AddGeometry(geom)
    return sum(g.GetArea() for _, g in polys), union.UnionCascaded().GetArea()


def test_neighbours_meet_exactly_after_simplifying(classmap: Path, tmp_path: Path) -> None:
    valid = (80 * 80 - 6 * 6) * 0.25
    raw = outlines(vectorize(classmap, tmp_path / "raw.gpkg").path)
    assert coverage(raw) == pytest.approx((valid, valid))
    alone = outlines(vectorize(classmap, tmp_path / "alone.gpkg", simplify_m=1.0).path)
    total, union = coverage(alone)
    assert abs(total - union) > 1.0 or abs(union - valid) > 1.0  # overlaps or gaps
    shared = outlines(
        vectorize(classmap, tmp_path / "shared.gpkg", simplify_m=1.0, shared_borders=True).path
    )
    assert sorted(c for c, _ in shared) == sorted(c for c, _ in raw)
    assert coverage(shared) == pytest.approx((valid, valid), abs=1e-6)  # no gap, no overlap
    assert all(g.IsValid() for _, g in shared)
    assert vertices(shared) < vertices(raw) / 3
    for (_, a), (_, b) in zip(sorted(shared, key=lambda p: p[0]), sorted(raw, key=lambda p: p[0])):
        assert a.Intersection(b).GetArea() / a.Union(b).GetArea() > 0.9  # still its region


def test_rio_buildings_and_background_tile_the_map_after_simplifying(tmp_path: Path) -> None:
    """Real staircases: Rio's 266 manual building footprints (0.5 m) and the background
    around them, simplified at 1 and 2 m: every polygon valid, and together they cover
    the map exactly once (borders that two simplified lines would have crossed or
    doubled are kept as they were)."""
    mask = gdal.Open(str(real_data("rio_wv2", "rio_buildings_mask.tif")))
    classes = (mask.ReadAsArray() > 0).astype(np.uint8)
    path = write_raster(tmp_path / "rio.tif", classes, mask.GetGeoTransform(), 32723)
    valid = classes.size * 0.25
    raw = outlines(vectorize(path, tmp_path / "raw.gpkg").path)
    for tolerance in (1.0, 2.0):
        out = tmp_path / f"shared_{tolerance:g}.gpkg"
        shared = outlines(vectorize(path, out, simplify_m=tolerance, shared_borders=True).path)
        assert len(shared) == len(raw) and all(g.IsValid() for _, g in shared)
        assert coverage(shared) == pytest.approx((valid, valid), abs=1e-3)
        assert vertices(shared) < vertices(raw) / 2


def test_only_some_classes_still_share_their_borders(classmap: Path, tmp_path: Path) -> None:
    kept = ["building", "road"]
    raw = dict(outlines(vectorize(classmap, tmp_path / "r.gpkg", classes=kept).path))
    assert shared_length(raw["building"], raw["road"]) > 5  # a long shared border
    shared = outlines(
        vectorize(
            classmap, tmp_path / "s.gpkg", classes=kept, simplify_m=1.5, shared_borders=True
        ).path
    )
    building = [g for c, g in shared if c == "building"][0]
    road = [g for c, g in shared if c == "road"][0]
    assert building.Intersection(road).GetArea() < 1e-6  # touching, not overlapping
    assert shared_length(building, road) > 5  # along one line


def test_shared_borders_need_a_plain_simplification(classmap: Path, tmp_path: Path) -> None:
    with pytest.raises(MapRefinerError, match="Shared borders are for --simplify alone"):
        vectorize(classmap, tmp_path / "x.gpkg", shared_borders=True)
    with pytest.raises(MapRefinerError, match="Shared borders"):
        vectorize(
            classmap,
            tmp_path / "x.gpkg",
            simplify_m=1.0,
            shared_borders=True,
            regularize=["building"],
        )
    assert not (tmp_path / "x.gpkg").exists()
