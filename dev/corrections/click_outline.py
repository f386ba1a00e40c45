"""Session 44's probe of a click tool: an object's outline from one click on the image,
a cheaper way to draw a correction than tracing it. Built, measured and NOT put into the
product: fine-tunes on such outlines taught next to nothing (the new user's study, 48
rounds over three seeds: +9.1 summed against +415.7 from traced polygons, 19 rounds below
their start against 3; docs/results_corrections.md "Session 44"). The study's ``click``
drawing (users.clicked) and click_probe use it.

The user clicks inside an object the map has wrong (a missed roof, a car park taken for a
building). Around the click a window of the image (REACH_M each way) is read, averaged down
to at most WORK_PX pixels a side, its bands scaled by their spread in the window and
median-filtered. Each pixel's colour distance to the click's colour is a height; the
height at which a pixel joins the click's region, growing through 4-connected pixels, is
its minimax distance (the lowest, over the paths from the click, of the highest height on
the path: minimax_from). The region at a height t is every pixel whose minimax distance is
at most t, so one map gives the regions of every tolerance. The tolerance kept is the one
whose region's outline lies on the strongest colour edges for its shape (edge_tolerance:
the mean edge strength along the outline times the square root of the region's
compactness, so a region that leaks along a road of the roof's colour loses to the roof),
among regions of at least MIN_AREA_M2 and at most MAX_SHARE of the window. One-pixel
bridges to look-alike neighbours are cut (an opening), holes filled, and the outline is
simplified and kept half a working pixel inside the object's edges (a polygon that spills
over teaches the model the wrong edge).

Nothing is learnt: it is the image's own colours, so a roof in two tones may come back as
the part clicked (click the rest too), an object the colour of its surroundings as a
small patch or a leak, and an object larger than the window cut at its side (``cut``).
Session 44 chose the rule from three on the largest errors of every shared scene
(`python -m map_refiner.dev.corrections.click_probe`; the most stable region, as in
maximally stable extremal regions, leaked along roads and yards of the roof's colour);
docs/results_corrections.md "Session 44" measures how close the outlines come to what a
careful user traces and what a fine-tune learns from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, ogr

from ...engine.errors import MapRefinerError
from ...engine.rasters.grid import GridSpec, grid_of, mem_dataset, scaled, window
from ...engine.rasters.read import (
    check_bands,
    geotransform,
    ground_resolution,
    open_image,
    raster_info,
    read_window,
)

gdal.UseExceptions()
ogr.UseExceptions()
PathLike = Union[str, Path]

#: How far from the click the image is read, each way (metres): buildings up to about
#: twice this across come back whole.
REACH_M = 30.0
#: The window is worked on at most this many pixels a side (averaged down from finer
#: imagery: a 60 m window of 8 cm drone imagery is 750 pixels).
WORK_PX = 256
#: The smallest region offered (square metres of ground).
MIN_AREA_M2 = 2.0
#: The largest region offered, as a share of the window.
MAX_SHARE = 0.5
#: Tolerances tried grow by this factor each step.
STEP = 1.08
#: The outline is moved this many working pixels in (see _polygon).
INSET_PX = 0.5
#: How much a region's compactness weighs against the edges its outline lies on.
COMPACT_POWER = 0.5


@dataclass(frozen=True)
class ClickOutline:
    """One object's outline: a polygon in the image's CRS."""

    wkt: str
    srs_wkt: str
    area_m2: float
    cut: bool  # the region reached the read window's side (the object may go on)
    tolerance: float  # the colour distance kept (in the window's band spreads)

    def describe(self) -> str:
        return f"{self.area_m2:,.0f} m²"


def outline_at(
    image: PathLike,
    x: float,
    y: float,
    bands: Sequence[int] = (1, 2, 3),
    reach_m: float = REACH_M,
) -> ClickOutline:
    """The outline of the object of ``image`` under the point ``x, y`` (in the image's
    CRS), grown from the click's colour (module docstring). Raises MapRefinerError when
    the point lies outside the image or on no data, or no region holds there."""
    ds = open_image(image)
    info = raster_info(ds)
    name = Path(str(image)).name
    bands = list(bands)
    if max(bands) > info.band_count or min(bands) < 1:
        raise MapRefinerError(
            f"{name} has {info.band_count} band(s); the outline reads bands "
            f"{', '.join(map(str, bands))}."
        )
    check_bands(info, bands)
    gt = geotransform(ds)
    inv = gdal.InvGeoTransform(gt)
    col = inv[0] + inv[1] * x + inv[2] * y
    row = inv[3] + inv[4] * x + inv[5] * y
    if not (0 <= col < info.width and 0 <= row < info.height):
        raise MapRefinerError(f"The point clicked lies outside {name}: click on the image.")
    pixel_m = float(np.mean(ground_resolution(info)))
    half = max(8, math.ceil(reach_m / pixel_m))
    c, r = int(col), int(row)
    wanted = min(info.width, 2 * half + 1), min(info.height, 2 * half + 1)
    f = max(1, min(math.ceil(max(wanted) / WORK_PX), min(wanted)))
    x0, w = _span(c, half, info.width, f)
    y0, h = _span(r, half, info.height, f)
    data, valid = read_window(ds, bands, x0, y0, w, h)
    seed = ((r - y0) // f, (c - x0) // f)
    if not valid[r - y0, c - x0]:
        raise MapRefinerError(f"{name} has no data where you clicked: click on the image.")
    feats, ok = _worked(data, valid, f)
    dist = _colour_distance(feats, ok, seed)
    minimax = minimax_from(dist, seed)
    area_px = MIN_AREA_M2 / (pixel_m * f) ** 2
    limits = max(4.0, area_px), MAX_SHARE * minimax.size
    tolerance = edge_tolerance(minimax, edge_strength(feats, ok), *limits)
    region = _cleaned(minimax <= tolerance, seed, limits[0])
    worked = scaled(window(grid_of(ds), x0, y0, w, h), w // f, h // f)
    geometry = _polygon(region, worked, seed)
    if geometry is None:
        raise MapRefinerError(
            f"No object stands out around that point of {name}: draw it by hand instead."
        )
    at_side = [(x0 > 0, region[:, 0]), (y0 > 0, region[0, :])]
    at_side += [(x0 + w < info.width, region[:, -1]), (y0 + h < info.height, region[-1, :])]
    cut = any(inside and bool(edge.any()) for inside, edge in at_side)
    return ClickOutline(
        wkt=geometry.ExportToWkt(),
        srs_wkt=info.projection,
        area_m2=float(region.sum()) * (pixel_m * f) ** 2,
        cut=cut,
        tolerance=float(tolerance),
    )


def _span(centre: int, half: int, size: int, f: int) -> tuple[int, int]:
    """Start and length (a multiple of ``f``, at most about ``2 half + f``) of a span of
    ``size`` pixels around ``centre``, the centre inside it."""
    start, end = max(0, centre - half), min(size, centre + half + 1)
    extra = (-(end - start)) % f
    grow = min(extra, size - end)
    end += grow
    start = max(0, start - (extra - grow))
    length = (end - start) // f * f
    if centre - start >= length:  # the image's end cut a block: align on the far side
        start = end - length
    return start, length


def _worked(data: np.ndarray, valid: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """The window averaged over ``f`` x ``f`` blocks (a block with any no data is no data),
    each band scaled by its spread (the 16th to 84th percentile) and median-filtered 3 x 3
    (texture smoothed, edges kept where they are, one-pixel lines such as wires gone)."""
    c, h, w = data.shape
    blocks = data.reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))
    ok = valid.reshape(h // f, f, w // f, f).all(axis=(1, 3))
    if ok.sum() >= 16:
        low, mid, high = np.percentile(blocks[:, ok], [16, 50, 84], axis=1)
        spread = np.maximum((high - low) / 2, 1e-6 * np.maximum(1.0, np.abs(mid)))
        blocks = (blocks - mid[:, None, None]) / spread[:, None, None]
    padded = np.pad(blocks, ((0, 0), (1, 1), (1, 1)), mode="edge")
    hh, ww = blocks.shape[1:]
    near = np.stack([padded[:, dy : dy + hh, dx : dx + ww] for dy in range(3) for dx in range(3)])
    return np.median(near, axis=0).astype(np.float32), ok


def _colour_distance(feats: np.ndarray, ok: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """Each working pixel's distance in colour to the click's (the median of its 3 x 3
    neighbourhood's valid pixels); infinite on no data."""
    sy, sx = seed
    near = feats[:, max(0, sy - 1) : sy + 2, max(0, sx - 1) : sx + 2]
    near_ok = ok[max(0, sy - 1) : sy + 2, max(0, sx - 1) : sx + 2]
    colour = np.median(near[:, near_ok], axis=1) if near_ok.any() else feats[:, sy, sx]
    dist = np.sqrt(((feats - colour[:, None, None]) ** 2).sum(axis=0))
    return np.where(ok, dist, np.inf).astype(np.float32)


def minimax_from(height: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """For every pixel, the lowest over 4-connected paths from ``seed`` of the highest
    ``height`` on the path (infinite where no finite path reaches): the level at which it
    joins the seed's region. Relaxed until nothing changes (each pass lowers a pixel to the
    larger of its height and its lowest neighbour's level)."""
    level = np.full(height.shape, np.inf, dtype=np.float32)
    level[seed] = height[seed]
    limit = 4 * sum(height.shape)
    for i in range(limit):
        low = level.copy()
        np.minimum(low[1:], level[:-1], out=low[1:])
        np.minimum(low[:-1], level[1:], out=low[:-1])
        np.minimum(low[:, 1:], level[:, :-1], out=low[:, 1:])
        np.minimum(low[:, :-1], level[:, 1:], out=low[:, :-1])
        new = np.maximum(height, low)
        new[seed] = height[seed]
        if i % 8 == 7 and np.array_equal(new, level):
            break
        level = new
    return level


def edge_strength(feats: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The colour gradient's magnitude at each working pixel (central differences over the
    bands; 0 on no data)."""
    gy = np.zeros_like(feats)
    gx = np.zeros_like(feats)
    gy[:, 1:-1] = (feats[:, 2:] - feats[:, :-2]) / 2
    gx[:, :, 1:-1] = (feats[:, :, 2:] - feats[:, :, :-2]) / 2
    return np.where(ok, np.sqrt((gy**2 + gx**2).sum(axis=0)), 0.0).astype(np.float32)


def edge_tolerance(minimax: np.ndarray, edges: np.ndarray, min_px: float, max_px: float) -> float:
    """The level whose region (pixels at or below it) has its outline on the strongest
    edges for its shape: the mean of ``edges`` over the pixels either side of its
    outline, times the square root of its compactness (4 pi area / perimeter², at most 1;
    a region that leaks along a road is long and ragged), the highest among the regions
    of ``min_px`` to ``max_px`` pixels, levels a STEP apart."""
    levels = np.sort(minimax[np.isfinite(minimax)].ravel())
    if levels.size == 0:
        return float(minimax.min())
    start = max(float(levels[min(levels.size - 1, max(0, math.ceil(min_px) - 1))]), 1e-3)
    end = float(levels[min(levels.size - 1, max(0, int(max_px) - 1))])
    best, best_t = -1.0, start
    t = start
    while t <= max(start, end) * (1 + 1e-6):
        inside = minimax <= t
        band = np.zeros_like(inside)
        across = inside[1:] != inside[:-1]  # an outline between two rows
        band[1:] |= across
        band[:-1] |= across
        along = inside[:, 1:] != inside[:, :-1]  # between two columns
        band[:, 1:] |= along
        band[:, :-1] |= along
        if band.any():
            perimeter = max(1.0, float(band.sum()) / 2.0)
            compact = min(1.0, 4 * math.pi * float(inside.sum()) / perimeter**2)
            score = float(edges[band].mean()) * compact**COMPACT_POWER
            if score > best:
                best, best_t = score, t
        t *= STEP
    return best_t


def _cleaned(region: np.ndarray, seed: tuple[int, int], min_px: float) -> np.ndarray:
    """``region`` opened with a 3 x 3 cross (one-pixel bridges cut) and kept where it
    joins the seed; the region as grown when the opening takes the seed's pixel away or
    leaves it under ``min_px`` pixels (a thin object: a wall, a narrow roof)."""
    eroded = region.copy()
    eroded[1:] &= region[:-1]
    eroded[:-1] &= region[1:]
    eroded[:, 1:] &= region[:, :-1]
    eroded[:, :-1] &= region[:, 1:]
    opened = eroded.copy()
    opened[1:] |= eroded[:-1]
    opened[:-1] |= eroded[1:]
    opened[:, 1:] |= eroded[:, :-1]
    opened[:, :-1] |= eroded[:, 1:]
    opened &= region
    if not opened[seed]:
        opened = region
    joined = np.isfinite(minimax_from(np.where(opened, 0.0, np.inf).astype(np.float32), seed))
    if joined.sum() < min_px:
        return np.isfinite(minimax_from(np.where(region, 0.0, np.inf).astype(np.float32), seed))
    return joined


def _polygon(region: np.ndarray, grid: GridSpec, seed: tuple[int, int]) -> ogr.Geometry | None:
    """The region's outline in the window's coordinates (``grid``, the working pixels), its
    holes filled, simplified and moved INSET_PX working pixels in; None when nothing is
    left."""
    gt = grid.geotransform
    mem = mem_dataset(grid)
    band = mem.GetRasterBand(1)
    band.WriteArray(region.astype(np.uint8))
    vds = ogr.GetDriverByName("Memory").CreateDataSource("outline")
    layer = vds.CreateLayer("outline", None, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)
    step = math.hypot(gt[1], gt[4])
    sy, sx = seed
    point = ogr.Geometry(ogr.wkbPoint)
    point.AddPoint_2D(
        gt[0] + (sx + 0.5) * gt[1] + (sy + 0.5) * gt[2],
        gt[3] + (sx + 0.5) * gt[4] + (sy + 0.5) * gt[5],
    )
    best = None
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or not geometry.Contains(point):
            continue
        outer = ogr.Geometry(ogr.wkbPolygon)
        outer.AddGeometry(geometry.GetGeometryRef(0).Clone())  # holes filled
        best = outer
        break
    if best is None:
        return None
    shaped = best.SimplifyPreserveTopology(0.5 * step).Buffer(-INSET_PX * step, 2)
    if shaped is None or shaped.IsEmpty():
        shaped = best.SimplifyPreserveTopology(0.5 * step)
    if shaped.GetGeometryType() == ogr.wkbMultiPolygon:  # the inward move split it
        parts = [shaped.GetGeometryRef(i) for i in range(shaped.GetGeometryCount())]
        hit = [p for p in parts if p.Distance(point) == 0]
        shaped = (hit or sorted(parts, key=lambda p: -p.GetArea()))[0].Clone()
    return shaped if not shaped.IsEmpty() else None
