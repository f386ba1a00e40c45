"""Scores of a class map against a reference raster: both brought onto the
reference's grid, then scored (engine/scoring/scores.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..labels.rasters import pixels_of_255, read_block, refuse_0_255_mask, to_labels
from ..rasters.grid import GridSpec, grid_of
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
            ref, n_ref = _labels_on(ref_ds, grid, block, reference_value_map, ref_name)
            pred, n_pred = _labels_on(pred_ds, grid, block, prediction_value_map, pred_name)
            ignored_255[0] += n_ref
            ignored_255[1] += n_pred
            predicted = predicted or bool((pred != IGNORE).any())
            cm += confusion_matrix(pred, ref, k)
    if not predicted:
        raise MapRefinerError(
            f"The prediction {pred_name} has no data over the reference {ref_name}; check "
            "that they cover the same area and that their CRSs are set."
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


def _labels_on(
    ds: gdal.Dataset,
    grid: GridSpec,
    block: tuple[int, int, int, int],
    value_map: Mapping[object, int] | None,
    name: str,
) -> tuple[np.ndarray, int]:
    """``block`` of ``ds`` as labels on ``grid``, and its pixels of 255 no value map
    names (labels.rasters.pixels_of_255)."""
    values, valid = read_block(ds, grid, block)
    return to_labels(values, valid, value_map, name), pixels_of_255(values, valid, value_map)
