"""Regularised building outlines: right angles and parallel edges where nearly so, area
and position kept, from pixel staircases as a class map gives them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers_data import write_raster
from osgeo import gdal, ogr

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.vectors.regularize import Regularizer
from map_refiner.engine.vectors.vectorize import vectorize

RES = 0.5
SIZE = 120  # pixels a side: 60 m
GT = (500000.0, RES, 0.0, 4000060.0, 0.0, -RES)


def rotated(points: list[tuple[float, float]], degrees: float) -> ogr.Geometry:
    """A polygon of ``points`` (metres from the grid's corner) turned about (30, 30) m."""
    a = math.radians(degrees)
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in points + points[:1]:
        dx, dy = x - 30, y - 30
        ring.AddPoint_2D(
            GT[0] + 30 + dx * math.cos(a) - dy * math.sin(a),
            GT[3] - 60 + 30 + dx * math.sin(a) + dy * math.cos(a),
        )
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def burned(shapes: list[tuple[ogr.Geometry, int]]) -> np.ndarray:
    """The shapes burned onto the 0.5 m grid (a pixel is in when its centre is)."""
    ds = gdal.GetDriverByName("MEM").Create("", SIZE, SIZE, 1)
    ds.SetGeoTransform(GT)
    src = ogr.GetDriverByName("Memory").CreateDataSource("shapes")
    lyr = src.CreateLayer("shapes")
    lyr.CreateField(ogr.FieldDefn("c", ogr.OFTInteger))
    for geom, value in shapes:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("c", value)
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    gdal.RasterizeLayer(ds, [1], lyr, options=["ATTRIBUTE=c"])
    return ds.ReadAsArray().astype(np.uint8)


def staircase(geom: ogr.Geometry) -> ogr.Geometry:
    """The outline a class map gives of ``geom``: its burned pixels, polygonised."""
    ds = gdal.GetDriverByName("MEM").Create("", SIZE, SIZE, 1)
    ds.SetGeoTransform(GT)
    ds.GetRasterBand(1).WriteArray(burned([(geom, 1)]))
    out = ogr.GetDriverByName("Memory").CreateDataSource("out")
    lyr = out.CreateLayer("p")
    lyr.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    band = ds.GetRasterBand(1)
    gdal.Polygonize(band, band, lyr, 0)
    feat = lyr.GetNextFeature()  # kept while its geometry is cloned
    return feat.GetGeometryRef().Clone()


def iou(a: ogr.Geometry, b: ogr.Geometry) -> float:
    return a.Intersection(b).GetArea() / a.Union(b).GetArea()


def corner_angles(poly: ogr.Geometry) -> list[float]:
    """The exterior ring's corner angles in degrees (between consecutive edges)."""
    xy = np.array(poly.GetGeometryRef(0).GetPoints())[:-1, :2]
    edges = np.roll(xy, -1, axis=0) - xy
    out = []
    for a, b in zip(edges, np.roll(edges, -1, axis=0)):
        cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        out.append(math.degrees(math.acos(np.clip(cos, -1, 1))))
    return out


RECTANGLE = [(15.0, 20.0), (40.0, 20.0), (40.0, 32.0), (15.0, 32.0)]
L_SHAPE = [(12.0, 14.0), (44.0, 14.0), (44.0, 24.0), (26.0, 24.0), (26.0, 44.0), (12.0, 44.0)]


@pytest.mark.parametrize("shape, corners", [(RECTANGLE, 4), (L_SHAPE, 6)])
@pytest.mark.parametrize("degrees", [0.0, 17.0, 38.0])
def test_a_staircase_becomes_the_right_angled_outline(shape, corners, degrees) -> None:  # noqa: ANN001
    truth = rotated(shape, degrees)
    raw = staircase(truth)
    regular = Regularizer(1.0).polygon(raw)
    assert regular.IsValid()
    angles = corner_angles(regular)
    assert len(angles) == corners
    assert all(abs(a - 90.0) < 1e-6 for a in angles), angles  # turns of exactly 90 degrees
    assert iou(regular, truth) > 0.985 and iou(regular, truth) >= iou(raw, truth)
    assert regular.GetArea() == pytest.approx(truth.GetArea(), rel=0.02)
    c, t = regular.Centroid(), truth.Centroid()
    assert math.hypot(c.GetX() - t.GetX(), c.GetY() - t.GetY()) < 0.15  # under a third of a pixel


def test_an_edge_far_from_both_axes_is_kept() -> None:
    """A corner cut at 45 degrees stays cut: only edges within max_turn_deg are turned."""
    cut = [(12.0, 16.0), (36.0, 16.0), (46.0, 26.0), (46.0, 40.0), (12.0, 40.0)]
    truth = rotated(cut, 12.0)
    regular = Regularizer(1.0).polygon(staircase(truth))
    angles = sorted(corner_angles(regular))
    assert len(angles) == 5
    assert all(abs(a - 90.0) < 1e-6 for a in angles[2:])
    assert all(abs(a - 45.0) < 3.0 for a in angles[:2]), angles  # the cut, about 45 degrees
    assert iou(regular, truth) > 0.98


def test_every_edge_turns_the_cut_corner_too() -> None:
    """buildingregulariser's way: the 45-degree cut becomes a right-angled step."""
    cut = [(12.0, 16.0), (36.0, 16.0), (46.0, 26.0), (46.0, 40.0), (12.0, 40.0)]
    truth = rotated(cut, 12.0)
    regular = Regularizer(1.0, every_edge=True).polygon(staircase(truth))
    assert regular.IsValid()
    assert all(abs(a - 90.0) < 1e-6 for a in corner_angles(regular))
    assert iou(regular, truth) > 0.95


def test_a_round_outline_stays_close_and_valid() -> None:
    """Nothing right-angled about a disc: the outline may not follow, but it never drifts
    or comes out broken (an outline failing the overlap check falls back to simplified)."""
    disc = ogr.CreateGeometryFromWkt(f"POINT({GT[0] + 30} {GT[3] - 30})").Buffer(9.0, 16)
    raw = staircase(disc)
    regular = Regularizer(1.0).polygon(raw)
    assert regular.IsValid() and iou(regular, raw) >= 0.75
    assert regular.GetArea() == pytest.approx(raw.GetArea(), rel=0.15)


def test_a_hole_is_regularised_with_its_outline() -> None:
    outer = rotated(RECTANGLE, 20.0)
    inner = rotated([(22.0, 23.0), (32.0, 23.0), (32.0, 29.0), (22.0, 29.0)], 20.0)
    raw = staircase(outer.Difference(inner))
    regular = Regularizer(1.0).polygon(raw)
    assert regular.GetGeometryCount() == 2 and regular.IsValid()
    hole = ogr.Geometry(ogr.wkbPolygon)
    hole.AddGeometry(regular.GetGeometryRef(1))
    assert all(abs(a - 90.0) < 1e-6 for a in corner_angles(hole))
    assert iou(regular, outer.Difference(inner)) > 0.97


# -- in vectorize ---------------------------------------------------------------------


@pytest.fixture
def classmap(tmp_path: Path) -> Path:
    """A building (turned 17 degrees) and a road strip along the bottom."""
    road = ogr.CreateGeometryFromWkt(
        f"POLYGON(({GT[0]} {GT[3] - 60},{GT[0] + 60} {GT[3] - 60},{GT[0] + 60} {GT[3] - 55},"
        f"{GT[0]} {GT[3] - 55},{GT[0]} {GT[3] - 60}))"
    )
    classes = burned([(rotated(RECTANGLE, 17.0), 1), (road, 2)])
    path = write_raster(tmp_path / "classes.tif", classes, GT, 32633)
    ds = gdal.Open(str(path), 1)
    ds.GetRasterBand(1).SetCategoryNames(["background", "building", "road"])
    ds = None
    return path


def polygons(path: Path) -> dict[str, tuple[ogr.Geometry, float]]:
    ds = ogr.Open(str(path))
    return {
        f.GetField("class"): (f.GetGeometryRef().Clone(), f.GetField("area_m2"))
        for f in ds.GetLayer(0)
    }


def test_vectorize_regularises_only_the_classes_asked(classmap: Path, tmp_path: Path) -> None:
    raw = polygons(vectorize(classmap, tmp_path / "raw.gpkg", classes=["building", "road"]).path)
    out = vectorize(
        classmap, tmp_path / "reg.gpkg", classes=["building", "road"], regularize=["Building"]
    )
    reg = polygons(out.path)
    building, area = reg["building"]
    assert len(corner_angles(building)) == 4
    assert all(abs(a - 90.0) < 1e-6 for a in corner_angles(building))
    assert area == pytest.approx(building.GetArea()) == pytest.approx(300.0, rel=0.02)
    assert iou(building, rotated(RECTANGLE, 17.0)) > iou(
        raw["building"][0], rotated(RECTANGLE, 17.0)
    )
    assert reg["road"][0].Equals(raw["road"][0])  # the road's outline is the map's


def test_a_building_the_map_cuts_keeps_its_cut(tmp_path: Path) -> None:
    """A turned building running off the map's right edge: the cut stays on the edge
    (it is not a wall to turn), nothing leaves the map, and the walls meet at right
    angles."""
    building = rotated([(36.0, 18.0), (70.0, 18.0), (70.0, 34.0), (36.0, 34.0)], 14.0)
    classes = burned([(building, 1)])
    path = write_raster(tmp_path / "cut.tif", classes, GT, 32633)
    raw = polygons(vectorize(path, tmp_path / "raw.gpkg", classes=[1]).path)["class 1"][0]
    out = vectorize(path, tmp_path / "reg.gpkg", classes=[1], regularize=[1])
    regular = polygons(out.path)["class 1"][0]
    x0, x1, y0, y1 = regular.GetEnvelope()
    assert x1 == pytest.approx(GT[0] + 60.0, abs=1e-6)  # on the edge, not past it
    assert y0 >= GT[3] - 60.0 - 1e-6 and y1 <= GT[3] + 1e-6
    assert iou(regular, raw) > 0.97
    inside = building.Intersection(
        ogr.CreateGeometryFromWkt(
            f"POLYGON(({GT[0]} {GT[3] - 60},{GT[0] + 60} {GT[3] - 60},{GT[0] + 60} {GT[3]},"
            f"{GT[0]} {GT[3]},{GT[0]} {GT[3] - 60}))"
        )
    )
    assert iou(regular, inside) > iou(raw, inside)
    angles = sorted(corner_angles(regular))  # the walls' two corners, and the cut's 90 -/+ 14
    assert len(angles) == 4 and all(abs(a - 90.0) < 1e-6 for a in angles[1:3])
    assert angles[0] == pytest.approx(76.0, abs=1.0) and angles[3] == pytest.approx(104.0, abs=1.0)


def test_the_default_tolerance_grows_with_a_coarse_maps_pixels(tmp_path: Path) -> None:
    """On 2.5 m pixels a 1 m tolerance leaves the staircase (its steps are larger); the
    default, two pixels of such a map, straightens it."""
    fine = burned([(rotated([(10.0, 14.0), (50.0, 14.0), (50.0, 40.0), (10.0, 40.0)], 17.0), 1)])
    coarse = np.ascontiguousarray(fine[2::5, 2::5])  # the 0.5 m burn sampled every 2.5 m
    gt = (GT[0], 2.5, 0.0, GT[3], 0.0, -2.5)
    path = write_raster(tmp_path / "coarse.tif", coarse, gt, 32633)
    default = polygons(vectorize(path, tmp_path / "d.gpkg", classes=[1], regularize=[1]).path)
    one_m = vectorize(path, tmp_path / "o.gpkg", classes=[1], regularize=[1], regularize_m=1.0)
    assert len(corner_angles(default["class 1"][0])) == 4
    assert all(abs(a - 90.0) < 1e-6 for a in corner_angles(default["class 1"][0]))
    assert len(corner_angles(polygons(one_m.path)["class 1"][0])) > 10


def test_regularise_errors_and_the_cli(classmap: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from map_refiner.cli import main

    with pytest.raises(MapRefinerError, match="Unknown class 'roof'"):
        vectorize(classmap, tmp_path / "x.gpkg", regularize=["roof"])
    with pytest.raises(MapRefinerError, match="tolerance must be between 0 and"):
        vectorize(classmap, tmp_path / "x.gpkg", regularize=["building"], regularize_m=0)
    assert not (tmp_path / "x.gpkg").exists()
    out = tmp_path / "cli.gpkg"
    args = ["vectorize", str(classmap), "--out", str(out), "--classes", "building"]
    assert main([*args, "--regularize", "--regularize-tolerance", "0.8"]) == 0
    assert all(abs(a - 90.0) < 1e-6 for a in corner_angles(polygons(out)["building"][0]))
    assert main([*args, "--regularize", "--merge-small", "2", "--overwrite"]) == 0
    assert main([*args, "--regularize", "--regularize-every-edge", "--overwrite"]) == 0
    assert main([*args, "--regularize-every-edge", "--overwrite"]) == 2
    assert "say which classes (--regularize)" in capsys.readouterr().err
    assert main([*args, "--regularize", "roof", "--overwrite"]) == 2
    assert "Unknown class 'roof'" in capsys.readouterr().err
