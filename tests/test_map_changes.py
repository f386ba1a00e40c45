"""What changed between two class maps (engine/scoring/changes.py): the counts, the
changes raster and its legend, other grids, and nothing lost or half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_data import write_raster
from osgeo import gdal

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.rasters.grid import GridSpec
from map_refiner.engine.rasters.read import open_raster
from map_refiner.engine.rasters.write import style_class_band
from map_refiner.engine.scoring.changes import (
    CHANGE_COLOURS,
    CHANGE_PALE,
    class_legend,
    map_changes,
)

NAMES = ["background", "building"]
COLOURS = [(235, 235, 225), (200, 40, 40)]
GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)  # UTM, 0.5 m pixels: 0.25 m² each


def class_map(path: Path, array: np.ndarray, gt=GT, epsg: int | None = 32631, names=NAMES):
    write_raster(path, array.astype(np.uint8), gt, epsg=epsg, nodata=255)
    ds = gdal.Open(str(path), gdal.GA_Update)
    style_class_band(ds.GetRasterBand(1), names, COLOURS[: len(names)] + [(0, 0, 255)])
    ds = None
    return path


def values(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


@pytest.fixture
def two_maps(tmp_path: Path) -> tuple[Path, Path]:
    old = np.zeros((40, 60), np.uint8)
    old[5:15, 5:25] = 1  # 200 px of building
    new = old.copy()
    new[5:15, 5:9] = 0  # 40 px lost
    new[30:34, 40:50] = 1  # 40 px gained
    new[0, 0] = 255  # no data in the newer map
    return class_map(tmp_path / "old.tif", old), class_map(tmp_path / "new.tif", new)


def test_counts_and_raster(two_maps, tmp_path: Path) -> None:
    old, new = two_maps
    out = tmp_path / "changes.tif"
    c = map_changes(old, new, out)
    assert c.class_names == NAMES
    assert c.transitions.tolist() == [[40 * 60 - 200 - 40 - 1, 40], [40, 160]]
    assert (c.compared, c.changed, c.became(1), c.left(1)) == (40 * 60 - 1, 80, 40, 40)
    assert c.pixel_area_m2 == pytest.approx(0.25, rel=1e-3)
    v = values(out)
    assert (v[5:15, 5:9] == 1).all()  # became background
    assert (v[30:34, 40:50] == 2).all()  # became building
    assert (v == 0).sum() == v.size - 80  # unchanged and no data: the nodata value
    assert c.summary() == "3.3 % of the map changed: building +10 m² / -10 m²"


def test_the_raster_says_what_its_values_mean(two_maps, tmp_path: Path) -> None:
    old, new = two_maps
    out = tmp_path / "changes.tif"
    map_changes(old, new, out)
    ds = open_raster(out)
    names, colours = class_legend(ds)
    assert names == ["unchanged", "became background", "became building"]
    assert colours[1] == CHANGE_PALE  # the pale background colour would not show
    assert colours[2] == CHANGE_COLOURS[0]  # not the class's red: it would not show on it
    assert ds.GetRasterBand(1).GetNoDataValue() == 0


def test_hectares_and_pixels(tmp_path: Path) -> None:
    old = np.zeros((300, 300), np.uint8)
    new = old.copy()
    new[:200, :] = 1  # 60000 px of 0.25 m² = 1.5 ha
    gt = GT
    c = map_changes(class_map(tmp_path / "a.tif", old, gt), class_map(tmp_path / "b.tif", new, gt))
    assert c.summary() == "66.7 % of the map changed: building +1.50 ha / -0 m²"
    nocrs = map_changes(
        class_map(tmp_path / "c.tif", old, epsg=None), class_map(tmp_path / "d.tif", new, epsg=None)
    )
    assert nocrs.pixel_area_m2 is None
    assert "building +60000 px" in nocrs.summary()
    same = map_changes(tmp_path / "a.tif", tmp_path / "a.tif")
    assert same.summary() == "no pixel changed class"


def test_an_older_map_on_another_grid_is_read_onto_the_newer(tmp_path: Path) -> None:
    new = np.zeros((40, 40), np.uint8)
    new[10:20, 10:20] = 1
    old = np.zeros((20, 20), np.uint8)  # 1 m pixels over the same ground
    old[5:10, 5:10] = 1
    coarse = (GT[0], 1.0, 0.0, GT[3], 0.0, -1.0)
    c = map_changes(
        class_map(tmp_path / "old.tif", old, coarse), class_map(tmp_path / "new.tif", new)
    )
    assert c.changed == 0 and c.compared == 1600
    # an older map covering only part of the newer one: the rest is not compared
    part = class_map(tmp_path / "part.tif", old[:10], coarse)
    c = map_changes(part, tmp_path / "new.tif", tmp_path / "changes.tif")
    assert c.compared == 800
    assert (values(tmp_path / "changes.tif")[20:] == 0).all()


def test_maps_of_other_classes_are_refused(two_maps, tmp_path: Path) -> None:
    old, _ = two_maps
    other = class_map(tmp_path / "roads.tif", np.zeros((40, 60)), names=["background", "road"])
    with pytest.raises(MapRefinerError, match="classes"):
        map_changes(old, other)


def test_no_common_pixels_is_an_error(two_maps, tmp_path: Path) -> None:
    old, _ = two_maps
    far = (GT[0] + 1e4, *GT[1:])
    elsewhere = class_map(tmp_path / "far.tif", np.zeros((40, 60)), far)
    out = tmp_path / "changes.tif"
    with pytest.raises(MapRefinerError, match="share no pixel"):
        map_changes(old, elsewhere, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["far.tif", "far.tif.aux.xml", "new.tif", "new.tif.aux.xml", "old.tif", "old.tif.aux.xml"]
    )


def test_inputs_and_existing_files_are_never_overwritten(two_maps, tmp_path: Path) -> None:
    old, new = two_maps
    before = new.read_bytes()
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        map_changes(old, new, new, overwrite=True)
    assert new.read_bytes() == before
    out = tmp_path / "changes.tif"
    out.write_bytes(b"mine")
    with pytest.raises(MapRefinerError, match="already exists"):
        map_changes(old, new, out)
    assert out.read_bytes() == b"mine"
    map_changes(old, new, out, overwrite=True)
    assert values(out).max() == 2
    named = tmp_path / "changes.gpkg"  # a GeoTIFF would be written under a vector's name
    with pytest.raises(MapRefinerError, match="give it a .tif name, not changes.gpkg"):
        map_changes(old, new, named)
    assert not named.exists()


def test_cancel_leaves_nothing(two_maps, tmp_path: Path) -> None:
    old, new = two_maps
    out = tmp_path / "changes.tif"
    listing = sorted(tmp_path.iterdir())
    with pytest.raises(CancelledError):
        map_changes(old, new, out, is_cancelled=lambda: True)
    assert sorted(tmp_path.iterdir()) == listing


def test_progress_reaches_the_end(two_maps) -> None:
    seen: list[float] = []
    map_changes(*two_maps, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)


def test_cli_changes(two_maps, tmp_path: Path, capsys) -> None:
    from map_refiner import cli

    old, new = two_maps
    out = tmp_path / "changes.tif"
    assert cli.main(["changes", str(old), str(new), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "new.tif against old.tif: 3.3 % of the map changed: building +10 m²" in printed
    assert values(out).max() == 2
    assert cli.main(["changes", str(old), str(new), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["became"] == {"background": 40, "building": 40} and row["changes"] is None
    assert cli.main(["changes", str(old), str(new), "--out", str(out)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err


def test_cli_lists_the_largest_changes(two_maps, tmp_path: Path, capsys) -> None:
    """``--largest N``: the review list, the largest first, in words and as JSON."""
    from map_refiner import cli

    old, new = two_maps
    out = tmp_path / "changes.tif"
    assert cli.main(["changes", str(old), str(new), "--out", str(out), "--largest", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("  1. 10 m² that became background (was building) at ")
    assert lines[-1].startswith("  2. 10 m² that became building (was background) at ")
    out.unlink()
    argv = ["changes", str(old), str(new), "--out", str(out), "--largest", "1", "--json"]
    assert cli.main(argv) == 0
    (first,) = json.loads(capsys.readouterr().out)["largest"]
    assert (first["was"], first["became"], first["pixels"], first["cut"]) == (
        "building",
        "background",
        40,
        False,
    )
    x, y = first["point"]  # inside the 4 x 10 px lost strip (columns 5-8, rows 5-14)
    assert GT[0] + 5 * 0.5 < x < GT[0] + 9 * 0.5 and GT[3] - 15 * 0.5 < y < GT[3] - 5 * 0.5
    assert first["box"] == pytest.approx([GT[0] + 2.5, GT[3] - 7.5, GT[0] + 4.5, GT[3] - 2.5])
    assert cli.main(["changes", str(old), str(new), "--largest", "3"]) == 2  # no raster
    assert "add --out" in capsys.readouterr().err


def test_cli_writes_the_largest_changes_as_polygons(two_maps, tmp_path: Path, capsys) -> None:
    """``--largest-out``: the list as a GeoPackage whose ``class`` is what each change was
    (a correction turning it back), in the maps' CRS; refused without --out, or onto an
    input, before any work."""
    from osgeo import ogr

    from map_refiner import cli

    old, new = two_maps
    out, listed = tmp_path / "changes.tif", tmp_path / "largest.gpkg"
    argv = ["changes", str(old), str(new), "--out", str(out), "--largest-out", str(listed)]
    assert cli.main(argv) == 0
    assert f"wrote {listed}: the 2 largest changes" in capsys.readouterr().out
    ds = ogr.Open(str(listed))
    layer = ds.GetLayer(0)
    rows = [
        (f["rank"], f["class"], f["became"], f["pixels"], f["cut"], round(f["area_m2"], 1))
        for f in layer
    ]
    assert rows == [
        (1, "building", "background", 40, 0, 10.0),
        (2, "background", "building", 40, 0, 10.0),
    ]
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32631"
    layer.ResetReading()
    first = layer.GetNextFeature()  # kept: its geometry's owner
    assert first.GetGeometryRef().GetArea() == pytest.approx(40 * 0.25)
    ds = None
    assert cli.main(argv) == 2  # both outputs exist now: nothing replaced without --overwrite
    assert "already exists" in capsys.readouterr().err
    bad = ["changes", str(old), str(new), "--largest-out", str(tmp_path / "l.gpkg")]
    assert cli.main(bad) == 2 and "add --out" in capsys.readouterr().err
    onto = ["changes", str(old), str(new), "--out", str(tmp_path / "c2.tif")]
    assert cli.main([*onto, "--largest-out", str(old)]) == 2  # not a vector name: refused first
    assert not (tmp_path / "c2.tif").exists()
    capsys.readouterr()


def test_changes_away_from_the_drawn_polygons(two_maps, tmp_path: Path) -> None:
    """A round's kept polygons: what changed outside them is counted apart (the lost
    building pixels lie under the drawn polygon, the gained ones away from it)."""
    from map_refiner.engine.labels.burn import Shape
    from map_refiner.engine.labels.kept import KeptCorrections
    from map_refiner.engine.rasters.grid import grid_of

    old, new = two_maps
    x0, y0 = GT[0] + 5 * 0.5, GT[3] - 5 * 0.5  # columns 5-9, rows 5-15
    box = f"POLYGON(({x0} {y0},{x0 + 2} {y0},{x0 + 2} {y0 - 5},{x0} {y0 - 5},{x0} {y0}))"
    grid = grid_of(open_raster(new))
    drawn = KeptCorrections(grid, [Shape(0, 0, box)])
    c = map_changes(old, new, tmp_path / "changes.tif", drawn=drawn)
    written = values(tmp_path / "changes.tif")
    assert (written[5:15, 5:9] == 0).all() and (written == 2).sum() == 40  # away only
    away = c.away_from_drawn()
    assert away is not None
    assert (c.changed, away.changed, away.became(1), away.left(1)) == (80, 40, 40, 0)
    assert away.compared == c.compared - 40
    assert c.summary() == (
        "outside the drawn polygons, 1.7 % of the map changed: building +10 m² / -0 m² "
        "(3.3 % with them)"
    )
    assert c.to_dict()["outside_drawn"]["changed_pixels"] == 40
    # polygons drawn on another image say nothing about this one
    elsewhere = KeptCorrections(GridSpec(10, 10, GT, grid.projection_wkt), [Shape(0, 0, box)])
    assert map_changes(old, new, drawn=elsewhere).away_from_drawn() is None
