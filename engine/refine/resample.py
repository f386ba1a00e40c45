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
from dataclasses import dataclass

import numpy as np
import torch


def _taps(scale: float) -> tuple[float, int]:
    support = max(1.0, 1.0 / scale)
    return support, int(math.ceil(2 * support)) + 1


def source_range(out_start: int, out_stop: int, scale: float, n_src: int) -> tuple[int, int]:
    """Source pixels ``[start, stop)`` that output pixels ``[out_start, out_stop)`` read."""
    support, taps = _taps(scale)
    lo = math.floor((out_start + 0.5) / scale - 0.5 - support) + 1
    hi = math.floor((out_stop - 0.5) / scale - 0.5 - support) + taps + 1
    return max(0, min(lo, n_src - 1)), min(n_src, max(hi, 1))


@dataclass(frozen=True)
class AxisBand:
    """Resampling weights along one axis in banded form.

    Output pixel ``o`` is ``sum_t weight[o, t] * window[index[o, t]]``: a few
    taps per output pixel (3 when enlarging, ``2/scale + 1`` when shrinking)
    instead of a dense ``(n_out, n_window)`` matrix, whose product costs far
    more arithmetic (docs/benchmarks.md).
    """

    index: np.ndarray  # (n_out, taps) int64, positions in the source window
    weight: np.ndarray  # (n_out, taps) float32, each row sums to 1
    n_window: int

    def dense(self) -> np.ndarray:
        """The same weights as a ``(n_out, n_window)`` matrix."""
        mat = np.zeros((self.index.shape[0], self.n_window), dtype=np.float64)
        rows = np.repeat(np.arange(self.index.shape[0]), self.index.shape[1])
        np.add.at(mat, (rows, self.index.ravel()), self.weight.ravel())
        return mat.astype(np.float32)


def axis_band(
    out_start: int, out_stop: int, scale: float, src_start: int, src_stop: int, n_src: int
) -> AxisBand:
    """Weights mapping source window ``[src_start, src_stop)`` to outputs ``[out_start, out_stop)``.

    Output pixel ``o`` is centred at source coordinate ``(o + 0.5) / scale - 0.5``;
    samples beyond the raster edge are clamped to the edge pixel. The weights
    of an output pixel depend only on ``o``, not on the window.
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
    w /= w.sum(axis=1, keepdims=True)
    return AxisBand(idx - src_start, w.astype(np.float32), src_stop - src_start)


def axis_weights(
    out_start: int, out_stop: int, scale: float, src_start: int, src_stop: int, n_src: int
) -> np.ndarray:
    """:func:`axis_band` as a dense ``(n_out, n_window)`` matrix (for numpy callers)."""
    return axis_band(out_start, out_stop, scale, src_start, src_stop, n_src).dense()


#: Output rows resampled together: their temporaries stay in the CPU's cache
#: (a whole window at once is memory-bound, and slower).
ROW_BLOCK = 64


def _gather_rows(data: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[..., o, :] = sum_t weight[o, t] * data[..., index[o, t], :]``.

    Gathering whole rows is a contiguous copy; gathering columns in place is
    much slower, so columns go through a transpose (see :func:`resample_window`).
    """
    out = data.index_select(-2, index[:, 0]).mul_(weight[:, 0, None])
    for t in range(1, index.shape[1]):
        out.addcmul_(data.index_select(-2, index[:, t]), weight[:, t, None])
    return out


def resample_window(data: torch.Tensor, rows: AxisBand, cols: AxisBand) -> torch.Tensor:
    """Resample ``(..., H, W)`` data with row and column weights.

    Output rows go in blocks of :data:`ROW_BLOCK`: rows of the block, then
    its columns (through a transpose), so each block's intermediates stay in
    cache. Every output pixel sums the same taps in the same order whatever
    the window, so tiles match the one-piece result.
    """
    for band, axis in ((rows, -2), (cols, -1)):
        if data.shape[axis] != band.n_window:
            raise ValueError(
                f"the window has {data.shape[axis]} pixels along this axis; "
                f"the weights expect {band.n_window}"
            )
    data = data.contiguous()  # index_select on a cropped view is much slower
    r_idx = torch.from_numpy(rows.index).to(data.device)
    r_w = torch.from_numpy(rows.weight).to(data.device, data.dtype)
    c_idx = torch.from_numpy(cols.index).to(data.device)
    c_w = torch.from_numpy(cols.weight).to(data.device, data.dtype)
    n_rows = r_idx.shape[0]
    out = torch.empty(
        data.shape[:-2] + (n_rows, c_idx.shape[0]), dtype=data.dtype, device=data.device
    )
    for b0 in range(0, n_rows, ROW_BLOCK):
        b1 = min(n_rows, b0 + ROW_BLOCK)
        block = _gather_rows(data, r_idx[b0:b1], r_w[b0:b1]).transpose(-1, -2).contiguous()
        out[..., b0:b1, :] = _gather_rows(block, c_idx, c_w).transpose(-1, -2)
    return out
