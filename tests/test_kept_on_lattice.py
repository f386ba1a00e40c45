"""The polygons a model keeps are burned into a refine of any image on the same pixels
as the one they were drawn on: a crop of it, a mosaic of its tiles (kept.on_lattice),
and never into an image off that lattice or showing something else there."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM33N, random_model, scene, wkt, write_image
from osgeo import gdal

from map_refiner.engine.labels.burn import Shape
from map_refiner.engine.labels.classes import IGNORE
from map_refiner.engine.labels.kept import KeptCorrections, to_config
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import GridSpec, lattice_offset
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)
GRID = GridSpec(110, 90, GT, wkt(UTM33N))
BUILDING, BACKGROUND = (10, 10, 30, 25), (60, 40, 90, 70)  # pixels of GRID


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    def at(px: float, py: float) -> str:
        return f"{GT[0] + px * GT[1]} {GT[3] + py * GT[5]}"

    return f"POLYGON(({at(x0, y0)},{at(x1, y0)},{at(x1, y1)},{at(x0, y1)},{at(x0, y0)}))"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    write_image(tmp_path / "in.tif", scene(90, 110, seed=3), GT)
    return tmp_path / "in.tif"


def drawn_on(image: Path) -> KeptCorrections:
    shapes = [Shape(1, 0, box(*BUILDING)), Shape(0, 1, box(*BACKGROUND))]
    return KeptCorrections(GRID, shapes, image.name).with_looks(gdal.Open(str(image)), [1, 2, 3])


def model_with(tmp_path: Path, corrections: dict) -> Path:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=4)
    cfg = copy.deepcopy(cfg)
    cfg.corrections = corrections
    return save_model(net, cfg, tmp_path / "m.safetensors")


def crop(image: Path, out: Path, x0: int, y0: int, w: int, h: int) -> Path:
    gdal.Translate(str(out), str(image), srcWin=[x0, y0, w, h])
    return out


def refined(image: Path, model: Path) -> tuple[np.ndarray, object]:
    out = image.with_name(image.stem + "_map.tif")
    res = refine_raster(RefineParams(image=image, out=out, model_path=model, tile_size=32))
    return gdal.Open(str(out)).ReadAsArray(), res


def test_a_crop_of_the_image_shows_the_drawn_polygons(image: Path, tmp_path: Path) -> None:
    k = drawn_on(image)
    model = model_with(tmp_path, k.to_dict())
    part = crop(image, tmp_path / "crop.tif", 5, 5, 95, 80)
    cls, res = refined(part, model)
    assert res.corrections == 2 and not res.corrections_note
    drawn = k.labels_on(GRID)[5:85, 5:100]
    assert (drawn != IGNORE).sum() > 500
    assert (cls[drawn != IGNORE] == drawn[drawn != IGNORE]).all()


def test_a_polygon_the_crop_cuts_is_left_out_and_said(image: Path, tmp_path: Path) -> None:
    model = model_with(tmp_path, drawn_on(image).to_dict())
    part = crop(image, tmp_path / "cut.tif", 20, 0, 90, 90)  # through the building
    _, res = refined(part, model)
    assert res.corrections == 1  # the background polygon, whole on it
    assert "1 of the model's drawn corrections on cut.tif's pixels was not burned in" in (
        res.corrections_note
    )


def test_a_mosaic_of_two_drawn_tiles_shows_both_tiles_polygons(tmp_path: Path) -> None:
    """Tile after tile (kept.other_images), then the tiles' mosaic refined at once."""
    whole = tmp_path / "whole.tif"
    write_image(whole, scene(90, 110, seed=5), GT)
    left = crop(whole, tmp_path / "left.tif", 0, 0, 55, 90)
    right = crop(whole, tmp_path / "right.tif", 55, 0, 55, 90)

    def kept_on(tile: Path, pixels: tuple[int, int, int, int], cls: int) -> KeptCorrections:
        ds = gdal.Open(str(tile))
        gt = ds.GetGeoTransform()
        grid = GridSpec(ds.RasterXSize, ds.RasterYSize, gt, wkt(UTM33N))
        return KeptCorrections(grid, [Shape(cls, 0, box(*pixels))], tile.name).with_looks(
            ds, [1, 2, 3]
        )

    a, b = kept_on(left, BUILDING, 1), kept_on(right, BACKGROUND, 0)
    model = model_with(tmp_path, to_config(b, to_config(a, None)))
    mosaic = tmp_path / "mosaic.vrt"
    gdal.BuildVRT(str(mosaic), [str(left), str(right)])
    cls, res = refined(mosaic, model)
    assert res.corrections == 2
    full = KeptCorrections(GRID, a.shapes + [Shape(0, 1, b.shapes[0].wkt)]).labels_on(GRID)
    assert (cls[full != IGNORE] == full[full != IGNORE]).all()


def test_another_acquisition_or_a_shifted_grid_gets_none(image: Path, tmp_path: Path) -> None:
    model = model_with(tmp_path, drawn_on(image).to_dict())
    later = tmp_path / "later.tif"
    write_image(later, scene(90, 110, seed=8), GT)  # next year's pixels on the same grid
    _, res = refined(crop(later, tmp_path / "later_crop.tif", 5, 5, 95, 80), model)
    assert res.corrections == 0 and "shows something else" in res.corrections_note
    half = (GT[0] + 0.2, *GT[1:])  # half a pixel east: another lattice
    shifted = tmp_path / "shifted.tif"
    write_image(shifted, scene(90, 110, seed=3), half)
    _, res = refined(shifted, model)
    assert res.corrections == 0 and not res.corrections_note


def test_lattice_offset() -> None:
    assert lattice_offset(GRID, GRID) == (0, 0)
    moved = GridSpec(20, 20, (GT[0] + 4.0, 0.4, 0.0, GT[3] - 2.0, 0.0, -0.4), GRID.projection_wkt)
    assert lattice_offset(GRID, moved) == (10, 5)
    off = GridSpec(20, 20, (GT[0] + 4.1, 0.4, 0.0, GT[3], 0.0, -0.4), GRID.projection_wkt)
    assert lattice_offset(GRID, off) is None
    coarser = GridSpec(20, 20, (GT[0], 0.8, 0.0, GT[3], 0.0, -0.8), GRID.projection_wkt)
    assert lattice_offset(GRID, coarser) is None
    other_crs = GridSpec(110, 90, GT, wkt(32632))
    assert lattice_offset(GRID, other_crs) is None


def test_a_crop_with_rounds_of_its_own_shows_the_image_s_polygons_too(
    image: Path, tmp_path: Path
) -> None:
    """The image's polygons under the crop's own, which win where they overlap."""
    whole = drawn_on(image)
    part = crop(image, tmp_path / "crop.tif", 5, 5, 95, 80)
    ds = gdal.Open(str(part))
    grid = GridSpec(ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), wkt(UTM33N))
    own = KeptCorrections(grid, [Shape(0, 0, box(12, 12, 20, 20))], part.name).with_looks(
        ds, [1, 2, 3]
    )  # background drawn over part of the image's building polygon
    cls, res = refined(part, model_with(tmp_path, to_config(own, to_config(whole, None))))
    assert res.corrections == 3
    expected = whole.labels_on(GRID)[5:85, 5:100]
    expected[7:15, 7:15] = 0  # the crop's own polygon (box() is in the image's pixels)
    assert (cls[expected != IGNORE] == expected[expected != IGNORE]).all()


def test_a_fine_tune_on_a_crop_learns_the_image_s_polygons_on_it(
    image: Path, tmp_path: Path
) -> None:
    from helpers_data import write_vector
    from osgeo import ogr

    from map_refiner.engine.labels.kept import from_config
    from map_refiner.engine.modelfile.io import load_model
    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.corrections.fit import FitParams
    from map_refiner.training.tile import LabelSource

    model = model_with(tmp_path, drawn_on(image).to_dict())
    part = crop(image, tmp_path / "crop.tif", 5, 5, 95, 80)
    feats = [
        (box(40, 10, 50, 20), {"class": "building"}),
        (box(15, 60, 25, 70), {"class": "background"}),
    ]
    write_vector(tmp_path / "c.gpkg", feats, epsg=UTM33N, fields={"class": ogr.OFTString})
    res = finetune(
        part,
        LabelSource(tmp_path / "c.gpkg", class_field="class", mode="sparse"),
        tmp_path / "r.safetensors",
        model,
        FitParams(steps=4, eval_every=2),
        device="cpu",
    )
    assert res.polygons == 4  # the layer's two and the image's two lying on the crop
    _, cfg = load_model(res.model)
    ds = gdal.Open(str(part))
    grid = GridSpec(ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), wkt(UTM33N))
    assert from_config(cfg.corrections, 2, grid).features == 4
