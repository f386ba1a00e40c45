"""Running the networks on one window: read, resample, normalise, infer, resample back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..modelfile.config import ModelConfig
from ..networks.inference import class_argmax, infer
from ..networks.models import MapRefinerNet
from ..rasters.read import read_window
from .resample import axis_band, resample_window, source_range
from .tiling import Grids, Tile


@dataclass
class WindowResult:
    """Class scores (logits) on the tile's input-grid pixels and which are valid."""

    logits: torch.Tensor  # (K, h, w) on the output tile, or (T+1, K, h, w) for a trajectory
    valid: np.ndarray  # (h, w) bool


def normalise_(data: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """``(data - mean) / std`` per band, in place on ``(C, h, w)`` data."""
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
    mx0, my0, mx1, my1 = window
    sx0, sx1 = source_range(mx0, mx1, grids.scale_x, grids.width)
    sy0, sy1 = source_range(my0, my1, grids.scale_y, grids.height)
    if tile is not None:  # the halo keeps the tile inside; the union makes sure
        sx0, sy0 = min(sx0, tile.x0), min(sy0, tile.y0)
        sx1, sy1 = max(sx1, tile.x1), max(sy1, tile.y1)
    data, valid = read_window(ds, bands, sx0, sy0, sx1 - sx0, sy1 - sy0)
    tile_valid = np.zeros((0, 0), dtype=bool)
    if tile is not None:
        tile_valid = valid[tile.y0 - sy0 : tile.y1 - sy0, tile.x0 - sx0 : tile.x1 - sx0].copy()
    # ``data`` is this call's own array: normalised in place. Invalid pixels
    # carry the training mean (0 after normalisation).
    t = normalise_(torch.from_numpy(data).to(device), config)
    t.mul_(torch.from_numpy(valid).to(device))
    rows = axis_band(my0, my1, grids.scale_y, sy0, sy1, grids.height)
    cols = axis_band(mx0, mx1, grids.scale_x, sx0, sx1, grids.width)
    return resample_window(t, rows, cols), tile_valid


def read_model_pixels(
    ds, bands: Sequence[int], grids: Grids, window: tuple[int, int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw band values on model-grid ``window`` (x0, y0, x1, y1), ``(C, h, w)``
    float32 on the CPU, and which model pixels are wholly made of valid image pixels
    (for measuring the image's statistics: engine/refine/normalisation.py)."""
    mx0, my0, mx1, my1 = window
    sx0, sx1 = source_range(mx0, mx1, grids.scale_x, grids.width)
    sy0, sy1 = source_range(my0, my1, grids.scale_y, grids.height)
    data, valid = read_window(ds, bands, sx0, sy0, sx1 - sx0, sy1 - sy0)
    v = torch.from_numpy(valid).to(torch.float32)
    t = torch.cat([torch.from_numpy(data) * v, v[None]])
    rows = axis_band(my0, my1, grids.scale_y, sy0, sy1, grids.height)
    cols = axis_band(mx0, mx1, grids.scale_x, sx0, sx1, grids.width)
    out = resample_window(t, rows, cols)
    share = out[-1]
    good = share > 0.999
    return out[:-1] / share.clamp(min=1e-6), good


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
) -> WindowResult:
    """Scores for one output tile, resampled back bilinearly to the input grid.
    ``start``: the RNN's starting heat maps on the tile's model window (a prior map),
    instead of the coarse CNN's.

    The tile is read once: the image of its model window and the valid mask of
    its own pixels come from the same window of the raster. With ``keep``, only
    those iterations of the trajectory (e.g. ``[0, T]``: the coarse map and the
    refined one) are resampled and returned, ``(len(keep), K, h, w)``. With
    ``autocast`` (e.g. bfloat16, see device.inference_autocast) the networks run
    in mixed precision; the scores are resampled in float32 either way.
    """
    window = (tile.mx0, tile.my0, tile.mx1, tile.my1)
    img, valid = _read_model_window(ds, bands, grids, config, window, device, tile)
    first = (
        None
        if start is None
        else (torch.from_numpy(start[0]).to(device), torch.from_numpy(start[1]).to(device))
    )
    logits = infer(model, img, iterations, trajectory, keep, autocast, first)
    rows = axis_band(tile.y0, tile.y1, 1.0 / grids.scale_y, tile.my0, tile.my1, grids.model_height)
    cols = axis_band(tile.x0, tile.x1, 1.0 / grids.scale_x, tile.mx0, tile.mx1, grids.model_width)
    return WindowResult(resample_window(logits, rows, cols), valid)


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


def stack_bands(bands: list[int] | None, config: ModelConfig) -> list[int]:
    return list(bands) if bands else list(config.bands)
