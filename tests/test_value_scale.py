"""Imagery beyond the 8-bit range (16-bit, 11-bit satellite values, 0-1 reflectance) is read
scaled into the range a model trained on 8-bit imagery expects (rasters.read.value_scale,
predict.for_image; session 39): a 16-bit copy of an 8-bit image refines to the same map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import make_tif, random_model
from osgeo import gdal

from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.read import value_scale
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.predict import for_image


def copy_as(src: Path, out: Path, dtype: int, factor: float, nbits: int | None = None) -> Path:
    """``src``'s bands times ``factor`` as ``dtype`` (same grid), with NBITS if given."""
    ds = gdal.Open(str(src))
    arr = ds.ReadAsArray().astype(np.float64) * factor
    options = [f"NBITS={nbits}"] if nbits else []
    drv = gdal.GetDriverByName("GTiff")
    out_ds = drv.Create(str(out), ds.RasterXSize, ds.RasterYSize, ds.RasterCount, dtype, options)
    out_ds.SetGeoTransform(ds.GetGeoTransform())
    out_ds.SetProjection(ds.GetProjection())
    for i in range(ds.RasterCount):
        out_ds.GetRasterBand(i + 1).WriteArray(arr[i])
    out_ds = None
    return out


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_tif(tmp_path / "img.tif", 90, 110, seed=3)


@pytest.mark.parametrize(
    "dtype, factor, nbits, scale",
    [
        (gdal.GDT_Byte, 1, None, 1.0),
        (gdal.GDT_UInt16, 1, None, 1.0),  # 8-bit values in a 16-bit file: as they are
        (gdal.GDT_UInt16, 256, None, 1 / 256),  # 8 bits shifted into 16
        (gdal.GDT_UInt16, 8, None, 1 / 8),  # 11-bit values
        (gdal.GDT_UInt16, 2, 12, 1 / 16),  # NBITS says 12 though they use 9
        (gdal.GDT_Float32, 1 / 255, None, 255.0),  # reflectance 0-1
        (gdal.GDT_Float32, 1, None, 1.0),
    ],
)
def test_the_scale_brings_the_bit_depth_to_eight(
    image: Path, tmp_path: Path, dtype: int, factor: float, nbits: int | None, scale: float
) -> None:
    path = copy_as(image, tmp_path / "copy.tif", dtype, factor, nbits)
    assert value_scale(gdal.Open(str(path)), [1, 2, 3]) == pytest.approx(scale)


def test_a_sixteen_bit_copy_refines_to_the_same_map(image: Path, tmp_path: Path) -> None:
    model = save_model(*random_model(resolution_m=0.6, seed=2), tmp_path / "m.safetensors")
    wide = copy_as(image, tmp_path / "wide.tif", gdal.GDT_UInt16, 256)
    maps = {}
    for name, path in (("eight", image), ("wide", wide)):
        out, scores = tmp_path / f"map_{name}.tif", tmp_path / f"map_{name}_scores.tif"
        refine_raster(RefineParams(image=path, out=out, model_path=model, scores=scores))
        maps[name] = (gdal.Open(str(out)).ReadAsArray(), gdal.Open(str(scores)).ReadAsArray())
    assert np.array_equal(maps["eight"][0], maps["wide"][0])
    assert np.array_equal(maps["eight"][1], maps["wide"][1])  # 256 is exact in floating point


def test_a_model_trained_beyond_eight_bits_reads_its_values_as_they_are(
    image: Path, tmp_path: Path
) -> None:
    from map_refiner.engine.refine.tiling import Grids

    wide = gdal.Open(str(copy_as(image, tmp_path / "wide.tif", gdal.GDT_UInt16, 256)))
    grids = Grids(110, 90, 110, 90)
    _, eight_bit = random_model(resolution_m=0.6)
    fed = for_image(eight_bit, wide, [1, 2, 3], grids)
    assert fed.mean == [m * 256 for m in eight_bit.mean]
    assert fed.std == [s * 256 for s in eight_bit.std]
    assert eight_bit.mean == [120.0] * 3  # the model's own config is not touched
    sixteen_bit = eight_bit.__class__(**{**eight_bit.__dict__, "mean": [30000.0] * 3})
    assert for_image(sixteen_bit, wide, [1, 2, 3], grids) is sixteen_bit


def test_a_sixteen_bit_copy_has_the_same_look(image: Path, tmp_path: Path) -> None:
    """The bundled model is chosen by the image's look (bundled_choice), in the 8-bit range."""
    from map_refiner.engine.modelfile.bundled_choice import image_look

    wide = copy_as(image, tmp_path / "wide.tif", gdal.GDT_UInt16, 256)
    looks = [image_look(gdal.Open(str(p)), [1, 2, 3], 0.6) for p in (image, wide)]
    assert np.allclose(looks[0], looks[1], atol=1e-4)
