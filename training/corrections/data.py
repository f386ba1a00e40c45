"""The corrections a fine-tune learns from, on the model's grid.

The drawn polygons are burned onto the image (with the polygons of earlier rounds
on the same image, which the base model keeps), carried to the model grid, and
numbered by the feature they came from, so that whole polygons can be held out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ...engine.errors import MapRefinerError
from ...engine.labels.kept import KeptCorrections, from_config, merged
from ...engine.labels.rasterize import burn_vector, downsample_labels
from ...engine.modelfile.config import ModelConfig
from ...engine.rasters.grid import grid_of, scaled
from ...engine.rasters.read import check_bands, open_raster, raster_info
from ..data import labelled_window, model_grids, read_model_window
from ..tile import IGNORE, LabelSource, TrainingTile

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
#: Images whose model grid is at most this many pixels are read whole (context for
#: the anchors and the held-out check); larger ones only around the corrections.
WHOLE_IMAGE_PIXELS = 4_000_000
#: Model pixels of context read around the corrections of a large image.
MARGIN = 192


@dataclass
class Corrections:
    """The image and the drawn labels on a model-grid window, and which polygon
    each labelled pixel belongs to."""

    tile: TrainingTile
    features: torch.Tensor  # (h, w) int64: drawn feature number, -1 where none
    kept: KeptCorrections  # every polygon so far, on the image grid

    def boxes(self, features: Sequence[int]) -> list[tuple[int, int, int, int]]:
        """Each feature's bounding box on the window, ``(y0, y1, x0, x1)``."""
        out = []
        for f in features:
            ys, xs = torch.nonzero(self.features == f, as_tuple=True)
            if len(ys):
                out.append((int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1))
        return out

    def feature_classes(self) -> dict[int, int]:
        """Feature number -> class, for the features that reach the model grid."""
        lab, ids = self.tile.labels, self.features
        out: dict[int, int] = {}
        for f in torch.unique(ids[(ids >= 0) & (lab != IGNORE)]).tolist():
            values = lab[(ids == f) & (lab != IGNORE)]
            out[int(f)] = int(torch.mode(values.long()).values)
        return out


def load_corrections(
    image_path: PathLike,
    source: LabelSource,
    config: ModelConfig,
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
) -> Corrections:
    """Read the correction layer (sparse: only drawn pixels count) and the image."""
    if not source.is_vector or source.mode != "sparse":
        raise MapRefinerError(
            "A fine-tune learns from correction polygons: give a vector layer in sparse mode "
            "(only the pixels inside the polygons count). To train on a fully labelled tile or "
            "a label raster, use train-rnn."
        )
    ds = open_raster(image_path)
    info = raster_info(ds)
    bands = list(bands) if bands else list(config.bands)
    check_bands(info, bands)
    grid = grid_of(ds)
    vm = {str(k): int(v) for k, v in source.value_map.items()} if source.value_map else None
    drawn = burn_vector(
        source.path,
        grid,
        config.class_names,
        class_field=source.class_field,
        value_map=vm,
        layer=source.layer,
        line_width_m=source.line_width_m,
        mode="sparse",
    )
    new = KeptCorrections(grid, drawn.shapes, Path(image_path).name)
    kept = merged(from_config(config.corrections, config.num_classes), new)
    if len(kept.shapes) > len(new.shapes):
        log.info(
            "the base model's %d earlier corrections of this image are learnt again",
            kept.features - new.features,
        )
    grids = model_grids(ds, config, input_resolution_m)
    model_grid = scaled(grid, grids.model_width, grids.model_height)
    labels = downsample_labels(kept.labels_on(grid), grids.model_width, grids.model_height)
    if not (labels != IGNORE).any():
        raise MapRefinerError(
            "The corrections are too small to show on the model's grid "
            f"({config.ground_resolution_m:g} m pixels); draw polygons a few metres across."
        )
    if grids.model_width * grids.model_height <= WHOLE_IMAGE_PIXELS:
        window = (0, 0, grids.model_width, grids.model_height)
    else:
        window = labelled_window(labels, MARGIN)
    x0, y0, x1, y1 = window
    features = kept.features_on(model_grid)[y0:y1, x0:x1].astype(np.int64)
    image = read_model_window(ds, bands, grids, config, window)
    tile = TrainingTile(image, torch.from_numpy(np.ascontiguousarray(labels[y0:y1, x0:x1])), window)
    log.info(
        "corrections on %s: %d polygons, %d model pixels drawn, model window %s",
        Path(image_path).name,
        kept.features,
        tile.labelled_pixels,
        window,
    )
    return Corrections(tile, torch.from_numpy(np.ascontiguousarray(features)), kept)
