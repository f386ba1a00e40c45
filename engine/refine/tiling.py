"""Tile plans: output tiles on the input grid and the model-grid windows they need.

Every output tile is computed independently: its model window carries a halo
at least as wide as the networks' receptive field and starts on the coarse
network's stride lattice, so stitched tiles equal the one-piece result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import MapRefinerError
from ..limits import DETAIL_FACTOR, check_iterations, check_scale
from ..networks.models import COARSE_STRIDE, RNN_RADIUS_PER_ITERATION, receptive_radius
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
class Detail:
    """The RNN's last ``iterations`` run again on a grid finer than the model's, over
    the same extent (``refine --detail-iterations``): the model grid's refined heat
    maps upsampled onto it, the image read at its resolution."""

    iterations: int
    width: int
    height: int
    resolution_m: tuple[float, float]

    def grids(self, grids: Grids) -> Grids:
        """The input grid and this fine grid, for reading the image onto it."""
        return Grids(grids.width, grids.height, self.width, self.height)

    @property
    def radius(self) -> int:
        """Fine pixels of context an output pixel needs: the image filters' and one
        heat-map filter's per iteration, and one for the resampling."""
        return RNN_RADIUS_PER_ITERATION * (self.iterations + 1) + 1


#: A model's own detail iterations (ModelConfig.detail_iterations) run when nobody says
#: how many, on imagery at least this many times finer than the model's grid: 0.3 m
#: imagery and drones under the bundled model's 0.6 m, not Rio's 0.5 m, where any extra
#: iteration cost building IoU (docs/results_detail.md).
DETAIL_AUTO_FINER = 1.8


def auto_detail_iterations(
    model_iterations: int, res_x_m: float, res_y_m: float, model_res_m: float
) -> int:
    """The detail iterations a refine runs when not told: the model's own on imagery at
    least DETAIL_AUTO_FINER times finer than its grid, else none."""
    finer = model_res_m / math.sqrt(res_x_m * res_y_m)
    return model_iterations if finer >= DETAIL_AUTO_FINER else 0


#: A detail grid within this share of the model's pixel size is not finer (a projected
#: grid's ground pixels differ from its nominal size by a fraction of a percent).
NOT_FINER = 0.95


def make_detail(
    grids: Grids,
    res_x_m: float,
    res_y_m: float,
    model_res_m: float,
    iterations: int | None,
    resolution_m: float | None = None,
    model_iterations: int = 0,
) -> Detail | None:
    """The detail grid: the image's own pixels, but no finer than the model's grid /
    DETAIL_FACTOR (or ``resolution_m``). None without detail iterations; refused where
    the image is not finer than the model's grid (nothing finer to refine to).
    ``iterations`` None: the model's own (``model_iterations``) where the image is fine
    enough (:func:`auto_detail_iterations`)."""
    auto = iterations is None
    if iterations is None:
        iterations = auto_detail_iterations(model_iterations, res_x_m, res_y_m, model_res_m)
    n = check_iterations(iterations, "The number of detail iterations")
    if n == 0:
        if auto and resolution_m is not None:
            why = (
                "this model has none of its own"
                if not model_iterations
                else f"this image is not {DETAIL_AUTO_FINER:g}x finer than the model's grid"
            )
            raise MapRefinerError(
                f"A detail grid ({float(resolution_m):g} m) was given, but no detail "
                f"iterations run: {why}. Set the detail iterations (--detail-iterations N)."
            )
        return None
    target = model_res_m / DETAIL_FACTOR if resolution_m is None else float(resolution_m)
    if not (math.isfinite(target) and 0 < target < model_res_m):
        raise MapRefinerError(
            f"The detail resolution must be finer than the model's grid ({model_res_m:g} m); "
            f"got {target:g} m."
        )
    fx, fy = max(res_x_m, target), max(res_y_m, target)
    if (fx * fy) ** 0.5 >= model_res_m * NOT_FINER:
        raise MapRefinerError(
            f"Detail iterations run on a grid finer than the model's ({model_res_m:g} m), "
            f"but this image's pixels are {(res_x_m * res_y_m) ** 0.5:.2f} m: there is no "
            "finer detail to refine to; set the detail iterations to 0 (--detail-iterations)."
        )
    w = max(1, int(round(grids.width * res_x_m / fx)))
    h = max(1, int(round(grids.height * res_y_m / fy)))
    return Detail(n, w, h, (fx, fy))


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


def _detail_span(
    o0: int, o1: int, n_in: int, n_fine: int, n_model: int, detail: Detail, halo: int
) -> tuple[int, int]:
    """Model pixels a tile needs along an axis when its last iterations run on the
    fine grid: the fine window (fine_span) upsampled from them, with the halo."""
    f0, f1 = fine_span(o0, o1, n_in, n_fine, detail)
    lo, hi = source_range(f0, f1, n_fine / n_model, n_model)
    return _align_down(max(0, lo - halo)), min(n_model, hi + halo)


def fine_span(o0: int, o1: int, n_in: int, n_fine: int, detail: Detail) -> tuple[int, int]:
    """Fine pixels ``[f0, f1)`` along an axis that outputs ``[o0, o1)`` of the input grid
    read back, with the fine iterations' own context margin."""
    lo, hi = source_range(o0, o1, n_in / n_fine, n_fine)
    return max(0, lo - detail.radius), min(n_fine, hi + detail.radius)


def detail_window(grids: Grids, detail: Detail, tile: Tile) -> tuple[int, int, int, int]:
    """The fine-grid window (x0, y0, x1, y1) of ``tile``'s detail iterations."""
    fx0, fx1 = fine_span(tile.x0, tile.x1, grids.width, detail.width, detail)
    fy0, fy1 = fine_span(tile.y0, tile.y1, grids.height, detail.height, detail)
    return fx0, fy0, fx1, fy1


def halo_for(iterations: int) -> int:
    r = receptive_radius(iterations) + 2
    return int(math.ceil(r / COARSE_STRIDE)) * COARSE_STRIDE


def plan_tiles(
    grids: Grids, iterations: int, tile_model_px: int = 512, detail: Detail | None = None
) -> Iterator[Tile]:
    """Output tiles covering the input raster, row by row; with ``detail``, model
    windows wide enough for the fine windows' context too."""
    halo = halo_for(iterations)
    step_x = max(1, int(tile_model_px / grids.scale_x))
    step_y = max(1, int(tile_model_px / grids.scale_y))
    for y0 in range(0, grids.height, step_y):
        y1 = min(grids.height, y0 + step_y)
        my0, my1 = _model_span(y0, y1, grids.scale_y, grids.model_height, halo)
        if detail is not None:
            dy = _detail_span(y0, y1, grids.height, detail.height, grids.model_height, detail, halo)
            my0, my1 = min(my0, dy[0]), max(my1, dy[1])
        for x0 in range(0, grids.width, step_x):
            x1 = min(grids.width, x0 + step_x)
            mx0, mx1 = _model_span(x0, x1, grids.scale_x, grids.model_width, halo)
            if detail is not None:
                dx = _detail_span(
                    x0, x1, grids.width, detail.width, grids.model_width, detail, halo
                )
                mx0, mx1 = min(mx0, dx[0]), max(mx1, dx[1])
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
