"""Scores of a class map against a reference raster: both brought onto the
reference's grid, then scored (engine/scoring/scores.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..labels.rasters import read_block, refuse_0_255_mask, to_labels
from ..rasters.grid import grid_of
from ..rasters.read import open_raster
from ..refine.memory import bounded_memory
from .scores import Scores, confusion_matrix

PathLike = Union[str, Path]
BLOCK_PIXELS = 1 << 20  # pixels of each raster read at once (a few MB)


def evaluate_rasters(
    prediction_path: PathLike,
    reference_path: PathLike,
    class_names: Sequence[str],
    reference_value_map: Mapping[object, int] | None = None,
    prediction_value_map: Mapping[object, int] | None = None,
) -> Scores:
    """Score a class map against a reference, on the reference's grid.

    A prediction on another grid or CRS is warped onto it (nearest neighbour).
    Value maps turn raster values into class indices (unmapped values are
    ignored); without one, values are class indices. Nodata, IGNORE (255) and
    pixels outside either raster are not scored.
    """
    ref_ds, pred_ds = open_raster(reference_path), open_raster(prediction_path)
    grid = grid_of(ref_ds)
    k = len(class_names)
    cm = np.zeros((k, k), dtype=np.int64)
    predicted = False
    ignored_255 = [0, 0]  # reference, prediction pixels of 255 with data: IGNORE (no map)
    rows = max(1, BLOCK_PIXELS // grid.width)
    ref_name = Path(str(reference_path)).name
    pred_name = Path(str(prediction_path)).name
    with bounded_memory():  # a block of rows at a time, GDAL's cache capped: memory flat
        for y0 in range(0, grid.height, rows):
            block = (0, y0, grid.width, min(rows, grid.height - y0))
            values, valid = read_block(ref_ds, grid, block)
            ref = to_labels(values, valid, reference_value_map, ref_name)
            if reference_value_map is None:
                ignored_255[0] += int((valid & (values == IGNORE)).sum())
            values, valid = read_block(pred_ds, grid, block)
            pred = to_labels(values, valid, prediction_value_map, pred_name)
            if prediction_value_map is None:
                ignored_255[1] += int((valid & (values == IGNORE)).sum())
            predicted = predicted or bool((pred != IGNORE).any())
            cm += confusion_matrix(pred, ref, k)
    if not predicted:
        raise MapRefinerError(
            f"The prediction {Path(str(prediction_path)).name} has no data over "
            f"the reference {Path(str(reference_path)).name}; check that they "
            "cover the same area and that their CRSs are set."
        )
    refuse_0_255_mask(ignored_255[0], bool(cm[1:].sum()), f"The reference {ref_name}")  # rows
    refuse_0_255_mask(ignored_255[1], bool(cm[:, 1:].sum()), f"The prediction {pred_name}")
    scores = Scores.from_confusion(cm, class_names)
    if scores.pixel_count == 0:
        raise MapRefinerError(
            "No pixel has data in both the prediction and the reference; "
            "check their nodata values and value maps."
        )
    return scores
