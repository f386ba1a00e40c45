"""An image whose file holds no CRS, read with the CRS QGIS set on its layer
(rasters.read.crs_assigned): QGIS keeps such a CRS in the project, so the engine, which
reads the file, refused the image for want of a pixel size on the ground (session 50)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from helpers_data import wkt_of
from helpers_engine import random_model, scene
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.read import (
    crs_assigned,
    ground_resolution,
    open_raster,
    raster_info,
)
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


def image(path: Path, gt: tuple | None = GT, wkt: str = "") -> Path:
    arr = scene(64, 80, seed=3).astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 80, 64, 3, gdal.GDT_Byte)
    if gt is not None:
        ds.SetGeoTransform(gt)
    if wkt:
        ds.SetProjection(wkt)
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_layers_crs_is_read_and_the_file_left_alone(tmp_path: Path) -> None:
    src = image(tmp_path / "ortho.tif")
    before, files = _sha(src), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MapRefinerError, match="no coordinate reference system"):
        ground_resolution(raster_info(open_raster(src)))
    read = crs_assigned(src, wkt_of(32614), tmp_path / "crs")
    assert read != src and read.suffix == ".vrt" and read.parent == tmp_path / "crs"
    info = raster_info(open_raster(read))
    assert info.has_crs and info.geotransform == GT and (info.width, info.height) == (80, 64)
    assert ground_resolution(info) == pytest.approx((0.6, 0.6), rel=1e-2)  # UTM's scale
    src_ds, vrt_ds = gdal.Open(str(src)), gdal.Open(str(read))
    assert np.array_equal(src_ds.ReadAsArray(), vrt_ds.ReadAsArray())
    assert _sha(src) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*files, "crs"]
    )
    # the same layer again: the same file, as a later round finds it
    assert crs_assigned(src, wkt_of(32614), tmp_path / "crs") == read
    assert crs_assigned(src, wkt_of(32615), tmp_path / "crs") != read
    assert not list((tmp_path / "crs").glob("*partial*"))


def test_a_file_with_its_own_crs_or_none_at_all_is_read_as_it_is(tmp_path: Path) -> None:
    own = image(tmp_path / "own.tif", wkt=wkt_of(32614))
    assert crs_assigned(own, wkt_of(4326), tmp_path / "crs") == own
    photo = image(tmp_path / "photo.tif", gt=None)  # pixel coordinates only
    assert crs_assigned(photo, wkt_of(32614), tmp_path / "crs") == photo
    bare = image(tmp_path / "bare.tif")
    assert crs_assigned(bare, "", tmp_path / "crs") == bare
    assert crs_assigned(bare, "not a crs", tmp_path / "crs") == bare
    assert not (tmp_path / "crs").exists()


def test_a_refine_of_it_is_placed_in_that_crs(tmp_path: Path) -> None:
    read = crs_assigned(image(tmp_path / "ortho.tif"), wkt_of(32614), tmp_path / "crs")
    model = save_model(*random_model(resolution_m=0.6, seed=2), tmp_path / "m.safetensors")
    out = tmp_path / "refined.tif"
    refine_raster(RefineParams(image=read, out=out, model_path=model))
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == GT and "32614" in ds.GetProjection().replace('"', "")


def test_a_file_written_anew_gets_a_vrt_of_its_own(tmp_path: Path) -> None:
    """A VRT describes its file's size and transform: a file replaced at the same path
    (exported again, larger) must not be read through the old one."""
    import os

    src = image(tmp_path / "ortho.tif")
    first = crs_assigned(src, wkt_of(32614), tmp_path / "crs")
    arr = scene(100, 120, seed=4).astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(str(src), 120, 100, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    second = crs_assigned(src, wkt_of(32614), tmp_path / "crs")
    assert second != first
    info = raster_info(open_raster(second))
    assert (info.width, info.height) == (120, 100) and info.has_crs
