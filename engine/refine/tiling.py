"""Tile plans: output tiles on the input grid and the model-grid windows they need.

Every output tile is computed independently: its model window carries a halo
at least as wide as the networks' receptive field and starts on the coarse
network's stride lattice, so stitched tiles equal the one-piece result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..limits import check_scale
from ..networks.models import COARSE_STRIDE, receptive_radius
from .resample import source_range


@dataclass(frozen=True)
class Grids:
    """The input raster's grid and the model's grid over the same extent."""

    width: int
    height: int
    model_width: int
    model_height: int

    @property
    def scale_x(self) -> float:
        return self.model_width / self.width

    @property
    def scale_y(self) -> float:
        return self.model_height / self.height


def make_grids(
    width: int, height: int, res_x_m: float, res_y_m: float, model_res_m: float
) -> Grids:
    check_scale(res_x_m, res_y_m, model_res_m)
    mw = max(1, int(round(width * res_x_m / model_res_m)))
    mh = max(1, int(round(height * res_y_m / model_res_m)))
    return Grids(width, height, mw, mh)


@dataclass(frozen=True)
class Tile:
    """One output tile ``[x0, x1) x [y0, y1)`` on the input grid and its model window."""

    x0: int
    y0: int
    x1: int
    y1: int
    mx0: int
    my0: int
    mx1: int
    my1: int


def _align_down(v: int) -> int:
    return (v // COARSE_STRIDE) * COARSE_STRIDE


def _model_span(o0: int, o1: int, scale: float, n_model: int, halo: int) -> tuple[int, int]:
    """Model pixels needed (with halo) to resample outputs ``[o0, o1)`` back to the input grid.

    When the model grid is finer than the input, the way back is a widened
    (area-aware) kernel, so the footprint comes from the resampler itself.
    """
    lo, hi = source_range(o0, o1, 1.0 / scale, n_model)
    start = _align_down(max(0, lo - halo))
    stop = min(n_model, hi + halo)
    return start, max(stop, start + 1)


def halo_for(iterations: int) -> int:
    r = receptive_radius(iterations) + 2
    return int(math.ceil(r / COARSE_STRIDE)) * COARSE_STRIDE


def plan_tiles(grids: Grids, iterations: int, tile_model_px: int = 512) -> Iterator[Tile]:
    """Output tiles covering the input raster, row by row."""
    halo = halo_for(iterations)
    step_x = max(1, int(tile_model_px / grids.scale_x))
    step_y = max(1, int(tile_model_px / grids.scale_y))
    for y0 in range(0, grids.height, step_y):
        y1 = min(grids.height, y0 + step_y)
        my0, my1 = _model_span(y0, y1, grids.scale_y, grids.model_height, halo)
        for x0 in range(0, grids.width, step_x):
            x1 = min(grids.width, x0 + step_x)
            mx0, mx1 = _model_span(x0, x1, grids.scale_x, grids.model_width, halo)
            yield Tile(x0, y0, x1, y1, mx0, my0, mx1, my1)


def count_tiles(grids: Grids, tile_model_px: int = 512) -> int:
    sx = max(1, int(tile_model_px / grids.scale_x))
    sy = max(1, int(tile_model_px / grids.scale_y))
    return math.ceil(grids.width / sx) * math.ceil(grids.height / sy)


def lattice(size: int, side: int, windows: int) -> list[int]:
    """Starts of ``windows`` windows of ``side`` pixels spread evenly along an axis of
    ``size`` (first at 0, last at the end; one at 0 when ``side`` covers the axis)."""
    return [int((size - min(side, size)) * f / max(1, windows - 1)) for f in range(windows)]


def lattice_tiles(
    grids: Grids, iterations: int, windows: int = 3, side_px: int = 2048
) -> list[Tile]:
    """Up to ``windows`` x ``windows`` output tiles of at most ``side_px`` input pixels
    on a fixed lattice spread over the raster (corners, edges' middles, centre), each
    once: a sample of the image that does not depend on the tile size."""
    halo = halo_for(iterations)
    sw, sh = min(side_px, grids.width), min(side_px, grids.height)
    out: list[Tile] = []
    for y0 in lattice(grids.height, side_px, windows):
        for x0 in lattice(grids.width, side_px, windows):
            mx0, mx1 = _model_span(x0, x0 + sw, grids.scale_x, grids.model_width, halo)
            my0, my1 = _model_span(y0, y0 + sh, grids.scale_y, grids.model_height, halo)
            tile = Tile(x0, y0, x0 + sw, y0 + sh, mx0, my0, mx1, my1)
            if tile not in out:
                out.append(tile)
    return out
