"""Web-map tile splits (``x,y,zoom`` lines) as pixel masks on an EPSG:3857 mosaic.

The Xiamen data's own training/validation/evaluation split is given as
zoom-18 web-map tiles; this turns a split into a boolean mask on the mosaic grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from ..engine.errors import MapRefinerError

WEB_MERCATOR_HALF = 20037508.342789244


def read_tiles(path: str | Path) -> list[tuple[int, int, int]]:
    tiles = []
    for line in Path(path).read_text().split():
        x, y, z = (int(v) for v in line.strip().split(","))
        tiles.append((x, y, z))
    return tiles


def tile_pixel_box(ds: gdal.Dataset, x: int, y: int, z: int) -> tuple[int, int, int, int]:
    """Pixel window ``(col0, row0, col1, row1)`` of web tile (x, y, z) on ``ds``'s grid."""
    size = 2 * WEB_MERCATOR_HALF / (2**z)
    gt = ds.GetGeoTransform()
    mx0, my0 = -WEB_MERCATOR_HALF + x * size, WEB_MERCATOR_HALF - y * size
    c0 = int(round((mx0 - gt[0]) / gt[1]))
    r0 = int(round((my0 - gt[3]) / gt[5]))
    c1 = int(round((mx0 + size - gt[0]) / gt[1]))
    r1 = int(round((my0 - size - gt[3]) / gt[5]))
    return c0, r0, c1, r1


def split_mask(ds: gdal.Dataset, tiles_file: str | Path) -> np.ndarray:
    """True on the pixels of ``ds`` covered by the tiles listed in ``tiles_file``."""
    if (
        "3857" not in (ds.GetSpatialRef().GetAuthorityCode(None) or "")
        if ds.GetSpatialRef()
        else True
    ):
        raise MapRefinerError("Web-tile splits need a raster in EPSG:3857 (Web Mercator).")
    mask = np.zeros((ds.RasterYSize, ds.RasterXSize), dtype=bool)
    for x, y, z in read_tiles(tiles_file):
        c0, r0, c1, r1 = tile_pixel_box(ds, x, y, z)
        c0, r0 = max(0, c0), max(0, r0)
        c1, r1 = min(ds.RasterXSize, c1), min(ds.RasterYSize, r1)
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask
