"""Running the networks on one window: read, resample, normalise, infer, resample back.

**Per-image normalisation.** A model whose config says ``normalisation: "image"``
is fed each raster normalised by that raster's own band statistics instead of the
fixed mean/std it was trained with.

Why: a model trained on one sensor's colours sees another sensor's (a drone's
bright roofs, a satellite's hazy greys) as a shifted, rescaled input, and marks the
wrong things (docs/STATUS.md: the fixed-normalisation model on unseen scenes). With
per-image statistics, a global change of brightness, contrast or gain between two
images no longer reaches the network. Measured (docs/results_bundled_recipes.md): it
helps a sensor left out of the training by 10-12 points of building IoU, but costs
the scenes that were in it their own colours as a cue, so the bundled model keeps the
fixed normalisation.

The statistics are taken **on the model's grid** (after resampling, as the network
sees the image: a drone scene downsampled ten times has a smaller spread than its
raw pixels) over the valid pixels (nodata, alpha, NaN, and all-black "no tile" pixels
left out). A small model grid is read whole; a large one through a fixed lattice of
windows spread over it (the same for every tile, every block of a cluster job and
every fine-tune window of the same raster), so that they all normalise alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import torch

from ..errors import MapRefinerError
from ..limits import too_coarse
from ..modelfile.colour_fit import Matched, match_image, matched_normalisation
from ..modelfile.colour_match import ColourMatch
from ..modelfile.config import ModelConfig
from ..networks.inference import class_argmax, infer, refine_more
from ..networks.models import MapRefinerNet
from ..rasters.read import (
    EIGHT_BIT_MAX,
    PathLike,
    model_bands,
    open_image,
    read_window,
    unnamed_bands_note,
    value_scale,
)
from .resample import AxisBand, axis_band, resample_window, source_range
from .tiling import Detail, Grids, Tile, detail_window, lattice

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class WindowResult:
    """Class scores (logits) on the tile's input-grid pixels and which are valid."""

    logits: torch.Tensor  # (K, h, w) on the output tile, or (T+1, K, h, w) for a trajectory
    valid: np.ndarray  # (h, w) bool


def normalise_(data: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """``(data - mean) / std`` per band, in place on ``(C, h, w)`` data, after the
    configuration's power curve where it has one (ModelConfig.input_curve)."""
    if config.input_curve:
        scale, power = config.input_curve
        data.mul_(scale / EIGHT_BIT_MAX).clamp_(min=0.0).pow_(power).mul_(EIGHT_BIT_MAX)
    mean = torch.tensor(config.mean, dtype=data.dtype, device=data.device)[:, None, None]
    std = torch.tensor(config.std, dtype=data.dtype, device=data.device)[:, None, None]
    return data.sub_(mean).div_(std)


def model_image(
    ds,
    bands: Sequence[int],
    grids: Grids,
    config: ModelConfig,
    mx0: int,
    my0: int,
    mx1: int,
    my1: int,
    device: torch.device,
) -> torch.Tensor:
    """The normalised image on model-grid window ``[mx0, mx1) x [my0, my1)``, ``(C, h, w)``."""
    return _read_model_window(ds, bands, grids, config, (mx0, my0, mx1, my1), device)[0]


def _read_model_window(
    ds,
    bands: Sequence[int],
    grids: Grids,
    config: ModelConfig,
    window: tuple[int, int, int, int],
    device: torch.device,
    tile: Tile | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """The normalised image on model-grid ``window`` (x0, y0, x1, y1), and the
    valid mask of ``tile``'s input-grid pixels (empty without a tile), from one read."""
    src = _source_window(ds, bands, grids, window, tile)
    tile_valid = np.zeros((0, 0), dtype=bool)
    if tile is not None:
        sx0, sy0 = src.x0, src.y0
        tile_valid = src.valid[tile.y0 - sy0 : tile.y1 - sy0, tile.x0 - sx0 : tile.x1 - sx0].copy()
    # ``data`` is this call's own array: normalised in place. Invalid pixels
    # carry the training mean (0 after normalisation).
    t = normalise_(torch.from_numpy(src.data).to(device), config)
    t.mul_(torch.from_numpy(src.valid).to(device))
    return resample_window(t, src.rows, src.cols), tile_valid


@dataclass
class _SourceWindow:
    """The input pixels under a model-grid window, read once, and the resampling
    weights that take them onto it."""

    data: np.ndarray  # (C, h, w) float32
    valid: np.ndarray  # (h, w) bool
    x0: int  # the read's first input column and row
    y0: int
    rows: AxisBand
    cols: AxisBand


def _source_window(
    ds,
    bands: Sequence[int],
    grids: Grids,
    window: tuple[int, int, int, int],
    tile: Tile | None = None,
) -> _SourceWindow:
    """Read the input pixels model-grid ``window`` needs (and all of ``tile``'s)."""
    mx0, my0, mx1, my1 = window
    sx0, sx1 = source_range(mx0, mx1, grids.scale_x, grids.width)
    sy0, sy1 = source_range(my0, my1, grids.scale_y, grids.height)
    if tile is not None:  # the halo keeps the tile inside; the union makes sure
        sx0, sy0 = min(sx0, tile.x0), min(sy0, tile.y0)
        sx1, sy1 = max(sx1, tile.x1), max(sy1, tile.y1)
    data, valid = read_window(ds, bands, sx0, sy0, sx1 - sx0, sy1 - sy0)
    rows = axis_band(my0, my1, grids.scale_y, sy0, sy1, grids.height)
    cols = axis_band(mx0, mx1, grids.scale_x, sx0, sx1, grids.width)
    return _SourceWindow(data, valid, sx0, sy0, rows, cols)


def read_model_pixels(
    ds, bands: Sequence[int], grids: Grids, window: tuple[int, int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw band values on model-grid ``window`` (x0, y0, x1, y1), ``(C, h, w)``
    float32 on the CPU, and which model pixels are wholly made of valid image pixels
    (for measuring the image's statistics: image_statistics below)."""
    src = _source_window(ds, bands, grids, window)
    v = torch.from_numpy(src.valid).to(torch.float32)
    t = torch.cat([torch.from_numpy(src.data) * v, v[None]])
    out = resample_window(t, src.rows, src.cols)
    share = out[-1]
    good = share > 0.999
    return out[:-1] / share.clamp(min=1e-6), good


#: A model grid up to this many pixels per side is read whole.
WHOLE_SIDE = 1024
#: Otherwise: LATTICE x LATTICE windows of WINDOW model pixels (1 Mpx in all).
LATTICE = 8
WINDOW = 128
#: Fewer valid model pixels than this: the statistics are not trusted.
MIN_VALID = 256
#: Floor on a band's std (in the band's units): a flat band is not blown up.
MIN_STD = 1.0


def image_statistics(ds, bands: Sequence[int], grids: Grids) -> tuple[list[float], list[float]]:
    """Mean and std of each band over the valid pixels of the raster on the model grid."""
    mw, mh = grids.model_width, grids.model_height
    if mw <= WHOLE_SIDE and mh <= WHOLE_SIDE:
        windows = [(0, 0, mw, mh)]
    else:
        sw, sh = min(WINDOW, mw), min(WINDOW, mh)
        windows = sorted(
            {
                (x, y, x + sw, y + sh)
                for y in lattice(mh, sh, LATTICE)
                for x in lattice(mw, sw, LATTICE)
            }
        )
    n = 0
    total = torch.zeros(len(bands), dtype=torch.float64)
    squares = torch.zeros(len(bands), dtype=torch.float64)
    for window in windows:
        data, valid = read_model_pixels(ds, bands, grids, window)
        keep = valid & (data.abs().sum(0) > 0)  # all-zero: a mosaic's missing tile
        sel = data[:, keep].to(torch.float64)
        n += sel.shape[1]
        total += sel.sum(1)
        squares += (sel * sel).sum(1)
    if n < MIN_VALID:
        raise MapRefinerError(
            f"The image has too few valid pixels ({n} on the model's grid) to measure its "
            "colours, which this model needs (it normalises each image by its own "
            "statistics); use a larger extent of the image."
        )
    mean = total / n
    var = (squares / n - mean * mean).clamp(min=0)
    std = var.sqrt().clamp(min=MIN_STD)
    return [float(v) for v in mean], [float(v) for v in std]


#: for_image's default: measure whether the image's colours are matched (colours_matched).
MEASURE = object()


def colours_matched(config: ModelConfig, ds, bands: Sequence[int], grids: Grids) -> Matched | None:
    """How this raster's colours are matched for a fixed-normalisation model that carries a
    colour matching entry (modelfile/colour_fit.py); None: read as it is."""
    match = ColourMatch.from_config(config.colour_match)
    if match is None or config.normalisation == "image":
        return None
    res = config.ground_resolution_m
    pixel_m = res * grids.scale_x  # the raster's pixel size
    if too_coarse(pixel_m, res * grids.scale_y, res):
        # Imagery the refine already calls too coarse for the model (limits.coarse_note)
        # is read as it is: stretched onto the training imagery's colours, Swellendam's
        # 2.8 m rural orthophoto (far from every area, 5x the grid) turned its forest's
        # crowns into buildings (1.6 % of the map against 0.3 %; session 46).
        return None
    return match_image(match, ds, bands, pixel_m)


def for_image(
    config: ModelConfig, ds, bands: Sequence[int], grids: Grids, matched: object = MEASURE
) -> ModelConfig:
    """``config`` as this raster must be fed: for a fixed-normalisation model unchanged,
    or, where the raster's values lie beyond the 8-bit range such a model was trained in
    (rasters.read.value_scale), a copy whose mean/std read them scaled into it, or, where
    the model matches the colours of an image unlike its training imagery
    (colours_matched; ``matched``: as already measured) and this is one, a copy whose
    mean/std read it matched; else a copy carrying the raster's own statistics as its
    mean/std."""
    if config.normalisation != "image":
        scale = value_scale(ds, bands) if max(config.mean) <= EIGHT_BIT_MAX else 1.0
        found = colours_matched(config, ds, bands, grids) if matched is MEASURE else matched
        if isinstance(found, Matched):
            log.info("%s", found.note())
            # a power curve takes the values onto the 8-bit scale before the gains
            curve = [scale, found.power] if found.power != 1.0 else []
            mean, std = matched_normalisation(
                config.mean, config.std, found, 1.0 if curve else scale
            )
            return replace(config, mean=mean, std=std, input_curve=curve)
        if scale == 1.0:
            return config
        return replace(
            config, mean=[m / scale for m in config.mean], std=[s / scale for s in config.std]
        )
    mean, std = image_statistics(ds, bands, grids)
    if not all(math.isfinite(v) for v in mean + std):
        raise MapRefinerError("The image's band statistics are not finite; check its pixels.")
    return replace(config, mean=mean, std=std)


def predict_tile(
    model: MapRefinerNet,
    config: ModelConfig,
    ds,
    bands: Sequence[int],
    grids: Grids,
    tile: Tile,
    iterations: int,
    device: torch.device,
    trajectory: bool = False,
    keep: Sequence[int] | None = None,
    autocast: torch.dtype | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    detail: Detail | None = None,
    memo: dict | None = None,
) -> WindowResult:
    """Scores for one output tile, resampled back bilinearly to the input grid.
    ``memo``: what several networks run on the same tile share (a correction round and
    its parents, engine/networks/gate.py): the image read and normalised alike, and the
    CNN's first three layers where they are one (inference.coarse_scores).
    ``start``: the RNN's starting heat maps on the tile's model window (a prior map),
    instead of the coarse CNN's. ``detail``: the last iteration's maps go on through
    ``detail.iterations`` more on a finer grid (:func:`detail_scores`) before that.

    The tile is read once: the image of its model window and the valid mask of
    its own pixels come from the same window of the raster. With ``keep``, only
    those iterations of the trajectory (e.g. ``[0, T]``: the coarse map and the
    refined one) are resampled and returned, ``(len(keep), K, h, w)``. With
    ``autocast`` (e.g. bfloat16, see device.inference_autocast) the networks run
    in mixed precision; the scores are resampled in float32 either way.
    """
    window = (tile.mx0, tile.my0, tile.mx1, tile.my1)
    img, valid = _shared(
        memo,
        ("model", window, tuple(config.mean), tuple(config.std), tuple(config.input_curve)),
        lambda: _read_model_window(ds, bands, grids, config, window, device, tile),
    )
    first = (
        None
        if start is None
        else (torch.from_numpy(start[0]).to(device), torch.from_numpy(start[1]).to(device))
    )
    logits = infer(model, img, iterations, trajectory, keep, autocast, first, memo)
    rows = axis_band(tile.y0, tile.y1, 1.0 / grids.scale_y, tile.my0, tile.my1, grids.model_height)
    cols = axis_band(tile.x0, tile.x1, 1.0 / grids.scale_x, tile.mx0, tile.mx1, grids.model_width)
    if detail is None:
        return WindowResult(resample_window(logits, rows, cols), valid)
    steps = list(keep) if keep is not None else list(range(iterations + 1)) if trajectory else []
    if steps and iterations not in steps:  # only earlier iterations asked for
        return WindowResult(resample_window(logits, rows, cols), valid)
    maps = logits if steps else logits[None]
    last = maps[steps.index(iterations) if steps else 0]
    fine = detail_scores(
        model, config, ds, bands, grids, tile, detail, last, device, autocast, memo
    )
    if not steps:
        return WindowResult(fine, valid)
    out = [fine if t == iterations else resample_window(m, rows, cols) for t, m in zip(steps, maps)]
    return WindowResult(torch.stack(out), valid)


def _shared(memo: dict | None, key: tuple, read: Callable[[], _T]) -> _T:
    """``read()``, kept in ``memo`` under ``key`` for the next network of the tile."""
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]


#: The detail iterations redraw outlines; pixels the model grid's map was at least this
#: sure of keep its scores. A detail RNN learnt from reference maps may otherwise
#: overrule the model grid inside objects, and so undo what a fine-tune learnt from a
#: user's corrections: with the several-maps detail RNN, the Nepal drone scene's
#: largest-errors fine-tune (4 background polygons) scored 58.7 without the detail
#: iterations, 51.1 with them, 56.0 with this rule; on the starting maps it costs at
#: most 0.6 points (docs/results_detail.md, "Several maps, sure pixels kept").
DETAIL_KEEPS_SURE = 0.9


def keep_sure(start: torch.Tensor, out: torch.Tensor, at_least: float) -> torch.Tensor:
    """``out``, but ``start`` where the softmax of ``start`` reaches ``at_least``."""
    sure = torch.softmax(start.float(), 0).max(0).values >= at_least
    return torch.where(sure[None], start.to(out.dtype), out)


def detail_scores(
    model: MapRefinerNet,
    config: ModelConfig,
    ds,
    bands: Sequence[int],
    grids: Grids,
    tile: Tile,
    detail: Detail,
    heat: torch.Tensor,
    device: torch.device,
    autocast: torch.dtype | None = None,
    memo: dict | None = None,
) -> torch.Tensor:
    """``detail.iterations`` more RNN steps on the fine grid from ``heat``, the model
    window's refined scores ``(K, h, w)``: upsampled bilinearly onto the tile's fine
    window, the image read there and normalised as for the model grid, then the
    scores resampled to the tile's input pixels. Where the model grid's map was at least
    DETAIL_KEEPS_SURE sure, its scores stay (:func:`keep_sure`). The upsampled scores are
    first divided by the model's ``detail_temperature`` (the bundled default's 2, a
    fine-tuned model's matched to its parent's sureness)."""
    fine = detail.grids(grids)
    window = detail_window(grids, detail, tile)
    fx0, fy0, fx1, fy1 = window
    img, _ = _shared(
        memo,
        ("fine", window, tuple(config.mean), tuple(config.std), tuple(config.input_curve)),
        lambda: _read_model_window(ds, bands, fine, config, window, device),
    )
    mh, mw = grids.model_height, grids.model_width
    up_rows = axis_band(fy0, fy1, fine.model_height / mh, tile.my0, tile.my1, mh)
    up_cols = axis_band(fx0, fx1, fine.model_width / mw, tile.mx0, tile.mx1, mw)
    start = resample_window(heat, up_rows, up_cols)
    if config.detail_temperature != 1.0:  # ModelConfig.detail_temperature
        start = start / config.detail_temperature
    out = refine_more(model, img, start, detail.iterations, autocast)
    out = keep_sure(start, out, DETAIL_KEEPS_SURE)
    rows = axis_band(tile.y0, tile.y1, 1.0 / fine.scale_y, fy0, fy1, fine.model_height)
    cols = axis_band(tile.x0, tile.x1, 1.0 / fine.scale_x, fx0, fx1, fine.model_width)
    return resample_window(out, rows, cols)


def classes_and_probs(
    logits: torch.Tensor, valid: np.ndarray, nodata: int, with_probs: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Arg-max class map (uint8, ``nodata`` where invalid) and optional softmax."""
    cls = class_argmax(logits).cpu().numpy()
    cls[~valid] = nodata
    probs = None
    if with_probs:
        probs = torch.softmax(logits.float(), dim=0).cpu().numpy()
        probs[:, ~valid] = -1.0
    return cls, probs


def stack_bands(ds, bands: Sequence[int] | None, config: ModelConfig) -> list[int]:
    """The bands of ``ds`` a model reads (rasters.read.model_bands): ``bands`` when given;
    else, for a model of red, green and blue bands, those ``ds``'s bands say they are;
    else the model's own band numbers."""
    return model_bands(ds, bands, config.band_names, config.bands)


def bands_note(image: PathLike, bands: Sequence[int] | None, config: ModelConfig) -> str:
    """rasters.read.unnamed_bands_note for ``image`` read by a model of ``config``: what
    a fine-tune or an RNN's training says where the image's bands name no colours (a user
    who refined with bands 3, 2, 1 and trains without them teaches the model the colours
    in another order; session 49)."""
    ds = open_image(image)
    return unnamed_bands_note(ds, bands, config.band_names, stack_bands(ds, bands, config))
