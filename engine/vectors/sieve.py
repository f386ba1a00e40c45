"""Small regions merged into a neighbour before polygonising: a minimum area that leaves
no gap between classes (dropping a polygon afterwards leaves a hole in the coverage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from ..labels.classes import IGNORE
from ..rasters.grid import GridSpec, is_metric, metres_per_unit
from ..rasters.write import create_geotiff

gdal.UseExceptions()


def pixel_area_m2(grid: GridSpec) -> float:
    """One pixel's ground area (square map units when the map has no CRS)."""
    gt = grid.geotransform
    area = abs(gt[1] * gt[5] - gt[2] * gt[4])
    if grid.srs() is None or is_metric(grid):
        return area
    mx, my = metres_per_unit(grid)
    return area * mx * my


def sieved(
    band: gdal.Band,
    grid: GridSpec,
    min_area_m2: float,
    eight_connected: bool,
    folder: Path,
    block_rows: int,
) -> gdal.Dataset:
    """A copy of the class map in ``folder`` where every region under ``min_area_m2``
    has joined its largest neighbouring region (GDAL's sieve); no-data and 255 pixels
    neither join nor take in. Keep the dataset while using its band."""
    nodata = band.GetNoDataValue()
    copy = create_geotiff(
        folder / "sieved.tif",
        grid.width,
        grid.height,
        1,
        band.DataType,
        grid.geotransform,
        grid.projection_wkt,
    )
    mask = create_geotiff(
        folder / "valid.tif",
        grid.width,
        grid.height,
        1,
        gdal.GDT_Byte,
        grid.geotransform,
        grid.projection_wkt,
    )
    for y0 in range(0, grid.height, block_rows):
        h = min(block_rows, grid.height - y0)
        values = band.ReadAsArray(0, y0, grid.width, h)
        valid = values != IGNORE
        if nodata is not None:
            valid &= values != nodata
        copy.GetRasterBand(1).WriteArray(values, 0, y0)
        mask.GetRasterBand(1).WriteArray(valid.astype(np.uint8), 0, y0)
    if nodata is not None:
        copy.GetRasterBand(1).SetNoDataValue(nodata)
    pixels = int(np.ceil(min_area_m2 / max(pixel_area_m2(grid), 1e-12)))
    out = copy.GetRasterBand(1)
    gdal.SieveFilter(out, mask.GetRasterBand(1), out, pixels, 8 if eight_connected else 4)
    copy.FlushCache()
    return copy
