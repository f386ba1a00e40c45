"""Scores of a class map against a reference raster: both brought onto the
reference's grid, then scored (engine/scoring/scores.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..labels.rasters import read_on_grid, to_labels
from ..rasters.grid import GridSpec, grid_of
from ..rasters.read import open_raster
from .scores import Scores, confusion_matrix

PathLike = Union[str, Path]


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
    grid = grid_of(open_raster(reference_path))
    ref = _labels_on(reference_path, grid, reference_value_map)
    pred = _labels_on(prediction_path, grid, prediction_value_map)
    if (pred == IGNORE).all():
        raise MapRefinerError(
            f"The prediction {Path(str(prediction_path)).name} has no data over "
            f"the reference {Path(str(reference_path)).name}; check that they "
            "cover the same area and that their CRSs are set."
        )
    scores = Scores.from_confusion(confusion_matrix(pred, ref, len(class_names)), class_names)
    if scores.pixel_count == 0:
        raise MapRefinerError(
            "No pixel has data in both the prediction and the reference; "
            "check their nodata values and value maps."
        )
    return scores


def _labels_on(
    path: PathLike, grid: GridSpec, value_map: Mapping[object, int] | None
) -> np.ndarray:
    values, valid = read_on_grid(path, grid)
    return to_labels(values, valid, value_map, Path(str(path)).name)
