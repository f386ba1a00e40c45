"""Separable bilinear resampling between a raster's grid and the model's grid.

Both grids cover the same extent; the model grid has ``scale`` model pixels per
input pixel along an axis. The weight of every output pixel depends only on its
global position, never on the window it is computed in, so tiles resampled
separately match the raster resampled in one piece. When shrinking, the
triangle kernel is widened by ``1/scale`` (area-aware bilinear, like GDAL's
bilinear overviews) so that the downsampled image is not aliased.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch


def _taps(scale: float) -> Tuple[float, int]:
    support = max(1.0, 1.0 / scale)
    return support, int(math.ceil(2 * support)) + 1


def source_range(out_start: int, out_stop: int, scale: float, n_src: int) -> Tuple[int, int]:
    """Source pixels ``[start, stop)`` that output pixels ``[out_start, out_stop)`` read."""
    support, taps = _taps(scale)
    lo = math.floor((out_start + 0.5) / scale - 0.5 - support) + 1
    hi = math.floor((out_stop - 0.5) / scale - 0.5 - support) + taps + 1
    return max(0, min(lo, n_src - 1)), min(n_src, max(hi, 1))


def axis_weights(out_start: int, out_stop: int, scale: float,
                 src_start: int, src_stop: int, n_src: int) -> np.ndarray:
    """Matrix ``(n_out, n_window)`` mapping a source window to output pixels.

    Output pixel ``o`` is centred at source coordinate ``(o + 0.5) / scale - 0.5``;
    samples beyond the raster edge are clamped to the edge pixel.
    """
    support, taps = _taps(scale)
    out = np.arange(out_start, out_stop, dtype=np.float64)
    centre = (out + 0.5) / scale - 0.5
    first = np.floor(centre - support).astype(np.int64) + 1
    idx = first[:, None] + np.arange(taps)[None, :]
    w = np.maximum(0.0, 1.0 - np.abs(idx - centre[:, None]) / support)
    idx = np.clip(idx, 0, n_src - 1)
    if idx.min() < src_start or idx.max() >= src_stop:
        raise ValueError("source window does not cover the output window")
    mat = np.zeros((len(out), src_stop - src_start), dtype=np.float64)
    rows = np.repeat(np.arange(len(out)), taps)
    np.add.at(mat, (rows, (idx - src_start).ravel()), w.ravel())
    mat /= mat.sum(axis=1, keepdims=True)
    return mat.astype(np.float32)


def resample_window(data: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """Apply row and column weight matrices to ``(..., H, W)`` data."""
    r = torch.from_numpy(rows).to(data.device, data.dtype)
    c = torch.from_numpy(cols).to(data.device, data.dtype)
    return torch.matmul(torch.matmul(r, data), c.transpose(0, 1))
