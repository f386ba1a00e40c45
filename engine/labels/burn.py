"""Burning polygons into a label array with GDAL, and reading only features near a grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Union

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..rasters.grid import GridSpec, mem_dataset, metres_per_unit
from .classes import IGNORE

gdal.UseExceptions()
ogr.UseExceptions()
log = logging.getLogger(__name__)
Extent = Union[tuple[float, float, float, float], ogr.Geometry, str, None]


@dataclass(frozen=True)
class Shape:
    """One burned polygon in the grid CRS: its class, the number of the feature it
    came from (a feature may give several polygons) and its geometry as WKT."""

    cls: int
    feature: int
    wkt: str


class BurnList:
    """Class-valued polygons in the grid CRS, burned in the order they were added."""

    def __init__(self, grid: GridSpec) -> None:
        self.grid = grid
        minx, miny, maxx, maxy = grid.bounds
        self._bounds = (minx, maxx, miny, maxy)
        self._ds = ogr.GetDriverByName("Memory").CreateDataSource("labels")
        self._layer = self._ds.CreateLayer("labels", srs=grid.srs(), geom_type=ogr.wkbUnknown)
        self._layer.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
        self.shapes: list[Shape] = []

    def add(self, geom: ogr.Geometry, cls: int, feature: int = 0) -> bool:
        """Keep ``geom`` (of source feature number ``feature``) if it reaches the grid;
        say whether it did."""
        ex0, ex1, ey0, ey1 = geom.GetEnvelope()
        minx, maxx, miny, maxy = self._bounds
        if ex1 < minx or ex0 > maxx or ey1 < miny or ey0 > maxy:
            return False
        feat = ogr.Feature(self._layer.GetLayerDefn())
        feat.SetField(0, cls)
        feat.SetGeometry(geom)
        self._layer.CreateFeature(feat)
        self.shapes.append(Shape(cls, feature, geom.ExportToWkt()))
        return True

    def rasterize(self, mode: str, extent: Extent) -> np.ndarray:
        """``tile``: unburned pixels of the extent are 0; ``sparse``: they are IGNORE.

        Pixels outside the extent are IGNORE; a pixel is burned when its centre
        is inside a polygon, and the last polygon over it wins.
        """
        labels = self.burn(gdal.GDT_Byte, 0 if mode == "tile" else IGNORE)
        if mode == "tile" or extent is not None:
            labels[~extent_mask(self.grid, extent)] = IGNORE
        return labels

    def burn(self, dtype: int, fill: int) -> np.ndarray:
        """The polygons' values on the grid (GDAL type ``dtype``), ``fill`` elsewhere."""
        ds = mem_dataset(self.grid, dtype, fill=fill)
        gdal.RasterizeLayer(ds, [1], self._layer, options=["ATTRIBUTE=cls"])
        return ds.GetRasterBand(1).ReadAsArray()


def shape_mask(grid: GridSpec, geom: ogr.Geometry) -> np.ndarray:
    """Pixels of ``grid`` whose centre lies inside ``geom`` (in the grid's CRS; any affine
    grid): the shape burned by GDAL."""
    ds = mem_dataset(grid, fill=0)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("shape")  # kept: the layer's owner
    lyr = mem.CreateLayer("shape", srs=grid.srs())
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(geom)
    lyr.CreateFeature(feat)
    gdal.RasterizeLayer(ds, [1], lyr, burn_values=[1])
    return ds.GetRasterBand(1).ReadAsArray() > 0


def extent_mask(grid: GridSpec, extent: Extent) -> np.ndarray:
    """Pixels of ``grid`` inside ``extent`` (a bbox, geometry or WKT in grid CRS units)."""
    if extent is None:
        return np.ones((grid.height, grid.width), dtype=bool)
    if isinstance(extent, ogr.Geometry):
        geom = extent.Clone()
    elif isinstance(extent, str):
        geom = ogr.CreateGeometryFromWkt(extent)
    else:
        x0, y0, x1, y1 = (float(v) for v in extent)
        geom = ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
        )
    mask = shape_mask(grid, geom)
    if not mask.any():
        raise MapRefinerError(
            "The label extent does not cover any pixel of the raster; "
            "give the extent in the raster's CRS."
        )
    return mask


def filter_to_grid(
    lyr: ogr.Layer, layer_srs: osr.SpatialReference | None, grid: GridSpec, margin_m: float
) -> None:
    """Let ``lyr`` return only features near the grid (uses the spatial index, and
    spares reprojecting far-away features)."""
    minx, miny, maxx, maxy = grid.bounds
    grid_srs = grid.srs()
    margin = 2 * max(abs(grid.geotransform[1]), abs(grid.geotransform[5]))
    if grid_srs is not None:
        margin += margin_m / min(metres_per_unit(grid))
    box = (minx - margin, miny - margin, maxx + margin, maxy + margin)
    if grid_srs is not None and layer_srs is not None and not grid_srs.IsSame(layer_srs):
        try:
            box = osr.CoordinateTransformation(grid_srs, layer_srs).TransformBounds(*box, 21)
        except RuntimeError as exc:
            log.debug("No spatial filter (the grid bounds do not transform): %s", exc)
            return
    lyr.SetSpatialFilterRect(*box)
