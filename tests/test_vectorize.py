"""Class map to polygons: regions, areas in square metres, formats, atomic output, cancel."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers_data import srs_of, wgs84_metres_per_degree, write_raster
from osgeo import gdal, ogr

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.rasters.write import style_class_band
from map_refiner.engine.vectors import vectorize as vectorize_module
from map_refiner.engine.vectors.vectorize import vectorize

NAMES = ["background", "building", "road"]
GT = (500000.0, 2.0, 0.0, 4000024.0, 0.0, -2.0)  # 12 x 12 pixels of 2 m in UTM 33N


def class_map() -> np.ndarray:
    """Background 0 with: a 3 x 4 building, two diagonal building pixels, a road row and,
    below it, half a row of nodata (255) and half a row of background."""
    a = np.zeros((12, 12), np.uint8)
    a[1:4, 1:5] = 1
    a[6, 6] = a[7, 7] = 1
    a[10, :] = 2
    a[11, :6] = 255
    return a


@pytest.fixture
def classmap(tmp_path) -> Path:
    return write_raster(tmp_path / "classes.tif", class_map(), GT, 32633, nodata=255)


def read_back(path: Path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    rows = [(f.GetField("class_id"), f.GetField("class"), f.GetField("area_m2")) for f in lyr]
    return rows, lyr.GetSpatialRef().Clone(), lyr.GetExtent()


def files_in(folder: Path):
    return sorted(p.name for p in folder.iterdir())


# Expected regions, 4-connected: (class, area in m2), pixels of 4 m2.
REGIONS_4 = Counter(
    {(0, 106 * 4.0): 1, (0, 6 * 4.0): 1, (1, 12 * 4.0): 1, (1, 4.0): 2, (2, 12 * 4.0): 1}
)


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_regions_areas_and_crs_in_both_formats(classmap, tmp_path, suffix) -> None:
    out = tmp_path / f"polygons{suffix}"
    result = vectorize(classmap, out, NAMES)
    assert result.path == out and result.feature_count == 6
    rows, srs, extent = read_back(out)
    assert Counter((cid, area) for cid, _, area in rows) == REGIONS_4
    assert {(cid, name) for cid, name, _ in rows} == {
        (0, "background"),
        (1, "building"),
        (2, "road"),
    }
    assert srs.IsSame(srs_of(32633))
    assert extent == (500000.0, 500024.0, 4000000.0, 4000024.0)
    assert sum(area for _, _, area in rows) == (144 - 6) * 4.0  # nodata is not vectorized
    if suffix == ".shp":
        assert {".shp", ".shx", ".dbf", ".prj"} <= {Path(f).suffix for f in files_in(tmp_path)}
    assert not [f for f in files_in(tmp_path) if "partial" in f]


def test_eight_connected_joins_diagonal_pixels(classmap, tmp_path) -> None:
    result = vectorize(classmap, tmp_path / "p8.gpkg", NAMES, eight_connected=True)
    assert result.feature_count == 5
    rows, _, _ = read_back(tmp_path / "p8.gpkg")
    assert (1, 8.0) in [(cid, area) for cid, _, area in rows]


def test_only_some_classes_and_names_from_the_raster(tmp_path) -> None:
    path = tmp_path / "named.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 12, 12, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    ds.SetProjection(srs_of(32633).ExportToWkt())
    style_class_band(ds.GetRasterBand(1), NAMES, [(0, 0, 0), (255, 0, 0), (0, 0, 255)])
    ds.GetRasterBand(1).WriteArray(class_map())
    ds = None
    by_name = vectorize(path, tmp_path / "b.gpkg", classes=["Building"])
    rows, _, _ = read_back(tmp_path / "b.gpkg")
    assert by_name.feature_count == 3 and {r[:2] for r in rows} == {(1, "building")}
    vectorize(path, tmp_path / "r.shp", classes=[2])
    assert [r[:2] for r in read_back(tmp_path / "r.shp")[0]] == [(2, "road")]
    # an id as the CLI's --classes and Processing's text give it ("names or ids")
    vectorize(path, tmp_path / "s.gpkg", classes=[" 2"])
    assert [r[:2] for r in read_back(tmp_path / "s.gpkg")[0]] == [(2, "road")]
    with pytest.raises(MapRefinerError, match="Unknown class 'tree'"):
        vectorize(path, tmp_path / "t.gpkg", classes=["tree"])


def test_area_on_a_geographic_grid_is_in_square_metres(tmp_path) -> None:
    a = np.zeros((40, 40), np.uint8)
    a[10:30, 5:35] = 1  # 20 x 30 pixels of 5e-6 degrees near 34 S
    path = write_raster(tmp_path / "geo.tif", a, (20.5, 5e-6, 0, -34.0, 0, -5e-6), 4326)
    vectorize(path, tmp_path / "geo.gpkg", NAMES, classes=[1])
    rows, srs, _ = read_back(tmp_path / "geo.gpkg")
    lon_m, lat_m = wgs84_metres_per_degree(-34.0001)
    expected = 600 * 5e-6 * lon_m * 5e-6 * lat_m  # about 153 m2
    assert srs.IsSame(srs_of(4326))
    assert len(rows) == 1 and rows[0][2] == pytest.approx(expected, rel=2e-3)


def test_simplify_and_minimum_area(classmap, tmp_path) -> None:
    stairs = np.tril(np.ones((30, 30), np.uint8))
    path = write_raster(
        tmp_path / "stairs.tif", stairs, (500000.0, 1.0, 0, 4000030.0, 0, -1.0), 32633
    )

    def vertices(out: Path) -> int:
        ds = ogr.Open(str(out))
        feat = next(f for f in ds.GetLayer(0) if f.GetField("class_id") == 1)
        return feat.GetGeometryRef().GetGeometryRef(0).GetPointCount()

    vectorize(path, tmp_path / "raw.gpkg", NAMES)
    vectorize(path, tmp_path / "simple.gpkg", NAMES, simplify_m=1.5)
    assert vertices(tmp_path / "raw.gpkg") > 50 and vertices(tmp_path / "simple.gpkg") <= 6
    simple_area = [r[2] for r in read_back(tmp_path / "simple.gpkg")[0] if r[0] == 1][0]
    assert simple_area == pytest.approx(465, rel=0.05)  # 30 * 31 / 2 pixels of 1 m2
    result = vectorize(classmap, tmp_path / "big.gpkg", NAMES, min_area_m2=10)
    assert result.feature_count == 4 and result.removed_small == 2


def test_merging_small_regions_leaves_no_gap(classmap, tmp_path) -> None:
    """The two lone building pixels (4 m² each) join the background around them: the
    polygons still cover every valid pixel once, where dropping them leaves two holes;
    the nodata half row takes nothing in."""
    merged = vectorize(classmap, tmp_path / "merged.gpkg", NAMES, merge_small_m2=5.0)
    rows, _, _ = read_back(merged.path)
    assert Counter((cid, area) for cid, _, area in rows) == Counter(
        {(0, 108 * 4.0): 1, (0, 6 * 4.0): 1, (1, 12 * 4.0): 1, (2, 12 * 4.0): 1}
    )
    assert sum(area for _, _, area in rows) == (144 - 6) * 4.0  # no gap
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    ds = ogr.Open(str(merged.path))
    for feat in ds.GetLayer(0):
        union.AddGeometry(feat.GetGeometryRef())
    assert union.UnionCascaded().GetArea() == (144 - 6) * 4.0  # and no overlap
    dropped, _, _ = read_back(vectorize(classmap, tmp_path / "d.gpkg", NAMES, min_area_m2=5).path)
    assert sum(area for _, _, area in dropped) == (144 - 6 - 2) * 4.0  # two holes
    assert gdal.Open(str(classmap)).ReadAsArray()[6, 6] == 1  # the input is untouched


def test_cancel_at_any_point_leaves_nothing(classmap, tmp_path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cancelled_at = []
    for n in range(50):
        calls: list = []

        def is_cancelled(calls: list = calls, n: int = n) -> bool:
            calls.append(1)
            return len(calls) > n

        try:
            vectorize(classmap, out_dir / "p.shp", NAMES, is_cancelled=is_cancelled)
        except CancelledError:
            cancelled_at.append(n)
            assert files_in(out_dir) == []
            continue
        break
    assert cancelled_at[0] == 0 and len(cancelled_at) >= 3  # before, during and after polygonize
    assert files_in(out_dir) == ["p.dbf", "p.prj", "p.shp", "p.shx"]


def test_a_failure_while_writing_leaves_nothing(classmap, tmp_path, monkeypatch) -> None:
    def boom(*_args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(vectorize_module._Measure, "shaped", boom)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(RuntimeError):
        vectorize(classmap, out_dir / "p.gpkg", NAMES)
    assert files_in(out_dir) == []


def test_progress_reaches_one(classmap, tmp_path) -> None:
    seen = []
    vectorize(classmap, tmp_path / "p.gpkg", NAMES, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 2


def test_refuses_to_overwrite_unless_asked(classmap, tmp_path) -> None:
    (tmp_path / "p.dbf").write_text("old")
    with pytest.raises(MapRefinerError, match="p.dbf already exists"):
        vectorize(classmap, tmp_path / "p.shp", NAMES)
    assert files_in(tmp_path) == ["classes.tif", "p.dbf"]
    (tmp_path / "p.qix").write_text("stale index")
    assert vectorize(classmap, tmp_path / "p.shp", NAMES, overwrite=True).feature_count == 6
    assert files_in(tmp_path) == ["classes.tif", "p.dbf", "p.prj", "p.shp", "p.shx"]
    vectorize(classmap, tmp_path / "p.gpkg", NAMES, classes=[2])
    with pytest.raises(MapRefinerError, match="already exists"):
        vectorize(classmap, tmp_path / "p.gpkg", NAMES)
    assert vectorize(classmap, tmp_path / "p.gpkg", NAMES, overwrite=True).feature_count == 6
    assert len(read_back(tmp_path / "p.gpkg")[0]) == 6


def test_bad_outputs(classmap, tmp_path) -> None:
    with pytest.raises(MapRefinerError, match=r"\.shp .* or \.gpkg"):
        vectorize(classmap, tmp_path / "p.csv", NAMES)
    with pytest.raises(MapRefinerError, match="does not exist"):
        vectorize(classmap, tmp_path / "no" / "p.gpkg", NAMES)
    raster_gpkg = tmp_path / "map.gpkg"
    gdal.Translate(str(raster_gpkg), str(classmap), format="GPKG")
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        vectorize(raster_gpkg, raster_gpkg, NAMES, overwrite=True)
    floats = write_raster(tmp_path / "f.tif", class_map().astype(np.float32), GT, 32633)
    with pytest.raises(MapRefinerError, match="not a class map"):
        vectorize(floats, tmp_path / "f.gpkg", NAMES)


def write_scores(path: Path, probs: np.ndarray) -> Path:
    """A float32 probability raster, one band per class, on the class map's grid."""
    k, h, w = probs.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, k, gdal.GDT_Float32)
    ds.SetGeoTransform(GT)
    for i in range(k):
        ds.GetRasterBand(i + 1).WriteArray(probs[i])
    ds = None
    return path


def test_each_polygon_carries_its_source_and_mean_class_probability(tmp_path) -> None:
    """mean_prob: the polygon's own class's probability averaged over its pixels (not its
    neighbours'); source: the model that made the map (the class band's description)."""
    classes = class_map()
    ds = gdal.Open(str(write_raster(tmp_path / "c.tif", classes, GT, 32633, nodata=255)), 1)
    ds.GetRasterBand(1).SetDescription("tanzania — round 2 (7 corrections): 5 RNN iterations")
    ds = None
    rng = np.random.default_rng(3)
    probs = rng.uniform(0.0, 1.0, (3, 12, 12)).astype(np.float32)
    scores = write_scores(tmp_path / "p.tif", probs)
    out = tmp_path / "poly.gpkg"
    vectorize(tmp_path / "c.tif", out, NAMES, classes=["building", "road"], scores_path=scores)
    polygons = ogr.Open(str(out))  # kept alive while its layer is read
    lyr = polygons.GetLayer(0)
    got = sorted(
        (f.GetField("class_id"), round(f.GetField("area_m2")), f.GetField("mean_prob")) for f in lyr
    )
    expected = sorted(
        [
            (1, 48, float(probs[1, 1:4, 1:5].mean())),
            (1, 4, float(probs[1, 6, 6])),
            (1, 4, float(probs[1, 7, 7])),
            (2, 48, float(probs[2, 10, :].mean())),
        ]
    )
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    for g, e in zip(got, expected):
        assert g[2] == pytest.approx(e[2], abs=1e-4)
    lyr.ResetReading()
    assert {f.GetField("source") for f in lyr} == {
        "tanzania — round 2 (7 corrections): 5 RNN iterations"
    }


def test_probabilities_of_another_refine_are_refused(classmap, tmp_path) -> None:
    small = write_scores(tmp_path / "p.tif", np.zeros((3, 6, 6), np.float32))
    with pytest.raises(MapRefinerError, match="same refine"):
        vectorize(classmap, tmp_path / "o.gpkg", NAMES, scores_path=small)
    two = write_scores(tmp_path / "p2.tif", np.zeros((2, 12, 12), np.float32))
    with pytest.raises(MapRefinerError, match="probability band"):
        vectorize(classmap, tmp_path / "o.gpkg", NAMES, scores_path=two)
    assert not (tmp_path / "o.gpkg").exists()


def test_a_killed_runs_scratch_folder_is_removed_by_the_next_run(classmap, tmp_path) -> None:
    """A vectorize killed mid-run leaves its hidden scratch folder (the mask and the regions
    on disk) beside the output; the next run beside the same output removes it, but never
    the folder of a run that is still going (its lock is held)."""
    import fcntl

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dead = out_dir / ".p.0123abcd.scratch"
    dead.mkdir()
    (dead / ".lock").write_bytes(b"")
    (dead / "regions.gpkg").write_bytes(b"x" * 100)
    live = out_dir / ".p.4567cdef.scratch"
    live.mkdir()
    with open(live / ".lock", "wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        vectorize(classmap, out_dir / "p.gpkg", NAMES)
        assert files_in(out_dir) == [".p.4567cdef.scratch", "p.gpkg"]
    vectorize(classmap, out_dir / "p.gpkg", NAMES, overwrite=True)
    assert files_in(out_dir) == ["p.gpkg"]


def test_another_tools_0_255_mask_is_refused_with_the_way_out(tmp_path) -> None:
    """255 is no data in a class map: another tool's 0/255 mask had come out as polygons
    of class 0 alone, its buildings dropped without a word."""
    mask = np.where(class_map() == 1, 255, 0).astype(np.uint8)
    path = write_raster(tmp_path / "theirs.tif", mask, GT, 32633)
    with pytest.raises(MapRefinerError, match=r"theirs.tif holds no pixel of any class but 0"):
        vectorize(path, tmp_path / "v.gpkg")
    assert not (tmp_path / "v.gpkg").exists()
