"""Per-image input normalisation: a model whose config says ``normalisation: "image"``
is fed each raster normalised by that raster's own band statistics instead of the
fixed mean/std it was trained with.

Why: a model trained on one sensor's colours sees another sensor's (a drone's
bright roofs, a satellite's hazy greys) as a shifted, rescaled input, and marks the
wrong things (docs/STATUS.md: the fixed-normalisation model on unseen scenes). With
per-image statistics, a global change of brightness, contrast or gain between two
images no longer reaches the network.

The statistics are taken **on the model's grid** (after resampling, as the network
sees the image: a drone scene downsampled ten times has a smaller spread than its
raw pixels) over the valid pixels (nodata, alpha, NaN, and all-black "no tile" pixels
left out). A small model grid is read whole; a large one through a fixed lattice of
windows spread over it (the same for every tile, every block of a cluster job and
every fine-tune window of the same raster), so that they all normalise alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from ..errors import MapRefinerError
from ..modelfile.config import ModelConfig
from .tiling import Grids, lattice

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
    from .predict import read_model_pixels

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


def for_image(config: ModelConfig, ds, bands: Sequence[int], grids: Grids) -> ModelConfig:
    """``config`` as this raster must be fed: unchanged for a fixed-normalisation model,
    else a copy carrying the raster's own statistics as its mean/std."""
    if config.normalisation != "image":
        return config
    mean, std = image_statistics(ds, bands, grids)
    if not all(math.isfinite(v) for v in mean + std):
        raise MapRefinerError("The image's band statistics are not finite; check its pixels.")
    return dataclasses.replace(config, mean=mean, std=std)
