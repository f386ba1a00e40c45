"""Turning one vector feature's geometry into burnable polygons on a grid's CRS.

Polygons are repaired and reprojected; lines (roads) are buffered to a width
in ground metres, in the grid CRS when its unit is a ground metre, else in a
local azimuthal equidistant projection centred on the grid; points are not
burnable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from osgeo import gdal, ogr, osr

from ..rasters.grid import GridSpec, is_metric, local_metric_srs

ogr.UseExceptions()
log = logging.getLogger(__name__)
_POLYGONS = (ogr.wkbPolygon, ogr.wkbMultiPolygon)
_LINES = (ogr.wkbLineString, ogr.wkbMultiLineString, ogr.wkbLinearRing)
_POINTS = (ogr.wkbPoint, ogr.wkbMultiPoint)


@dataclass
class GeometryPrep:
    """Transforms from the layer's CRS, built once per layer."""

    to_grid: osr.CoordinateTransformation | None
    to_buffer: osr.CoordinateTransformation | None
    buffer_to_grid: osr.CoordinateTransformation | None
    half_width: float

    def burnable(self, geom: ogr.Geometry) -> list[ogr.Geometry]:
        """Polygons in the grid CRS for one feature's geometry; ``[]`` for points."""
        out: list[ogr.Geometry] = []
        for part in _simple_parts(_plain(geom)):
            kind = ogr.GT_Flatten(part.GetGeometryType())
            if kind in _POLYGONS:
                out.extend(_polygons(_transformed(_repaired(part), self.to_grid)))
            elif kind in _LINES and self.half_width > 0:
                line = _transformed(part, self.to_buffer)
                out.extend(
                    _polygons(_transformed(line.Buffer(self.half_width), self.buffer_to_grid))
                )
        return [g for g in out if not g.IsEmpty()]


def make_prep(
    layer_srs: osr.SpatialReference | None, grid: GridSpec, line_width_m: float
) -> GeometryPrep:
    """Transforms for a layer whose CRS is ``layer_srs`` (None: the grid's CRS)."""
    grid_srs = grid.srs()
    to_grid = _transform(layer_srs, grid_srs)
    if grid_srs is None:
        log.warning("The raster has no CRS; line widths are taken in its own units.")
        return GeometryPrep(to_grid, to_grid, None, line_width_m / 2)
    if is_metric(grid):
        return GeometryPrep(to_grid, to_grid, None, line_width_m / 2)
    local = local_metric_srs(grid)
    return GeometryPrep(
        to_grid,
        _transform(layer_srs or grid_srs, local),
        osr.CoordinateTransformation(local, grid_srs),
        line_width_m / 2,
    )


def is_point(geom: ogr.Geometry) -> bool:
    return ogr.GT_Flatten(geom.GetGeometryType()) in _POINTS


def _transform(
    src: osr.SpatialReference | None, dst: osr.SpatialReference | None
) -> osr.CoordinateTransformation | None:
    if src is None or dst is None or src.IsSame(dst):
        return None
    return osr.CoordinateTransformation(src, dst)


def _plain(geom: ogr.Geometry) -> ogr.Geometry:
    """A 2D, non-measured, linear copy (curves approximated)."""
    g = geom.GetLinearGeometry() if geom.HasCurveGeometry() else geom.Clone()
    g.FlattenTo2D()
    g.SetMeasured(False)
    return g


def _simple_parts(geom: ogr.Geometry) -> Iterator[ogr.Geometry]:
    """Polygons, multipolygons, lines and points; collections are opened up."""
    if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbGeometryCollection:
        for i in range(geom.GetGeometryCount()):
            yield from _simple_parts(geom.GetGeometryRef(i).Clone())
    elif not geom.IsEmpty():
        yield geom


def _repaired(geom: ogr.Geometry) -> ogr.Geometry:
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # GEOS explains each invalidity on stderr
    try:
        valid = geom.IsValid()
    finally:
        gdal.PopErrorHandler()
    if valid:
        return geom
    try:
        fixed = geom.MakeValid()
    except (RuntimeError, AttributeError):
        fixed = None
    return fixed if fixed is not None else geom.Buffer(0)


def _transformed(geom: ogr.Geometry, ct: osr.CoordinateTransformation | None) -> ogr.Geometry:
    if ct is not None:
        geom = geom.Clone()
        geom.Transform(ct)
    return geom


def _polygons(geom: ogr.Geometry) -> Iterator[ogr.Geometry]:
    """The polygonal parts (MakeValid may add stray lines or points)."""
    for part in _simple_parts(geom):
        if ogr.GT_Flatten(part.GetGeometryType()) in _POLYGONS:
            yield part
