"""`map-refiner snap-outlines` (training/corrections/snap_outlines.py): a correction layer's
object polygons moved onto the image's edges stretch by stretch, written as a new layer;
background polygons, fields and the input kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from helpers_data import srs_of, wkt_of, write_vector
from osgeo import gdal, ogr, osr

from map_refiner.cli import main
from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.training.corrections.snap_outlines import SNAPPED_FIELD, snap_outlines

gdal.UseExceptions()
PIXEL = 0.25
GT = (500000.0, PIXEL, 0.0, 4000000.0, 0.0, -PIXEL)
EPSG = 32614


def px_box(x0: float, y0: float, x1: float, y1: float) -> str:
    """A rectangle given in pixels of the test image, as WKT in its CRS."""
    a, b = GT[0] + x0 * PIXEL, GT[0] + x1 * PIXEL
    c, d = GT[3] - y1 * PIXEL, GT[3] - y0 * PIXEL
    return f"POLYGON (({a} {c}, {b} {c}, {b} {d}, {a} {d}, {a} {c}))"


ROOF = px_box(30, 30, 50, 50)


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    return write_roof_image(tmp_path / "img.tif")


def write_roof_image(path: Path) -> Path:
    """80 x 80 px of noisy ground at 0.25 m with a bright 5 x 5 m roof at 30..50."""
    rng = np.random.default_rng(0)
    img = rng.normal(90, 8, (3, 80, 80))
    img[:, 30:50, 30:50] += 70
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 80, 80, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    ds.SetProjection(wkt_of(EPSG))
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(np.clip(img[i], 0, 255).astype(np.uint8))
    ds = None
    return path


def layer(path: Path, features, epsg: int = EPSG) -> Path:
    return write_vector(
        path,
        features,
        epsg=epsg,
        fields={"class": ogr.OFTString, "note": ogr.OFTString},
    )


def read(path: Path) -> list[tuple[ogr.Geometry, dict]]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = [(f.GetGeometryRef().Clone(), f.items()) for f in lyr]
    ds = None
    return out


def iou(a: ogr.Geometry, b: ogr.Geometry) -> float:
    return a.Intersection(b).GetArea() / a.Union(b).GetArea()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_building_drawn_to_one_side_moves_onto_the_roof_and_background_stays(
    image: Path, tmp_path: Path
) -> None:
    """The roof drawn 3 px (0.75 m) east: the snapped outline lies closer to the roof; a
    background polygon on flat ground and every field stay as drawn; the input is
    untouched."""
    corr = layer(
        tmp_path / "corr.gpkg",
        [
            (px_box(33, 30, 53, 50), {"class": "building", "note": "roof A"}),
            (px_box(2, 2, 20, 20), {"class": "background", "note": "yard"}),
        ],
    )
    before = digest(corr)
    res = snap_outlines(image, corr, tmp_path / "snapped.gpkg")
    assert (res.features, res.snapped, res.kept) == (2, 1, 1)
    assert digest(corr) == before
    (moved, a), (yard, b) = read(tmp_path / "snapped.gpkg")
    roof = ogr.CreateGeometryFromWkt(ROOF)
    drawn = ogr.CreateGeometryFromWkt(px_box(33, 30, 53, 50))
    assert iou(moved, roof) > iou(drawn, roof) + 0.03
    wrong = drawn.Difference(roof).GetArea()
    assert moved.Difference(roof).GetArea() < 0.7 * wrong  # the strip east of the roof
    assert (a["class"], a["note"], a[SNAPPED_FIELD]) == ("building", "roof A", 1)
    assert (b["class"], b["note"], b[SNAPPED_FIELD]) == ("background", "yard", 0)
    assert yard.Equals(ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkt(px_box(2, 2, 20, 20))))
    assert "moved onto the image's edges" in res.message()


def test_an_outline_on_the_roofs_edge_stays_as_drawn(image: Path, tmp_path: Path) -> None:
    corr = layer(tmp_path / "corr.gpkg", [(ROOF, {"class": "building", "note": ""})])
    res = snap_outlines(image, corr, tmp_path / "snapped.gpkg")
    assert (res.snapped, res.kept) == (0, 1)
    ((geom, attrs),) = read(tmp_path / "snapped.gpkg")
    assert attrs[SNAPPED_FIELD] == 0 and iou(geom, ogr.CreateGeometryFromWkt(ROOF)) > 0.999


def test_a_layer_in_another_crs_comes_back_in_its_own(image: Path, tmp_path: Path) -> None:
    """Drawn in WGS84 over the UTM image: moved on the image's grid, written in WGS84."""
    to_wgs = osr.CoordinateTransformation(srs_of(EPSG), srs_of(4326))
    drawn = ogr.CreateGeometryFromWkt(px_box(33, 30, 53, 50))
    drawn.Transform(to_wgs)
    corr = layer(tmp_path / "corr.gpkg", [(drawn.ExportToWkt(), {"class": "building"})], 4326)
    res = snap_outlines(image, corr, tmp_path / "snapped.gpkg")
    assert res.snapped == 1
    ds = ogr.Open(str(tmp_path / "snapped.gpkg"))
    lyr = ds.GetLayer(0)
    assert lyr.GetSpatialRef().GetAuthorityCode(None) == "4326"
    feat = lyr.GetNextFeature()  # held: its geometry lives in it
    moved = feat.GetGeometryRef().Clone()
    feat = lyr = ds = None
    moved.Transform(osr.CoordinateTransformation(srs_of(4326), srs_of(EPSG)))
    roof = ogr.CreateGeometryFromWkt(ROOF)
    assert iou(moved, roof) > iou(ogr.CreateGeometryFromWkt(px_box(33, 30, 53, 50)), roof) + 0.03


def test_the_output_never_replaces_an_input_or_an_existing_file(
    image: Path, tmp_path: Path
) -> None:
    corr = layer(tmp_path / "corr.gpkg", [(px_box(33, 30, 53, 50), {"class": "building"})])
    with pytest.raises(MapRefinerError):
        snap_outlines(image, corr, corr, overwrite=True)
    snap_outlines(image, corr, tmp_path / "snapped.gpkg")
    with pytest.raises(MapRefinerError):
        snap_outlines(image, corr, tmp_path / "snapped.gpkg")
    with pytest.raises(MapRefinerError, match="no field"):
        snap_outlines(image, corr, tmp_path / "other.gpkg", class_field="kind")
    assert not (tmp_path / "other.gpkg").exists()


def test_the_cli_command(image: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corr = layer(
        tmp_path / "corr.gpkg",
        [(px_box(33, 30, 53, 50), {"class": "building"}), (px_box(2, 2, 20, 20), {"class": "bg"})],
    )
    out = tmp_path / "snapped.shp"
    rc = main(["snap-outlines", str(image), str(corr), "--out", str(out), "--keep", "bg"])
    assert rc == 0 and out.exists()
    assert "1 of 2 outline(s) moved" in capsys.readouterr().out


def test_progress_moves_and_a_cancel_leaves_no_file(image: Path, tmp_path: Path) -> None:
    corr = layer(
        tmp_path / "corr.gpkg",
        [(px_box(33, 30, 53, 50), {"class": "building"}), (px_box(2, 2, 20, 20), {"class": "x"})],
    )
    seen: list[float] = []
    snap_outlines(image, corr, tmp_path / "a.gpkg", progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    calls = iter([False, True])
    with pytest.raises(CancelledError):
        snap_outlines(image, corr, tmp_path / "b.gpkg", is_cancelled=lambda: next(calls))
    assert not (tmp_path / "b.gpkg").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
