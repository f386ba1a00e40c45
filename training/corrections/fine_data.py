"""The drawn corrections on the detail grid: what the fine-tune's detail stage learns from.

A model with a detail RNN ends a refine of imagery finer than its grid with that RNN's
iterations on the fine grid (engine/refine/tiling.make_detail, predict.detail_scores).
What the user sees there is the detail RNN's output, so a fine-tune that fits only the
model grid's networks can be overruled by it (docs/results_corrections.md, "Session
12"). This module reads, around each drawn polygon, the image on the fine grid and the
drawn classes burned there, as a refine would read them; detail_stage.py fits the
detail RNN on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...engine.modelfile.config import ModelConfig
from ...engine.rasters.grid import grid_of, scaled, window
from ...engine.rasters.read import ground_resolution, open_image, raster_info
from ...engine.refine.predict import for_image, model_image, stack_bands
from ...engine.refine.resample import AxisBand, axis_band
from ...engine.refine.tiling import Detail, Grids, make_detail
from ..data import model_grids
from .data import Corrections, _labels_on_cells

log = logging.getLogger(__name__)
#: Model pixels of context read around each polygon on the fine grid: room for the
#: anchors (the starting map where it was sure) and the detail RNN's own context.
FINE_MARGIN = 12
#: The most fine pixels the detail stage reads in all (4 x 2048^2). Corrections that
#: cover more (very large polygons on very fine imagery) skip the stage, with a log line:
#: the model-grid fine-tune still runs, and the drawn polygons are still kept.
MAX_FINE_PIXELS = 16_000_000


@dataclass
class FineCrop:
    """One polygon's surroundings on the detail grid."""

    image: torch.Tensor  # (C, h, w), normalised as the model's input
    labels: torch.Tensor  # (h, w) long, IGNORE where nothing was drawn
    features: torch.Tensor  # (h, w) long, drawn feature number, -1 where none
    rows: AxisBand  # the correction window's model-grid rows -> this crop's rows
    cols: AxisBand


@dataclass
class FineCorrections:
    detail: Detail
    crops: list[FineCrop]


def detail_run(
    ds, grids: Grids, config: ModelConfig, input_resolution_m: float | None
) -> Detail | None:
    """The detail grid a refine of ``ds`` (on the model ``grids``) runs by default with
    this model, or None (no detail RNN, or the image is not fine enough)."""
    if config.detail_iterations <= 0:
        return None
    rx, ry = ground_resolution(raster_info(ds), input_resolution_m)
    return make_detail(
        grids,
        rx,
        ry,
        config.ground_resolution_m,
        None,
        model_iterations=config.detail_iterations,
    )


def load_fine_corrections(
    image_path: Path | str,
    corr: Corrections,
    config: ModelConfig,
    bands: list[int] | None,
    input_resolution_m: float | None = None,
) -> FineCorrections | None:
    """Each drawn polygon of ``corr`` with FINE_MARGIN model pixels around it, on the
    detail grid a refine of this image would use; None when no detail iterations would
    run, or when the crops would exceed MAX_FINE_PIXELS."""
    if len(corr.pieces) > 1:
        log.info(
            "the corrections lie in %d windows apart: the detail RNN is not fitted this round",
            len(corr.pieces),
        )
        return None
    ds = open_image(image_path)
    bands = stack_bands(ds, bands, config)
    grids = model_grids(ds, config, input_resolution_m)
    detail = detail_run(ds, grids, config, input_resolution_m)
    if detail is None:
        return None
    fine = detail.grids(grids)
    mw, mh = grids.model_width, grids.model_height
    sx, sy = detail.width / mw, detail.height / mh
    wx0, wy0, wx1, wy1 = corr.tile.window
    boxes = corr.boxes(sorted(corr.feature_classes()))
    spans = []
    for y0, y1, x0, x1 in boxes:  # window-relative model pixels -> absolute fine pixels
        ax0, ax1 = max(wx0, wx0 + x0 - FINE_MARGIN), min(wx1, wx0 + x1 + FINE_MARGIN)
        ay0, ay1 = max(wy0, wy0 + y0 - FINE_MARGIN), min(wy1, wy0 + y1 + FINE_MARGIN)
        fx0, fx1 = int(np.floor(ax0 * sx)), min(detail.width, int(np.ceil(ax1 * sx)))
        fy0, fy1 = int(np.floor(ay0 * sy)), min(detail.height, int(np.ceil(ay1 * sy)))
        spans.append((fx0, fy0, fx1, fy1))
    total = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in spans)
    if total > MAX_FINE_PIXELS:
        log.info(
            "the corrections cover %d pixels of the detail grid (at most %d): the detail "
            "RNN is not fitted this round",
            total,
            MAX_FINE_PIXELS,
        )
        return None
    cfg = for_image(config, ds, bands, grids)  # the model grid's statistics, as a refine
    image_grid = grid_of(ds)
    fine_geo = scaled(image_grid, detail.width, detail.height)
    crops = []
    dev = torch.device("cpu")
    for fx0, fy0, fx1, fy1 in spans:
        img = model_image(ds, bands, fine, cfg, fx0, fy0, fx1, fy1, dev)
        labels = _labels_on_cells(
            corr.labelled_by, (detail.width, detail.height), (fx0, fy0, fx1, fy1)
        )
        feats = corr.labelled_by.features_on(window(fine_geo, fx0, fy0, fx1 - fx0, fy1 - fy0))
        crops.append(
            FineCrop(
                img.float().contiguous(),
                torch.from_numpy(labels.astype(np.int64)),
                torch.from_numpy(feats.astype(np.int64)),
                axis_band(fy0, fy1, sy, wy0, wy1, mh),
                axis_band(fx0, fx1, sx, wx0, wx1, mw),
            )
        )
    log.info(
        "detail grid %d x %d: %d crops, %d fine pixels",
        detail.width,
        detail.height,
        len(crops),
        total,
    )
    return FineCorrections(detail, crops)
