"""The refinement step by step over one window of a raster (the view), kept in memory.

For an iteration slider: the class map and the uncertainty at iterations
``0..N`` of a window, computed once. The window is covered by the same output
tiles as :func:`engine.pipeline.refine_raster` uses (same model grid, same
halo), so iteration ``t`` here is the class map ``refine_raster`` writes with
``iterations=t``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..device import configure_threads, device_label, inference_autocast, resolve_device
from ..errors import MapRefinerError
from ..modelfile.io import load_model
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.read import check_bands, ground_resolution, open_raster, raster_info
from ..rasters.write import CLASS_NODATA
from .predict import predict_tile, stack_bands
from .tiling import make_grids, plan_tiles
from .uncertainty import uncertainty

#: Largest window kept (pixels): N+1 class maps and uncertainty maps of this size stay in memory.
MAX_PIXELS = 2048 * 2048
Window = tuple[int, int, int, int]  # x0, y0, x1, y1 on the input grid


@dataclass
class Trajectory:
    """Class maps ``(N+1, h, w)`` (uint8, 255 = nodata) and uncertainty ``(N+1, h, w)``."""

    classes: np.ndarray
    uncertainty: np.ndarray
    valid: np.ndarray
    window: Window
    geotransform: tuple[float, ...]
    projection: str
    class_names: list[str]
    colours: list[tuple[int, int, int]]
    kind: str
    pixel_size_m: float
    seconds: float = 0.0
    device: str = "cpu"
    shrunk: bool = False  # the requested window was larger than MAX_PIXELS

    @property
    def iterations(self) -> int:
        return self.classes.shape[0] - 1

    @property
    def window_geotransform(self) -> tuple[float, ...]:
        gt, (x0, y0) = self.geotransform, self.window[:2]
        return (
            gt[0] + x0 * gt[1] + y0 * gt[2],
            gt[1],
            gt[2],
            gt[3] + x0 * gt[4] + y0 * gt[5],
            gt[4],
            gt[5],
        )

    def box_to_map(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[float, float, float, float]:
        """Window pixel box -> ``(xmin, ymin, xmax, ymax)`` in the raster's CRS."""
        gt = self.window_geotransform
        xs = [gt[0] + px * gt[1] + py * gt[2] for px in (x0, x1) for py in (y0, y1)]
        ys = [gt[3] + px * gt[4] + py * gt[5] for px in (x0, x1) for py in (y0, y1)]
        return min(xs), min(ys), max(xs), max(ys)


def clip_window(
    window: Window | None, width: int, height: int, max_pixels: int = MAX_PIXELS
) -> tuple[Window, bool]:
    """The window inside the raster; a too-large one shrinks around its centre."""
    x0, y0, x1, y1 = window if window else (0, 0, width, height)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if x1 <= x0 or y1 <= y0:
        raise MapRefinerError("The view does not overlap the raster; pan to the raster first.")
    w, h = x1 - x0, y1 - y0
    if w * h <= max_pixels:
        return (x0, y0, x1, y1), False
    scale = (max_pixels / (w * h)) ** 0.5
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    nx0, ny0 = max(x0, cx - nw // 2), max(y0, cy - nh // 2)
    return (nx0, ny0, min(x1, nx0 + nw), min(y1, ny0 + nh)), True


def compute_trajectory(
    image: Path,
    iterations: int,
    model_path: Path | None = None,
    window: Window | None = None,
    kind: str = "entropy",
    device: str = "auto",
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    max_pixels: int = MAX_PIXELS,
    tile_size: int = 512,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> Trajectory:
    """Class maps and uncertainty at iterations ``0..iterations`` over ``window``."""
    t0 = time.perf_counter()
    rep = make_reporter(progress, is_cancelled)
    if iterations < 0:
        raise MapRefinerError("The number of iterations must be 0 or more.")
    ds = open_raster(image)
    info = raster_info(ds)
    configure_threads()
    dev = resolve_device(device)
    autocast = inference_autocast("auto", dev)
    net, config = load_model(model_path, dev)
    net.to(dev).eval()
    band_list = stack_bands(list(bands) if bands else None, config)
    check_bands(info, band_list)
    if len(band_list) != config.in_channels:
        raise MapRefinerError(
            f"The model needs {config.in_channels} bands; {len(band_list)} were chosen."
        )
    rx, ry = ground_resolution(info, input_resolution_m)
    grids = make_grids(info.width, info.height, rx, ry, config.ground_resolution_m)
    win, shrunk = clip_window(window, info.width, info.height, max_pixels)
    x0, y0, x1, y1 = win
    tiles = [
        t
        for t in plan_tiles(grids, iterations, tile_size)
        if t.x0 < x1 and t.x1 > x0 and t.y0 < y1 and t.y1 > y0
    ]
    n, h, w = iterations + 1, y1 - y0, x1 - x0
    classes = np.full((n, h, w), CLASS_NODATA, dtype=np.uint8)
    unc = np.zeros((n, h, w), dtype=np.float16)
    valid = np.zeros((h, w), dtype=bool)
    for i, tile in enumerate(tiles):
        rep.check()
        res = predict_tile(
            net, config, ds, band_list, grids, tile, iterations, dev, True, autocast=autocast
        )
        probs = torch.softmax(res.logits.float(), dim=1).cpu().numpy()  # (n, K, th, tw)
        ox0, oy0 = max(tile.x0, x0), max(tile.y0, y0)
        ox1, oy1 = min(tile.x1, x1), min(tile.y1, y1)
        src = np.s_[:, :, oy0 - tile.y0 : oy1 - tile.y0, ox0 - tile.x0 : ox1 - tile.x0]
        dst = np.s_[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
        p = probs[src]
        ok = res.valid[src[2:]]
        cls = p.argmax(axis=1).astype(np.uint8)
        cls[:, ~ok] = CLASS_NODATA
        classes[(slice(None),) + dst] = cls
        unc[(slice(None),) + dst] = np.where(ok, uncertainty(p, kind, axis=1), 0.0)
        valid[dst] = ok
        rep.report((i + 1) / len(tiles))
    return Trajectory(
        classes,
        unc,
        valid,
        win,
        tuple(info.geotransform),
        info.projection,
        list(config.class_names),
        config.colours,
        kind,
        float((rx * ry) ** 0.5),
        time.perf_counter() - t0,
        device_label(dev, autocast),
        shrunk,
    )
