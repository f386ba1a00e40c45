"""An image without georeferencing (a plain PNG or JPEG from a drone, read with
``--input-resolution``) lies where QGIS shows it: columns rightward from x 0, rows
downward from y 0 (rasters.read.UNREFERENCED_GEOTRANSFORM). GDAL reports rows going up
instead; written so, the refined map showed flipped below the image in QGIS and polygons
drawn over the image fell off it (session 49)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers_data import box_wkt, write_vector
from helpers_engine import random_model, scene
from osgeo import gdal, ogr

from map_refiner.engine.labels.rasterize import rasterize_vector
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import grid_of
from map_refiner.engine.rasters.read import UNREFERENCED_GEOTRANSFORM
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.vectors.vectorize import vectorize


def unreferenced(path: Path, height: int = 64, width: int = 80) -> Path:
    arr = scene(height, width, seed=3).astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 3, gdal.GDT_Byte)
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    assert gdal.Open(str(path)).GetGeoTransform(can_return_null=True) is None
    return path


def test_a_refine_and_its_polygons_lie_where_qgis_shows_the_image(tmp_path: Path) -> None:
    image = unreferenced(tmp_path / "photo.tif")
    model = save_model(*random_model(resolution_m=0.6, seed=2), tmp_path / "m.safetensors")
    out = tmp_path / "refined.tif"
    refine_raster(RefineParams(image=image, out=out, model_path=model, input_resolution_m=0.3))
    assert gdal.Open(str(out)).GetGeoTransform() == UNREFERENCED_GEOTRANSFORM
    gpkg = tmp_path / "refined.gpkg"
    vectorize(out, gpkg)
    ds = ogr.Open(str(gpkg))  # kept open: the layer belongs to it
    layer = ds.GetLayer(0)
    x0, x1, y0, y1 = layer.GetExtent()
    assert layer.GetFeatureCount() > 0
    assert 0 <= x0 < x1 <= 80 and -64 <= y0 < y1 <= 0  # over the image, not below it


def test_polygons_drawn_over_it_in_qgis_are_burned_where_they_were_drawn(tmp_path) -> None:
    image = unreferenced(tmp_path / "photo.tif")
    grid = grid_of(gdal.Open(str(image)))
    drawn = write_vector(  # rows 10-20, columns 30-50, as QGIS gives them: y = -row
        tmp_path / "drawn.gpkg",
        [(box_wkt(30, -20, 50, -10), {"class": "building"})],
        fields={"class": ogr.OFTString},
    )
    labels = rasterize_vector(drawn, grid, ["background", "building"], "class", mode="sparse")
    rows, cols = np.nonzero(labels == 1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 19, 30, 49)


def test_without_a_resolution_it_says_how_to_georeference_it(tmp_path: Path) -> None:
    """No pixel size and no CRS: the Georeferencer; a pixel size without a CRS: Assign
    Projection, which saves it in the file (a CRS set on the QGIS layer is not read)."""
    import pytest

    from map_refiner.engine.errors import MapRefinerError
    from map_refiner.engine.rasters.read import ground_resolution, open_image, raster_info

    with pytest.raises(MapRefinerError, match="Georeferencer.*--input-resolution"):
        ground_resolution(raster_info(open_image(unreferenced(tmp_path / "photo.tif"))))
    sized = tmp_path / "sized.tif"
    gdal.Translate(str(sized), str(tmp_path / "photo.tif"), outputBounds=[0, 64, 80, 0])
    with pytest.raises(MapRefinerError, match="Assign Projection.*--input-resolution"):
        ground_resolution(raster_info(open_image(sized)))
