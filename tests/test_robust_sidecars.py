"""An input or an output is several files: none of an input's files (world file,
statistics, overviews) may be replaced, an output that is not a regular file is refused,
and a refine writes GeoTIFF only under a GeoTIFF name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.files import check_output_path, input_files
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()


@pytest.fixture
def with_world_file(tmp_path: Path) -> Path:
    """A GeoTIFF without georeferencing and a ``.tfw`` world file beside it."""
    path = tmp_path / "in.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 32, 32, 3, gdal.GDT_Byte)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(np.full((32, 32), 90 + 20 * b, np.uint8))
    ds = None
    path.with_suffix(".tfw").write_text("0.6\n0\n0\n-0.6\n500000.3\n3999999.7\n")
    return path


def test_gdal_lists_the_world_file_as_part_of_the_input(with_world_file: Path) -> None:
    files = input_files(with_world_file)
    assert with_world_file.with_suffix(".tfw") in files


def test_an_inputs_world_file_is_never_an_output(with_world_file: Path) -> None:
    """``--out in.wld --overwrite`` wiped the input's georeferencing."""
    tfw = with_world_file.with_suffix(".tfw")
    before = tfw.read_text()
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        check_output_path(tfw, [with_world_file], overwrite=True)
    assert tfw.read_text() == before


def test_a_pipe_as_output_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    fifo = tmp_path / "out.tif"
    os.mkfifo(fifo)
    with pytest.raises(MapRefinerError, match="not a regular file"):
        check_output_path(fifo, [], overwrite=True)


@pytest.mark.parametrize("name", ["x.shp", "x.gpkg", "x.png", "x"])
def test_refine_writes_geotiff_only_under_a_geotiff_name(tmp_path: Path, name: str) -> None:
    """``--out x.shp`` used to write a GeoTIFF under that name."""
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    image = tmp_path / "i.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 24, 24, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6))
    ds = None
    with pytest.raises(MapRefinerError, match=r"\.tif name"):
        refine_raster(RefineParams(image=image, out=tmp_path / name, model_path=model))
    assert not (tmp_path / name).exists()
