"""One change of a round's map, picked on the changes raster, as a correction polygon.

After a correction round the changes layer (engine/scoring/changes.py) shows where the
new map took another class than the previous one away from the drawn polygons. Where a
change is wrong (a real roof erased, a car park become a building), the user turns it
back: the connected region of that change (pixels that went from one class to the same
other class, 8-connected) becomes a polygon of the class it had before, which the plugin
adds to the correction layer. The next round learns it like any drawn polygon, and its
map keeps it (the drawn polygons are burned into the map).

Only a window of the changes raster around the picked pixel is read (REACH_PX either
side), so a pick is instant on any raster; a region larger than the window is cut at its
edge, which ChangeRegion.cut says.

A rectangle turns back every change in it at once (changes_in_area, session 41): where a
round broke a whole neighbourhood, one drag instead of a click per roof. Each class the
changed pixels had becomes one (multi)polygon, cut at the rectangle's sides. Any polygon
does the same (changes_in_shape, session 42): an outline drawn freehand around the wrong
part of a change turns back only that part.

Which changes to look at (largest_changes, session 42): the same connected changes a click
outlines, the largest first, for the iterations dock's review list and `map-refiner
changes --largest N`: a way to find what a round changed (in the correction study, a user
clicking the list's mostly wrong changes taught the next round no more than one drawing
the map's largest errors: docs/results_corrections.md "Session 42").
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..labels.burn import shape_mask
from ..labels.classes import IGNORE
from ..labels.rasters import read_block, to_labels
from ..progress import CancelFn, make_reporter
from ..rasters.grid import GridSpec, grid_of, window
from ..rasters.read import open_raster
from .changes import UNCHANGED, class_legend, pixel_area

PathLike = Union[str, Path]
#: Pixels read either side of the picked one (a window of 1025 x 1025 at most).
REACH_PX = 512
#: The largest rectangle changes_in_area reads, in pixels of the changes raster (a 1.2 km
#: square at 0.6 m; about 1.5 s on this 2-core CPU where a noisy round left 77,000 specks
#: in it, 0.1 s for a few changes: it runs on QGIS's main thread).
AREA_MAX_PX = 2048 * 2048
#: The review list (largest_changes): this many changes, the largest first (session 42:
#: over 15 second rounds the 4th mostly wrong change of a round lay at most 21 rows down,
#: dev/corrections/review_depth.py; a 10-row list left a clicking user short of four on
#: three rounds) ...
REVIEW_TOP = 25
#: ... each of at least this many pixels (specks are not worth a look) ...
REVIEW_MIN_PX = 16
#: ... found in tiles of the changes raster this many pixels a side (bounded memory on any
#: raster; a change across a tile's side is listed as its parts, each said to be cut).
REVIEW_TILE_PX = 4096
#: The review list's fields as written (write_changes_list).
LIST_FIELDS = (
    ("rank", ogr.OFTInteger),
    ("class", ogr.OFTString),
    ("became", ogr.OFTString),
    ("pixels", ogr.OFTInteger64),
    ("area_m2", ogr.OFTReal),
    ("cut", ogr.OFTInteger),
)


@dataclass(frozen=True)
class ChangeRegion:
    """A connected change: its outline in the changes raster's CRS, what it was and
    what it became."""

    wkt: str
    srs_wkt: str
    was: str  # the class it had on the previous map: the correction's class
    became: str
    pixels: int
    area_m2: float | None  # None without a CRS in metres
    cut: bool  # larger than the window read: the polygon stops at the window's edge

    def describe(self) -> str:
        size = f"{self.area_m2:,.0f} m²" if self.area_m2 is not None else f"{self.pixels} px"
        return f"{size} that became {self.became}"


def change_region_at(
    changes: PathLike, before: PathLike, x: float, y: float, reach_px: int = REACH_PX
) -> ChangeRegion | None:
    """The change under the point ``(x, y)`` (in ``changes``'s CRS) of a changes raster
    and the previous class map ``before`` it was made against (read onto its grid); None
    where nothing changed there (or the point lies off the raster)."""
    maps = _Maps.open(changes, before)
    names, grid = maps.names, maps.grid
    at = _pixel(grid, x, y)
    if at is None:
        return None
    col, row = at
    x0, y0 = max(0, col - reach_px), max(0, row - reach_px)
    x1, y1 = min(grid.width, col + reach_px + 1), min(grid.height, row + reach_px + 1)
    block = (x0, y0, x1 - x0, y1 - y0)
    k = len(names)
    code = maps.codes(block)
    picked = int(code[row - y0, col - x0])
    if picked == 0:
        return None
    outline, pixels = _component(code == picked, grid, x0, y0, (col - x0, row - y0))
    was, to = divmod(picked - 1, k)
    cut = _reaches_cut_side(outline.GetEnvelope(), grid, block)
    area = pixel_area(grid)
    return ChangeRegion(
        outline.ExportToWkt(),
        grid.projection_wkt,
        names[was],
        names[to],
        pixels,
        pixels * area if area is not None else None,
        cut,
    )


@dataclass(frozen=True)
class AreaChanges:
    """Every change inside a rectangle: per class the changed pixels had (the corrections'
    class), their outline as one (multi)polygon in the changes raster's CRS."""

    wkt_by_class: dict[str, str]  # class before -> (multi)polygon WKT
    pixels_by_class: dict[str, int]
    srs_wkt: str
    pieces: int  # its polygons: changed pixels of one class before, 4-connected
    pixel_area_m2: float | None  # None without a CRS in metres

    def describe(self) -> str:
        """What went back to which class ("23 m² back to background, 0.1 m² back to
        building"): areas, not counts (a round's specks on a fine grid are many pieces)."""
        parts = []
        for was, pixels in self.pixels_by_class.items():
            if self.pixel_area_m2 is None:
                size = f"{pixels} px"
            else:  # a few specks are not "0 m²"
                area = pixels * self.pixel_area_m2
                size = f"{area:,.0f} m²" if area >= 10 else f"{area:.1f} m²"
            parts.append(f"{size} back to {was}")
        return ", ".join(parts)


def changes_in_area(
    changes: PathLike,
    before: PathLike,
    xmin: float,
    ymin: float,
    xmax: float,
    ymax: float,
    max_px: int = AREA_MAX_PX,
) -> AreaChanges | None:
    """Every change of a changes raster whose pixel centre lies inside the rectangle
    (any two opposite corners, in ``changes``'s CRS), against the previous class map
    ``before`` (read onto its grid): per class it had, one (multi)polygon; None where
    nothing changed there."""
    xmin, xmax = sorted((xmin, xmax))
    ymin, ymax = sorted((ymin, ymax))
    ring = f"{xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}"
    return changes_in_shape(changes, before, f"POLYGON (({ring}))", max_px, "rectangle")


def changes_in_shape(
    changes: PathLike,
    before: PathLike,
    wkt: str,
    max_px: int = AREA_MAX_PX,
    what: str = "outline",
) -> AreaChanges | None:
    """Every change of a changes raster whose pixel centre lies inside the polygon ``wkt``
    (a rectangle, or an outline drawn freehand around the wrong part of a change, in
    ``changes``'s CRS), against the previous class map ``before`` (read onto its grid):
    per class it had, one (multi)polygon cut at the outline; None where nothing changed
    there. ``what`` names the shape in the message for one too large."""
    shape = ogr.CreateGeometryFromWkt(wkt)
    if shape is None or shape.IsEmpty() or shape.GetArea() <= 0:
        return None
    maps = _Maps.open(changes, before)
    names, grid = maps.names, maps.grid
    xmin, xmax, ymin, ymax = shape.GetEnvelope()
    block = _block_of(grid, xmin, ymin, xmax, ymax)
    if block is None:
        return None
    x0, y0, w, h = block
    if w * h > max_px:
        side = int(max_px**0.5)
        raise MapRefinerError(
            f"That {what} covers {w} x {h} pixels of the changes layer; draw one of at "
            f"most about {side} x {side} (or zoom in and turn the changes back in parts)."
        )
    k = len(names)
    code = np.where(shape_mask(window(grid, x0, y0, w, h), shape), maps.codes(block), 0)
    if not code.any():
        return None
    # by the class each changed pixel had, 4-connected: the polygons of one class are
    # disjoint (or meet at corners), so they make a valid multipolygon without a union
    # (slow on many specks; 8-connected ones can touch themselves at a corner)
    was = np.where(code > 0, (code - 1) // k + 1, 0).astype(np.int32)
    found = _polygons(was, grid, x0, y0)
    by_class: dict[int, ogr.Geometry] = {}
    for value, geometry in found:
        by_class.setdefault(value - 1, ogr.Geometry(ogr.wkbMultiPolygon)).AddGeometry(geometry)
    return AreaChanges(
        {names[c]: g.ExportToWkt() for c, g in sorted(by_class.items())},
        {names[c]: int((was == c + 1).sum()) for c in sorted(by_class)},
        grid.projection_wkt,
        len(found),
        pixel_area(grid),
    )


def largest_changes(
    changes: PathLike,
    before: PathLike,
    top: int = REVIEW_TOP,
    min_pixels: int = REVIEW_MIN_PX,
    tile_px: int = REVIEW_TILE_PX,
    is_cancelled: CancelFn | None = None,
) -> list[ChangeRegion]:
    """The ``top`` largest connected changes of a changes raster (each what a click on it
    turns back: pixels that went from one class to the same other class, 8-connected)
    against the previous class map ``before``, of at least ``min_pixels``, the largest
    first (ties in reading order)."""
    maps = _Maps.open(changes, before)
    names, grid = maps.names, maps.grid
    report = make_reporter(None, is_cancelled)
    k = len(names)
    cell = abs(
        grid.geotransform[1] * grid.geotransform[5] - grid.geotransform[2] * grid.geotransform[4]
    )
    kept: list[tuple[int, int, int, ogr.Geometry, tuple[int, int, int, int]]] = []
    order = 0
    for y0 in range(0, grid.height, tile_px):
        for x0 in range(0, grid.width, tile_px):
            report.check()
            block = (x0, y0, min(tile_px, grid.width - x0), min(tile_px, grid.height - y0))
            code = _without_specks(maps.codes(block), min_pixels)
            if not code.any():
                continue
            for value, geometry in _polygons(code, grid, x0, y0, eight=True):
                pixels = int(round(geometry.GetArea() / cell))
                order += 1
                if pixels >= min_pixels:  # the order breaks ties: reading order first
                    kept.append((pixels, -order, value, geometry, block))
            kept = heapq.nlargest(top, kept, key=lambda item: item[:2])
    area = pixel_area(grid)
    found = []
    for pixels, _, value, geometry, block in kept:
        was, to = divmod(value - 1, k)
        valid = geometry if geometry.IsValid() else geometry.MakeValid()
        found.append(
            ChangeRegion(
                valid.ExportToWkt(),
                grid.projection_wkt,
                names[was],
                names[to],
                pixels,
                pixels * area if area is not None else None,
                _reaches_cut_side(geometry.GetEnvelope(), grid, block),
            )
        )
    return found


def write_changes_list(
    changes: Sequence[ChangeRegion],
    srs_wkt: str,
    out: PathLike,
    inputs: Sequence[PathLike] = (),
    overwrite: bool = False,
) -> Path:
    """The review list as polygons in a GeoPackage or Shapefile (written atomically; never
    one of ``inputs``): ``rank``, ``class`` (the class each change had: what a correction
    turning it back says, so that chosen features paste into a correction layer whose
    class field is ``class``), ``became``, ``pixels``, ``area_m2`` (empty without a CRS in
    metres) and ``cut`` (1: across a tile's side, listed as its part), in ``srs_wkt``."""
    from ..vectors.write import VectorTarget

    target = VectorTarget.for_path(out, inputs, overwrite)
    srs = osr.SpatialReference(wkt=srs_wkt) if srs_wkt else None
    if srs is not None:
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    with target.writing(srs, ogr.wkbMultiPolygon) as layer:
        with target.write_errors():
            for name, kind in LIST_FIELDS:
                layer.CreateField(ogr.FieldDefn(name, kind))
        defn = layer.GetLayerDefn()
        for rank, change in enumerate(changes, start=1):
            feature = ogr.Feature(defn)
            values = (rank, change.was, change.became, change.pixels, change.area_m2, change.cut)
            for (name, _), value in zip(LIST_FIELDS, values):
                if value is not None:
                    feature.SetField(name, int(value) if isinstance(value, bool) else value)
            geometry = ogr.CreateGeometryFromWkt(change.wkt)
            feature.SetGeometry(ogr.ForceToMultiPolygon(geometry))
            with target.write_errors():
                layer.CreateFeature(feature)
    return target.path


def _without_specks(code: np.ndarray, min_pixels: int) -> np.ndarray:
    """``code`` with its changed pixels that lie in 8-connected groups of changes under
    ``min_pixels`` set to 0, by GDAL's sieve (fast): the list needs no polygon of them,
    and a noisy round's specks by the million would take minutes to polygonize (a 4096 px
    square of noise: 50 s). Each remaining change is still counted on its own after."""
    if min_pixels <= 1:
        return code
    height, width = code.shape
    mem = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Byte)
    band = mem.GetRasterBand(1)
    band.WriteArray((code > 0).astype(np.uint8))
    # the unchanged pixels are polygons too: a small group of changes merges into them,
    # a small hole in a change fills (its code stays 0 below)
    gdal.SieveFilter(band, None, band, min_pixels, 8)
    return np.where(band.ReadAsArray() > 0, code, 0)


@dataclass
class _Maps:
    """A changes raster and the previous class map it was made against, open, with the
    previous map's class names and the changes raster's grid."""

    changes: gdal.Dataset
    before: gdal.Dataset
    before_name: str
    names: list[str]
    grid: GridSpec

    @classmethod
    def open(cls, changes: PathLike, before: PathLike) -> _Maps:
        changes_ds, before_ds = open_raster(changes), open_raster(before)
        legend = class_legend(before_ds)
        if legend is None:
            raise MapRefinerError(
                f"{Path(before).name} does not name its classes, so changes cannot be "
                "turned back to them; refine again to write a map that does."
            )
        return cls(changes_ds, before_ds, Path(before).name, legend[0], grid_of(changes_ds))

    def codes(self, block: tuple[int, int, int, int]) -> np.ndarray:
        """``block`` of the changes raster as ``class before x K + class after + 1``
        (int32), 0 where nothing changed or either map has no class."""
        k = len(self.names)
        became = self.changes.GetRasterBand(1).ReadAsArray(*block).astype(np.int32)
        old = to_labels(*read_block(self.before, self.grid, block), None, self.before_name)
        valid = (became != UNCHANGED) & (became <= k) & (old != IGNORE) & (old < k)
        return np.where(valid, old.astype(np.int32) * k + became, 0)  # became is class + 1


def _block_of(
    grid: GridSpec, xmin: float, ymin: float, xmax: float, ymax: float
) -> tuple[int, int, int, int] | None:
    """The window (x0, y0, width, height) of the raster's pixels around a rectangle in its
    CRS (its corners' pixel bounding box, clipped to the raster); None off the raster."""
    inverse = gdal.InvGeoTransform(grid.geotransform)
    if inverse is None:
        return None
    corners = [gdal.ApplyGeoTransform(inverse, x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    if not all(math.isfinite(v) for v in cols + rows):
        return None
    x0, x1 = max(0, int(math.floor(min(cols)))), min(grid.width, int(math.ceil(max(cols))))
    y0, y1 = max(0, int(math.floor(min(rows)))), min(grid.height, int(math.ceil(max(rows))))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _polygons(
    code: np.ndarray, grid: GridSpec, x0: int, y0: int, eight: bool = False
) -> list[tuple[int, ogr.Geometry]]:
    """The regions of equal non-zero ``code`` (a window at ``x0``, ``y0``) as polygons on
    the raster's grid, with their code: 4-connected (valid), or ``eight``-connected (a
    ring can then touch itself at a corner)."""
    height, width = code.shape
    mem = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(window(grid, x0, y0, width, height).geotransform)
    band = mem.GetRasterBand(1)
    band.WriteArray(code.astype(np.int32, copy=False))
    source = ogr.GetDriverByName("Memory").CreateDataSource("")  # kept: the layer's owner
    layer = source.CreateLayer("regions")
    layer.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0, ["8CONNECTED=8"] if eight else [])  # 0: no region
    return [(int(f.GetField(0)), f.GetGeometryRef().Clone()) for f in layer]


def _pixel(grid: GridSpec, x: float, y: float) -> tuple[int, int] | None:
    inverse = gdal.InvGeoTransform(grid.geotransform)
    if inverse is None:
        return None
    px, py = gdal.ApplyGeoTransform(inverse, x, y)
    if not (math.isfinite(px) and math.isfinite(py)):
        return None
    col, row = int(math.floor(px)), int(math.floor(py))
    if not (0 <= col < grid.width and 0 <= row < grid.height):
        return None
    return col, row


def _component(
    mask: np.ndarray, grid: GridSpec, x0: int, y0: int, at: tuple[int, int]
) -> tuple[ogr.Geometry, int]:
    """The 8-connected part of ``mask`` holding pixel ``at`` (window coordinates), as a
    polygon on the raster's grid, and its pixel count."""
    gt = window(grid, x0, y0, *mask.shape[::-1]).geotransform
    cx, cy = gdal.ApplyGeoTransform(gt, at[0] + 0.5, at[1] + 0.5)
    point = ogr.Geometry(ogr.wkbPoint)
    point.AddPoint_2D(cx, cy)
    for _, geometry in _polygons(mask.astype(np.int32), grid, x0, y0, eight=True):
        if geometry.Contains(point):
            pixels = int(round(geometry.GetArea() / abs(gt[1] * gt[5] - gt[2] * gt[4])))
            if not geometry.IsValid():  # an 8-connected ring touching itself at a corner
                return geometry.MakeValid(), pixels
            return geometry, pixels
    raise MapRefinerError("The picked change could not be outlined.")  # not reached


def _reaches_cut_side(
    env: tuple[float, float, float, float], grid: GridSpec, block: tuple[int, int, int, int]
) -> bool:
    """Whether an outline's envelope (minx, maxx, miny, maxy) touches a side of the window
    read that is not the raster's own edge (north-up grids; a rotated grid is never said
    to be cut)."""
    gt = grid.geotransform
    if gt[2] or gt[4]:
        return False
    x0, y0, w, h = block
    tol = min(abs(gt[1]), abs(gt[5])) / 2

    def touches(value: float, low: float, high: float) -> bool:
        return abs(low - value) < tol or abs(high - value) < tol

    sides = [
        (x0 > 0, touches(gt[0] + x0 * gt[1], env[0], env[1])),
        (x0 + w < grid.width, touches(gt[0] + (x0 + w) * gt[1], env[0], env[1])),
        (y0 > 0, touches(gt[3] + y0 * gt[5], env[2], env[3])),
        (y0 + h < grid.height, touches(gt[3] + (y0 + h) * gt[5], env[2], env[3])),
    ]
    return any(inside and touching for inside, touching in sides)
