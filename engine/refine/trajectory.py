"""The refinement step by step over one window of a raster (the view), kept in memory.

For an iteration slider: the class map and the uncertainty at iterations
``0..N`` of a window. A refine keeps them from its own pass when asked
(``RefineParams.keep_iterations``); :func:`compute_trajectory` runs a pass over
the window alone. Either way the window is covered by the refine's output tiles
(same model grid, same halo) and the model's kept corrections are burned in as
a refine burns them, so iteration ``t`` here is the class map ``refine_raster``
writes with ``iterations=t``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MapRefinerError
from ..labels.kept import burn_into
from ..limits import check_iterations
from ..networks.inference import class_argmax
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.write import CLASS_NODATA
from .params import MAX_PIXELS, Window
from .refine_pass import RefinePass, open_pass
from .tiling import Tile
from .uncertainty import KINDS, uncertainty


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
    model_name: str = ""
    detail_iterations: int = 0  # the last map went on through this many on a finer grid
    detail_resolution_m: float = 0.0  # that grid's pixel size (0: no detail iterations)

    @property
    def iterations(self) -> int:
        return self.classes.shape[0] - 1

    @property
    def nbytes(self) -> int:
        """The memory its maps hold: class maps, uncertainty and the valid mask."""
        return self.classes.nbytes + self.uncertainty.nbytes + self.valid.nbytes

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


class TrajectoryCollector:
    """The iterations ``0..N`` of a pass, gathered from the tiles that overlap a window."""

    def __init__(
        self, p: RefinePass, window: Window | None, kind: str, max_pixels: int | None = None
    ) -> None:
        if kind not in KINDS:
            raise MapRefinerError(f"Unknown uncertainty {kind!r}; use one of {', '.join(KINDS)}.")
        limit = MAX_PIXELS if max_pixels is None else max_pixels
        self.p, self.kind = p, kind
        self.window, self.shrunk = clip_window(window, p.info.width, p.info.height, limit)
        x0, y0, x1, y1 = self.window
        n, h, w = p.iterations + 1, y1 - y0, x1 - x0
        self.keep = list(range(n))  # the iterations a tile it wants must return
        self.classes = np.full((n, h, w), CLASS_NODATA, dtype=np.uint8)
        self.uncertainty = np.zeros((n, h, w), dtype=np.float16)
        self.valid = np.zeros((h, w), dtype=bool)

    def wants(self, tile: Tile) -> bool:
        x0, y0, x1, y1 = self.window
        return tile.x0 < x1 and tile.x1 > x0 and tile.y0 < y1 and tile.y1 > y0

    def add(
        self, tile: Tile, logits: torch.Tensor, valid: np.ndarray, drawn: np.ndarray | None
    ) -> None:
        """A tile's scores at every iteration ``(N+1, K, h, w)``, its valid mask and the
        kept corrections on it (see RefinePass.drawn)."""
        x0, y0, x1, y1 = self.window
        ox0, oy0 = max(tile.x0, x0), max(tile.y0, y0)
        ox1, oy1 = min(tile.x1, x1), min(tile.y1, y1)
        src = np.s_[oy0 - tile.y0 : oy1 - tile.y0, ox0 - tile.x0 : ox1 - tile.x0]
        dst = np.s_[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
        part = logits[:, :, src[0], src[1]]
        ok = valid[src]
        # Classes as the refine takes them (arg-max of the scores, first class on ties).
        cls = class_argmax(part.transpose(0, 1)).cpu().numpy()
        probs = torch.softmax(part.float(), dim=1).cpu().numpy()
        cls[:, ~ok] = CLASS_NODATA
        if drawn is not None:
            for t in range(cls.shape[0]):
                burn_into(drawn[src], cls[t], probs[t], ok)
        self.classes[(slice(None),) + dst] = cls
        self.uncertainty[(slice(None),) + dst] = np.where(ok, uncertainty(probs, self.kind, 1), 0.0)
        self.valid[dst] = ok

    def result(self, seconds: float) -> Trajectory:
        p = self.p
        return Trajectory(
            self.classes,
            self.uncertainty,
            self.valid,
            self.window,
            tuple(p.info.geotransform),
            p.info.projection,
            list(p.config.class_names),
            p.config.colours,
            self.kind,
            p.pixel_size_m,
            seconds,
            p.device_label,
            self.shrunk,
            p.config.name,
            p.detail.iterations if p.detail is not None else 0,
            min(p.detail.resolution_m) if p.detail is not None else 0.0,
        )


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
    precision: str = "auto",
    keep_corrections: bool = True,
    detail_iterations: int | None = 0,
    detail_resolution_m: float | None = None,
) -> Trajectory:
    """Class maps and uncertainty at iterations ``0..iterations`` over ``window``,
    from a pass over the tiles that cover it; with ``detail_iterations``, the last one
    goes on through that many on a finer grid, as ``refine_raster`` runs them."""
    t0 = time.perf_counter()
    rep = make_reporter(progress, is_cancelled)
    iterations = check_iterations(iterations)
    p = open_pass(
        image,
        model_path,
        device=device,
        precision=precision,
        bands=bands,
        iterations=iterations,
        input_resolution_m=input_resolution_m,
        tile_size=tile_size,
        keep_corrections=keep_corrections,
        detail_iterations=detail_iterations,
        detail_resolution_m=detail_resolution_m,
    )
    kept = TrajectoryCollector(p, window, kind, max_pixels)
    tiles = [t for t in p.tiles() if kept.wants(t)]
    for i, tile in enumerate(tiles):
        rep.check()
        res = p.predict(tile, kept.keep)
        kept.add(tile, res.logits, res.valid, p.drawn(tile))
        rep.report((i + 1) / len(tiles))
    return kept.result(time.perf_counter() - t0)
