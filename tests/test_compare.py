"""``compare``: a change list between a map the user has (vector) and the refined map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.vectors.compare import CompareParams, compare

gdal.UseExceptions()
X0, Y0, RES = 500000.0, 4000000.0, 0.5


def write_classmap(path: Path, classes: np.ndarray, epsg: int = 32633) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), classes.shape[1], classes.shape[0], 1)
    ds.SetGeoTransform((X0, RES, 0.0, Y0, 0.0, -RES))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.WriteArray(classes)
    band.SetNoDataValue(255)
    band.SetCategoryNames(["background", "building"])
    ds = None
    return path


def box(r0: int, c0: int, r1: int, c1: int, dx_m: float = 0.0, dy_m: float = 0.0) -> str:
    """Rows/columns of the class map as a polygon in metres, moved by dx/dy."""
    x0, x1 = X0 + c0 * RES + dx_m, X0 + c1 * RES + dx_m
    y0, y1 = Y0 - r1 * RES + dy_m, Y0 - r0 * RES + dy_m
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def write_prior(
    path: Path, wkts: list[tuple[str, str]], epsg: int = 32633, layer: str = "osm"
) -> Path:
    """A GeoPackage layer of the polygons; a file that exists gets one more layer."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if path.exists():
        ds = ogr.Open(str(path), 1)
    else:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("kind", ogr.OFTString))
    src = osr.SpatialReference()
    src.ImportFromEPSG(32633)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = None if epsg == 32633 else osr.CoordinateTransformation(src, srs)
    for wkt, kind in wkts:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("kind", kind)
        geom = ogr.CreateGeometryFromWkt(wkt)
        if ct is not None:
            geom.Transform(ct)
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    ds = None
    return path


@pytest.fixture
def scene(tmp_path: Path) -> dict:
    cls = np.zeros((200, 200), np.uint8)
    cls[20:40, 20:40] = 1  # A: the prior has it in place
    cls[100:120, 30:50] = 1  # B: the prior has it 3 m to the west
    cls[20:80, 120:180] = 1  # C: the prior has a thin strip across it
    cls[150:170, 150:170] = 1  # D: not in the prior
    cls[190:192, 10:12] = 1  # a 1 m2 speck: never a "new" object
    prior = [
        (box(20, 20, 40, 40), "building"),
        (box(100, 30, 120, 50, dx_m=-3.0), "building"),
        (box(150, 40, 170, 60), "building"),  # nothing there in the image
        (box(45, 100, 55, 190), "building"),  # a strip across C and beyond
        (box(20, 20, 40, 40), "road"),  # another class: not compared
        (box(300, 300, 340, 340), "building"),  # off the map: not compared
    ]
    return {
        "map": write_classmap(tmp_path / "refined.tif", cls),
        "prior": write_prior(tmp_path / "osm.gpkg", prior),
        "prior_4326": write_prior(tmp_path / "osm_4326.gpkg", prior, epsg=4326),
    }


def flags(path: Path) -> list[dict]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    return [
        {
            "status": f.GetField("status"),
            "fid": f.GetField("prior_fid"),
            "shift": f.GetField("shift_m"),
            "dx": f.GetField("dx_m"),
            "area": f.GetField("area_m2"),
        }
        for f in lyr
    ]


def test_each_prior_feature_gets_a_status_and_new_objects_are_listed(
    scene: dict, tmp_path: Path
) -> None:
    out = tmp_path / "flags.gpkg"
    res = compare(scene["prior"], scene["map"], out, CompareParams(prior_class_field="kind"))
    got = {f["fid"]: f for f in flags(out) if f["fid"] is not None}
    assert got[1]["status"] == "kept" and got[1]["shift"] < 0.1
    assert got[2]["status"] == "moved"
    assert got[2]["shift"] == pytest.approx(3.0, abs=0.1) and got[2]["dx"] > 0  # east, onto B
    assert got[3]["status"] == "not seen"
    assert got[4]["status"] == "reshaped"
    assert 5 not in got  # a road, not a building
    assert 6 not in got  # not on the map at all
    new = [f for f in flags(out) if f["status"] == "new"]
    assert len(new) == 1 and new[0]["area"] == pytest.approx(100.0)  # D; the speck is not
    assert res.counts == {"kept": 1, "moved": 1, "reshaped": 1, "not seen": 1, "new": 1}
    assert res.summary() == "1 kept, 1 moved, 1 reshaped, 1 not seen, 1 new"


def test_without_a_class_field_every_feature_is_compared(scene: dict, tmp_path: Path) -> None:
    out = tmp_path / "flags.shp"
    res = compare(scene["prior"], scene["map"], out)
    assert res.counts["kept"] == 2  # the road polygon lies on A too
    assert out.exists() and out.with_suffix(".dbf").exists()


def test_a_prior_in_another_crs_gives_the_same_flags(scene: dict, tmp_path: Path) -> None:
    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    compare(scene["prior"], scene["map"], a, CompareParams(prior_class_field="kind"))
    compare(scene["prior_4326"], scene["map"], b, CompareParams(prior_class_field="kind"))
    assert [f["status"] for f in flags(a)] == [f["status"] for f in flags(b)]


def test_bad_inputs_are_one_clear_error_and_write_nothing(scene: dict, tmp_path: Path) -> None:
    out = tmp_path / "flags.gpkg"
    with pytest.raises(MapRefinerError, match="no field 'class'"):
        compare(scene["prior"], scene["map"], out, CompareParams(prior_class_field="class"))
    with pytest.raises(MapRefinerError, match="Unknown class 'tree'"):
        compare(scene["prior"], scene["map"], out, CompareParams(class_name="tree"))
    with pytest.raises(MapRefinerError, match="kept_iou"):
        compare(scene["prior"], scene["map"], out, CompareParams(kept_iou=0))
    with pytest.raises(MapRefinerError, match="is a polygon of class"):
        compare(
            scene["prior"],
            scene["map"],
            out,
            CompareParams(prior_class_field="kind", prior_value_map={"water": 1}),
        )
    assert not out.exists()
    compare(scene["prior"], scene["map"], out)
    with pytest.raises(MapRefinerError, match="exists"):
        compare(scene["prior"], scene["map"], out)  # never replaced without overwrite


def test_the_cli_writes_the_flags_and_says_what_it_found(
    scene: dict, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    from map_refiner.cli import main

    out = tmp_path / "flags.gpkg"
    args = [str(scene["prior"]), str(scene["map"]), "--out", str(out)]
    assert main(["compare", *args, "--prior-class-field", "kind"]) == 0
    assert "1 kept, 1 moved, 1 reshaped, 1 not seen, 1 new" in capsys.readouterr().out
    assert main(["compare", *args, "--moved", "-1"]) == 2  # a bad number: one line
    assert "--moved" in capsys.readouterr().err


def test_a_prior_of_several_layers_is_compared_by_the_named_one(
    scene: dict, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    """A GeoPackage whose first layer is something else (roads): without a layer, one
    line listing the layers; with --prior-layer, the flags of the named layer alone."""
    from map_refiner.cli import main

    two = tmp_path / "two.gpkg"
    write_prior(two, [(box(0, 0, 10, 200), "road")], layer="roads")
    ds = ogr.Open(str(scene["prior"]))
    wkts = [(f.GetGeometryRef().ExportToWkt(), f.GetField("kind")) for f in ds.GetLayer(0)]
    ds = None
    write_prior(two, wkts, layer="buildings")
    out = tmp_path / "flags.gpkg"
    with pytest.raises(MapRefinerError, match=r"several layers \(roads, buildings\); choose one"):
        compare(two, scene["map"], out)
    with pytest.raises(MapRefinerError, match="no layer 'osm'; choose one of: roads, buildings"):
        compare(two, scene["map"], out, CompareParams(prior_layer="osm"))
    assert not out.exists()
    args = [str(two), str(scene["map"]), "--out", str(out), "--prior-class-field", "kind"]
    assert main(["compare", *args]) == 2
    assert "--prior-layer" in capsys.readouterr().err
    assert main(["compare", *args, "--prior-layer", "buildings"]) == 0
    assert "1 kept, 1 moved, 1 reshaped, 1 not seen, 1 new" in capsys.readouterr().out


def test_a_class_map_whose_names_are_padded_compares(scene: dict, tmp_path: Path) -> None:
    """A refine's class map carries 256 category names ("" past the model's classes)."""
    ds = gdal.Open(str(scene["map"]), 1)
    ds.GetRasterBand(1).SetCategoryNames(["background", "building"] + [""] * 254)
    ds = None
    res = compare(
        scene["prior"], scene["map"], tmp_path / "f.gpkg", CompareParams("building", "kind")
    )
    assert res.counts["kept"] == 1


def test_touching_features_one_object_stands_for_are_judged_together(tmp_path: Path) -> None:
    """Terraced houses: three prior polygons sharing walls, which the refined map (no
    pixel between them) joins into one object. In place they are each kept, shifted
    together each moved by the row's shift, with group_size 3; a fourth house of the
    row that the image does not show is not seen, and a lone house stays judged alone."""
    cls = np.zeros((200, 200), np.uint8)
    cls[20:40, 20:80] = 1  # the row of three houses, 20 x 20 px each
    cls[100:120, 40:100] = 1  # the same row elsewhere, the prior 2.5 m west of it
    cls[150:170, 150:170] = 1  # a lone house
    prior = [(box(20, 20 + 20 * i, 40, 40 + 20 * i), "building") for i in range(3)]
    prior += [(box(20, 80, 40, 100), "building")]  # the row's fourth house: not there
    prior += [(box(100, 40 + 20 * i, 120, 60 + 20 * i, dx_m=-2.5), "building") for i in range(3)]
    prior += [(box(150, 150, 170, 170), "building")]
    out = tmp_path / "flags.gpkg"
    res = compare(
        write_prior(tmp_path / "osm.gpkg", prior), write_classmap(tmp_path / "r.tif", cls), out
    )
    got = {f["fid"]: f for f in flags(out) if f["fid"] is not None}
    ds = ogr.Open(str(out))  # held while its layer is read
    groups = {f.GetField("prior_fid"): f.GetField("group_size") for f in ds.GetLayer(0)}
    ds = None
    for fid in (1, 2, 3):
        assert got[fid]["status"] == "kept" and groups[fid] == 3, got[fid]
    assert got[4]["status"] == "not seen"
    for fid in (5, 6, 7):
        assert got[fid]["status"] == "moved" and groups[fid] == 3, got[fid]
        assert got[fid]["shift"] == pytest.approx(2.5, abs=0.1) and got[fid]["dx"] > 0
    assert got[8]["status"] == "kept" and groups[8] == 1
    assert res.counts == {"kept": 4, "moved": 3, "reshaped": 0, "not seen": 1, "new": 0}
