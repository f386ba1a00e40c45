"""CPU inference for the refinement RNN that keeps its work in the cache.

The plain formulation (``RefinementRNN.step``) writes, at every iteration,
a ``K x 32`` channel hidden layer for the whole tile (1.6 GB for a 2500 x 2500
two-class tile) and reads the image features of the same size back: the CPU
spends its time waiting for memory and faulting in fresh pages, not computing.

Here the tile is cut into strips of a few rows and the iterations advance as a
wavefront: iteration ``t`` of strip ``s`` runs as soon as iteration ``t - 1``
has finished strip ``s + 1`` (a 5x5 filter needs two rows beyond the strip,
so strips are at least two rows high). Each strip's image features are computed
once, used by the ``T`` iterations while they are still in the cache, then
dropped; the hidden layer only ever exists for one strip. Every 5x5
convolution is written as an im2col copy of a few kilobytes and a batched
matrix multiply, one batch per class.

The arithmetic is the same as ``RefinementRNN.step`` (replicate padding at
the tile's borders at every iteration; composed filters); the results agree
to float rounding (tested in tests/test_rnn_wavefront.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: Pixels per strip: big enough to amortise Python and OpenMP overhead, small
#: enough that a strip's hidden layer (K x 32 x n floats) stays in L2/L3.
STRIP_PIXELS = 8192


def _padded_rows(src: torch.Tensor, y0: int, y1: int, pad: int, h: int) -> torch.Tensor:
    """Rows ``[y0 - pad, y1 + pad)`` of a (C, h, W) map, replicated past the
    top/bottom edges, and padded left/right by replication: (C, y1-y0+2p, W+2p).

    ``src`` holds either all ``h`` rows or a ring of its latest rows (fewer
    than ``h``): row ``y`` is then at ``y % src.shape[1]``.
    """
    n = src.shape[1]
    if n == h and y0 - pad >= 0 and y1 + pad <= h:
        rows = src[:, y0 - pad : y1 + pad]
    else:
        idx = torch.arange(y0 - pad, y1 + pad).clamp_(0, h - 1).remainder_(n)
        rows = src.index_select(1, idx)
    return F.pad(rows.unsqueeze(0), (pad, pad, 0, 0), mode="replicate")[0]


def _rows_of(level: torch.Tensor, y0: int, y1: int) -> torch.Tensor:
    """Rows ``[y0, y1)`` of a full map or of a ring whose height is a multiple
    of the strip height (a strip never wraps around the ring)."""
    n = level.shape[1]
    return level[:, y0 % n : y0 % n + (y1 - y0)]


def _im2col(
    padded: torch.Tensor, rows: int, width: int, size: int, out: torch.Tensor
) -> torch.Tensor:
    """(C, rows+size-1, width+size-1) -> (C * size * size, rows * width) in ``out``."""
    c = padded.shape[0]
    sc, sy, sx = padded.stride()
    view = padded.as_strided(
        (c, size, size, rows, width), (sc, sy, sx, sy, sx), padded.storage_offset()
    )
    cols = out[: c * size * size * rows * width].view(c, size, size, rows, width)
    cols.copy_(view)
    return cols.view(c * size * size, rows * width)


@torch.no_grad()
def iterate_wavefront(
    rnn,
    image: torch.Tensor,
    heat: torch.Tensor,
    iterations: int,
    keep_all: bool,
    strip_pixels: int = STRIP_PIXELS,
) -> list[torch.Tensor]:
    """Heat maps after ``iterations`` steps (or at every step with ``keep_all``),
    for ``rnn`` a :class:`~map_refiner.engine.networks.models.RefinementRNN`.

    ``image`` is (B, C, H, W), ``heat`` (B, K, H, W); the result is a list of
    (B, K, H, W) tensors, like ``RefinementRNN.trajectory`` (or its last entry).
    """
    results = [
        _one(rnn, image[i], heat[i], iterations, keep_all, strip_pixels)
        for i in range(heat.shape[0])
    ]
    return [torch.stack([r[t] for r in results]) for t in range(len(results[0]))]


def _one(
    rnn, image: torch.Tensor, heat: torch.Tensor, iterations: int, keep_all: bool, strip_pixels: int
) -> list[torch.Tensor]:
    k, h, w = heat.shape
    c = image.shape[0]
    if iterations == 0:
        return [heat]
    size = rnn.heat_conv.kernel_size[0]
    pad = size // 2
    hid = rnn.hidden
    groups = rnn.mlp_heat.groups  # K, or 1 for a shared MLP
    # Image part of every MLP's first layer, composed with N: (G*hid, C*size*size).
    img_w, img_b = rnn.fused_image_filters()
    w_img = img_w.reshape(groups * hid, -1)
    heat_w, heat_b = rnn.fused_heat_filters()
    bias = (img_b + heat_b).unsqueeze(1)  # (G*hid, 1)
    w_heat = heat_w.reshape(groups, hid, size * size).expand(k, hid, size * size)
    w_out = rnn.mlp_out.weight.reshape(groups, 1, hid).expand(k, 1, hid)
    b_out = rnn.mlp_out.bias.view(groups, 1, 1)

    rows = max(pad, -(-strip_pixels // w))  # strip height; >= pad for the wavefront
    n_max = rows * w
    strips = -(-h // rows)
    # Iteration t of strip s reads strips s-1..s+1 of level t-1, so the levels
    # between the input and the output only keep a ring of 3 strips unless the
    # whole trajectory is wanted.
    ring_rows = h if keep_all else min(h, 3 * rows)
    levels = [heat] + [
        torch.empty(k, h if t == iterations else ring_rows, w, dtype=heat.dtype)
        for t in range(1, iterations + 1)
    ]
    ring = [
        torch.empty(groups * hid, n_max, dtype=heat.dtype) for _ in range(min(iterations, strips))
    ]
    img_cols = torch.empty(c * size * size * n_max, dtype=heat.dtype)
    heat_cols = torch.empty(k * size * size * n_max, dtype=heat.dtype)
    hidden = torch.empty(k * hid * n_max, dtype=heat.dtype)
    delta = torch.empty(k * n_max, dtype=heat.dtype)

    for step in range(strips + iterations - 1):
        if step < strips:  # image features of the newest strip
            y0, y1 = step * rows, min(h, step * rows + rows)
            cols = _im2col(_padded_rows(image, y0, y1, pad, h), y1 - y0, w, size, img_cols)
            feats = ring[step % len(ring)][:, : cols.shape[1]]
            torch.addmm(bias, w_img, cols, out=feats)
        for t in range(1, iterations + 1):
            s = step - (t - 1)
            if not 0 <= s < strips:
                continue
            y0, y1 = s * rows, min(h, s * rows + rows)
            n = (y1 - y0) * w
            src, dst = levels[t - 1], levels[t]
            cols = _im2col(_padded_rows(src, y0, y1, pad, h), y1 - y0, w, size, heat_cols)
            feats = ring[s % len(ring)][:, :n].view(groups, hid, n)
            hid_s = hidden[: k * hid * n].view(k, hid, n)
            torch.baddbmm(feats.expand(k, hid, n), w_heat, cols.view(k, size * size, n), out=hid_s)
            hid_s.relu_()
            d = delta[: k * n].view(k, 1, n)
            torch.bmm(w_out, hid_s, out=d)
            d.add_(b_out)
            torch.add(_rows_of(src, y0, y1), d.view(k, y1 - y0, w), out=_rows_of(dst, y0, y1))
    return levels if keep_all else [levels[-1]]
