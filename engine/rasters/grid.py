"""Pixel grids: size, geotransform and CRS, independent of any file.

Labels, scores and the model's coarser grid are all expressed on a
:class:`GridSpec`, so a vector, a mask or a prediction can be brought onto the
image's pixels (or the model's) the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from osgeo import gdal, osr

from ..errors import MapRefinerError

gdal.UseExceptions()
osr.UseExceptions()
METRIC_TOLERANCE = 0.005  # a CRS whose unit is within 0.5 % of a ground metre counts as metric


@dataclass(frozen=True)
class GridSpec:
    """A raster grid: ``width`` x ``height`` pixels placed by a GDAL geotransform."""

    width: int
    height: int
    geotransform: tuple[float, float, float, float, float, float]
    projection_wkt: str = ""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the four corners, in grid CRS units."""
        gt = self.geotransform
        xs, ys = [], []
        for px, py in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height)):
            xs.append(gt[0] + px * gt[1] + py * gt[2])
            ys.append(gt[3] + px * gt[4] + py * gt[5])
        return min(xs), min(ys), max(xs), max(ys)

    def srs(self) -> osr.SpatialReference | None:
        """The grid's CRS in traditional GIS (x = easting/longitude) order, or None."""
        return srs_from_wkt(self.projection_wkt)


def srs_from_wkt(wkt: str) -> osr.SpatialReference | None:
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def grid_of(ds: gdal.Dataset) -> GridSpec:
    """The grid of an open raster."""
    from .read import geotransform

    return GridSpec(ds.RasterXSize, ds.RasterYSize, geotransform(ds), ds.GetProjection() or "")


def scaled(grid: GridSpec, width: int, height: int) -> GridSpec:
    """The same extent as ``grid`` cut into ``width`` x ``height`` pixels (e.g. the model grid)."""
    if width < 1 or height < 1:
        raise MapRefinerError(f"A grid needs at least one pixel each way, not {width}x{height}.")
    gt = grid.geotransform
    fx, fy = grid.width / width, grid.height / height
    return GridSpec(
        width,
        height,
        (gt[0], gt[1] * fx, gt[2] * fy, gt[3], gt[4] * fx, gt[5] * fy),
        grid.projection_wkt,
    )


def window(grid: GridSpec, x0: int, y0: int, width: int, height: int) -> GridSpec:
    """The ``width`` x ``height`` pixels of ``grid`` from column ``x0``, row ``y0``."""
    gt = grid.geotransform
    return GridSpec(
        width,
        height,
        (
            gt[0] + x0 * gt[1] + y0 * gt[2],
            gt[1],
            gt[2],
            gt[3] + x0 * gt[4] + y0 * gt[5],
            gt[4],
            gt[5],
        ),
        grid.projection_wkt,
    )


def same_grid(a: GridSpec, b: GridSpec) -> bool:
    """True when pixels coincide (CRSs equal, or one of them unknown)."""
    if (a.width, a.height) != (b.width, b.height):
        return False
    tol = 1e-3 * max(abs(a.geotransform[1]), abs(a.geotransform[5]), 1e-12)
    if any(abs(p - q) > tol for p, q in zip(a.geotransform, b.geotransform)):
        return False
    sa, sb = a.srs(), b.srs()
    return sa is None or sb is None or bool(sa.IsSame(sb))


def lattice_offset(a: GridSpec, b: GridSpec) -> tuple[int, int] | None:
    """Where ``b``'s first pixel lies among ``a``'s pixels (columns, rows) when both grids
    are windows of one pixel lattice (the same CRS, pixel size and rotation, origins a
    whole number of pixels apart: a crop of an image, a mosaic of its tiles, another fetch
    of a tiled web map); None otherwise."""
    ga, gb = a.geotransform, b.geotransform
    tol = 1e-6 * max(abs(ga[1]), abs(ga[5]), 1e-12)
    if any(abs(ga[i] - gb[i]) > tol for i in (1, 2, 4, 5)):
        return None
    sa, sb = a.srs(), b.srs()
    if (sa is None) != (sb is None) or (sa is not None and not sa.IsSame(sb)):
        return None
    inv = gdal.InvGeoTransform(ga)
    if inv is None:
        return None
    px = inv[0] + gb[0] * inv[1] + gb[3] * inv[2]
    py = inv[3] + gb[0] * inv[4] + gb[3] * inv[5]
    dx, dy = round(px), round(py)
    if abs(px - dx) > 1e-3 or abs(py - dy) > 1e-3:
        return None
    return int(dx), int(dy)


def mem_dataset(grid: GridSpec, dtype: int = gdal.GDT_Byte, fill: float = 0) -> gdal.Dataset:
    """An in-memory single-band raster on ``grid``, filled with ``fill``."""
    ds = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, dtype)
    ds.SetGeoTransform(grid.geotransform)
    if grid.projection_wkt:
        ds.SetProjection(grid.projection_wkt)
    ds.GetRasterBand(1).Fill(fill)
    return ds


def metres_per_unit(grid: GridSpec) -> tuple[float, float]:
    """Ground metres per CRS unit along x and y at the grid centre (on the ellipsoid)."""
    srs = grid.srs()
    if srs is None:
        raise MapRefinerError(
            "The grid has no CRS, so distances in metres are unknown; "
            "assign a CRS to the raster first."
        )
    # distances from the centre of an azimuthal equidistant projection are geodesic
    to_local = osr.CoordinateTransformation(srs, local_metric_srs(grid))
    minx, miny, maxx, maxy = grid.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    gt = grid.geotransform
    step = min(math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5]))
    x0, y0, _ = to_local.TransformPoint(cx, cy)
    out = []
    for dx, dy in ((step, 0.0), (0.0, step)):
        x1, y1, _ = to_local.TransformPoint(cx + dx, cy + dy)
        out.append(math.hypot(x1 - x0, y1 - y0) / step)
    return out[0], out[1]


def is_metric(grid: GridSpec) -> bool:
    """True when a CRS unit is a ground metre near the grid (UTM yes; degrees, Web Mercator no)."""
    srs = grid.srs()
    if srs is None or not srs.IsProjected() or abs(srs.GetLinearUnits() - 1.0) > 1e-9:
        return False
    return all(abs(m - 1.0) <= METRIC_TOLERANCE for m in metres_per_unit(grid))


def local_metric_srs(grid: GridSpec, equal_area: bool = False) -> osr.SpatialReference:
    """A projection in metres centred on the grid, on the grid's own datum.

    Azimuthal equidistant (true distances from the centre) for buffering, or
    Lambert azimuthal equal-area for areas.
    """
    srs = grid.srs()
    if srs is None:
        raise MapRefinerError(
            "The grid has no CRS, so distances in metres are unknown; "
            "assign a CRS to the raster first."
        )
    minx, miny, maxx, maxy = grid.bounds
    geog = srs.CloneGeogCS()
    geog.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_geog = osr.CoordinateTransformation(srs, geog)
    lon, lat, _ = to_geog.TransformPoint((minx + maxx) / 2, (miny + maxy) / 2)
    local = osr.SpatialReference()
    local.CopyGeogCSFrom(geog)
    if equal_area:
        local.SetLAEA(lat, lon, 0, 0)
    else:
        local.SetAE(lat, lon, 0, 0)
    local.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return local
