"""A fine-tuned model's drawn polygons are burned into, and learnt again from, only the
image they were drawn on: not into another image on the same grid (next year's tile of
an orthophoto programme) where the ground under them shows something else
(engine/labels/drawn_look.py; reliability row 155)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal
from test_kept_corrections import GRID, GT, kept, refined

from map_refiner.engine.labels import drawn_look
from map_refiner.engine.labels.classes import IGNORE
from map_refiner.engine.labels.kept import KeptCorrections
from map_refiner.engine.modelfile.io import save_model

gdal.UseExceptions()
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def copy_of(src: Path, out: Path, how) -> Path:  # noqa: ANN001
    """``src`` written again on its grid with each band's pixels passed through ``how``."""
    ds = gdal.Open(str(src))
    arr = ds.ReadAsArray().astype(np.float64)
    new = gdal.GetDriverByName("GTiff").CreateCopy(str(out), ds)
    for i, band in enumerate(np.clip(how(arr), 0, 255).astype(np.uint8)):
        new.GetRasterBand(i + 1).WriteArray(band)
    new = None
    return out


def model_with_looks(image: Path, tmp_path: Path, k: KeptCorrections) -> Path:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=4)
    cfg = copy.deepcopy(cfg)
    cfg.corrections = k.with_looks(gdal.Open(str(image)), [1, 2, 3]).to_dict()
    return save_model(net, cfg, tmp_path / "m.safetensors")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    write_image(tmp_path / "in.tif", scene(90, 110, seed=3), GT)
    return tmp_path / "in.tif"


def test_the_looks_round_trip_through_the_config(image: Path) -> None:
    k = kept().with_looks(gdal.Open(str(image)), [1, 2, 3])
    back = KeptCorrections.from_dict(k.to_dict())
    assert back.looks == k.looks and back.shapes == k.shapes
    bands, looks = drawn_look.from_config(back.looks)  # type: ignore[misc]
    assert bands == [1, 2, 3] and sorted(looks) == [0, 1]
    assert all(len(b) == drawn_look.LOOK_SIDE**2 for v in looks.values() for b in v)


def test_the_same_image_and_its_copies_keep_every_polygon(image: Path, tmp_path: Path) -> None:
    k = kept().with_looks(gdal.Open(str(image)), [1, 2, 3])
    assert k.still_shown(gdal.Open(str(image))) == (k, 0)
    brighter = copy_of(image, tmp_path / "b.tif", lambda a: 255 * (a / 255) ** 0.7 * 1.1)
    assert k.still_shown(gdal.Open(str(brighter)))[1] == 0
    jpeg = tmp_path / "j.tif"
    gdal.Translate(str(jpeg), str(image), creationOptions=["COMPRESS=JPEG", "JPEG_QUALITY=40"])
    assert k.still_shown(gdal.Open(str(jpeg)))[1] == 0


def test_a_polygon_whose_ground_changed_is_left_out(image: Path, tmp_path: Path) -> None:
    k = kept().with_looks(gdal.Open(str(image)), [1, 2, 3])
    other = scene(90, 110, seed=11)

    def changed(a: np.ndarray) -> np.ndarray:  # polygon 1's box shows other ground
        a = a.copy()
        a[:, 38:72, 58:92] = other[:, 38:72, 58:92]
        return a

    later = copy_of(image, tmp_path / "later.tif", changed)
    left, gone = k.still_shown(gdal.Open(str(later)))
    assert gone == 1 and {s.feature for s in left.shapes} == {0}
    whole = copy_of(image, tmp_path / "w.tif", lambda a: other.astype(float))
    left, gone = k.still_shown(gdal.Open(str(whole)))
    assert gone == 2 and left.shapes == []


def test_a_model_fine_tuned_before_looks_burns_as_before(image: Path, tmp_path: Path) -> None:
    k = kept()  # no looks: a model from before session 51
    other = copy_of(image, tmp_path / "o.tif", lambda a: 255 - a)
    assert k.still_shown(gdal.Open(str(other))) == (k, 0)


def test_a_refine_of_another_image_on_the_grid_burns_none_and_says_why(
    image: Path, tmp_path: Path
) -> None:
    k = kept()
    model = model_with_looks(image, tmp_path, k)
    drawn = k.labels_on(GRID)
    cls, _, res = refined(image, tmp_path / "same.tif", model)
    assert res.corrections == 2 and res.corrections_note == ""
    assert (cls[drawn != IGNORE] == drawn[drawn != IGNORE]).all()
    other = scene(90, 110, seed=11).astype(float)
    next_year = copy_of(image, tmp_path / "next_year.tif", lambda a: other)
    _, _, res = refined(next_year, tmp_path / "next.tif", model)
    assert res.corrections == 0
    assert res.corrections_note.startswith("2 of the model's 2 drawn corrections were not burned")
    assert "next_year.tif lies on the grid of in.tif" in res.corrections_note


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (real imagery)")
def test_on_real_imagery_a_copy_keeps_them_and_another_scene_does_not(tmp_path: Path) -> None:
    """austin_dev's largest buildings as drawn polygons: a JPEG copy (quality 30) and a
    gamma-changed one keep all; austin_enh's pixels on austin_dev's grid keep none."""
    from osgeo import ogr

    from map_refiner.engine.labels.burn import Shape
    from map_refiner.engine.rasters.grid import grid_of

    dev = SHARED / "austin" / "austin_dev_rgb.tif"
    src = ogr.Open(str(SHARED / "austin" / "austin_dev_buildings.gpkg"))
    lyr = src.GetLayer(0)  # (src kept: the layer dies with its data source)
    geoms = sorted((f.GetGeometryRef().ExportToWkt() for f in lyr), key=len)[-6:]
    ds = gdal.Open(str(dev))
    k = KeptCorrections(grid_of(ds), [Shape(1, i, g) for i, g in enumerate(geoms)], dev.name)
    k = k.with_looks(ds, [1, 2, 3])
    jpeg = tmp_path / "jpeg.tif"
    gdal.Translate(str(jpeg), str(dev), creationOptions=["COMPRESS=JPEG", "JPEG_QUALITY=30"])
    assert k.still_shown(gdal.Open(str(jpeg)))[1] == 0
    gamma = copy_of(dev, tmp_path / "g.tif", lambda a: 255 * (a / 255) ** 0.6)
    assert k.still_shown(gdal.Open(str(gamma)))[1] == 0
    enh = gdal.Open(str(SHARED / "austin" / "austin_enh_rgb.tif")).ReadAsArray().astype(float)
    other = copy_of(dev, tmp_path / "o.tif", lambda a: enh[:, : a.shape[1], : a.shape[2]])
    assert k.still_shown(gdal.Open(str(other)))[1] == 6


def test_a_fine_tune_on_another_image_on_the_grid_does_not_learn_them_again(
    image: Path, tmp_path: Path, caplog
) -> None:
    import logging

    from helpers_data import write_vector
    from osgeo import ogr
    from test_kept_corrections import box

    from map_refiner.engine.modelfile.io import load_model
    from map_refiner.engine.rasters.grid import grid_of
    from map_refiner.training.corrections.data import load_corrections
    from map_refiner.training.tile import LabelSource

    cfg = load_model(model_with_looks(image, tmp_path, kept()), "cpu")[1]
    layer = write_vector(
        tmp_path / "round2.gpkg",
        [(box(35, 50, 50, 65), {"class": "building"})],
        32633,
        fields={"class": ogr.OFTString},
    )
    source = LabelSource(layer, class_field="class", mode="sparse")
    same = load_corrections(image, source, cfg)
    assert same.kept.features == 3  # round 1's two polygons are learnt again
    other = scene(90, 110, seed=11).astype(float)
    next_year = copy_of(image, tmp_path / "next_year.tif", lambda a: other)
    assert grid_of(gdal.Open(str(next_year))) == GRID
    with caplog.at_level(logging.WARNING):
        there = load_corrections(next_year, source, cfg)
    assert there.kept.features == 1 and [s.cls for s in there.kept.shapes] == [1]
    assert "2 of the base model's earlier corrections on this grid are not learnt" in caplog.text
    # and the new model keeps what next year's image shows under its one polygon
    assert there.kept.still_shown(gdal.Open(str(next_year)))[1] == 0


def test_no_data_under_a_polygon_is_part_of_its_look(tmp_path: Path) -> None:
    """A float image with NaN under part of a polygon's box (a collar): the same image
    keeps the polygon; an image with data there now, or NaN elsewhere, does not."""
    arr = scene(90, 110, seed=3).astype(np.float32)
    holed = arr.copy()
    holed[:, 8:14, 8:40] = np.nan  # over polygon 0's box (10..30, 10..25)
    write_image(tmp_path / "f.tif", holed, GT)
    k = kept().with_looks(gdal.Open(str(tmp_path / "f.tif")), [1, 2, 3])
    looks = drawn_look.from_config(KeptCorrections.from_dict(k.to_dict()).looks)
    assert looks is not None and None in looks[1][0][0]  # kept as JSON null
    assert k.still_shown(gdal.Open(str(tmp_path / "f.tif")))[1] == 0
    write_image(tmp_path / "full.tif", arr, GT)
    left, gone = k.still_shown(gdal.Open(str(tmp_path / "full.tif")))
    assert gone == 1 and {s.feature for s in left.shapes} == {1}


def test_a_polygon_over_a_large_image_is_read_from_few_pixels(tmp_path: Path) -> None:
    """Block means from at most READ_SIDE x READ_SIDE pixels of the box, whatever its
    size: a background polygon drawn over a whole county is not read whole."""
    from map_refiner.engine.labels.burn import Shape
    from map_refiner.engine.rasters.grid import grid_of

    side = 3000
    ds = gdal.GetDriverByName("MEM").Create("", side, side, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(scene(side, side, bands=1, seed=b)[0])
    x1, y1 = GT[0] + side * GT[1], GT[3] + side * GT[5]
    ring = f"{GT[0]} {GT[3]},{x1} {GT[3]},{x1} {y1},{GT[0]} {y1},{GT[0]} {GT[3]}"
    whole = KeptCorrections(grid_of(ds), [Shape(0, 0, f"POLYGON(({ring}))")], "county.tif")
    reads = []
    band = ds.GetRasterBand(1)
    original = gdal.Band.ReadAsArray

    def counted(self, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        reads.append((kw.get("buf_xsize"), kw.get("buf_ysize")))
        return original(self, *args, **kw)

    gdal.Band.ReadAsArray = counted  # type: ignore[method-assign]
    try:
        k = whole.with_looks(ds, [1, 2, 3])
        assert k.still_shown(ds)[1] == 0
    finally:
        gdal.Band.ReadAsArray = original  # type: ignore[method-assign]
    assert band is not None and reads
    assert all(r == (drawn_look.READ_SIDE, drawn_look.READ_SIDE) for r in reads), reads
