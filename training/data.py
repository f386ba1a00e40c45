"""Training tiles: an image and its labels on the model's grid, in memory.

Training reads whole (small) tiles or the window around some correction
polygons; labels use 255 for pixels the loss ignores.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from osgeo import gdal

from ..engine.errors import MapRefinerError
from ..engine.labels import rasterize as label_io
from ..engine.limits import check_training_size
from ..engine.modelfile.config import ModelConfig
from ..engine.rasters.read import (
    at_declared_nodata,
    check_bands,
    ground_resolution,
    open_image,
    raster_info,
)
from ..engine.refine.predict import for_image, model_image, stack_bands
from ..engine.refine.tiling import Grids, make_grids
from .tile import IGNORE, LabelSource, TrainingTile

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


def image_labels(ds: gdal.Dataset, source: LabelSource, class_names: Sequence[str]) -> np.ndarray:
    """Labels on the image's own grid (uint8, 255 = ignore)."""
    grid = label_io.grid_of(ds)
    if source.is_vector:
        vm = {str(k): int(v) for k, v in source.value_map.items()} if source.value_map else None
        return label_io.rasterize_vector(
            source.path,
            grid,
            list(class_names),
            class_field=source.class_field,
            value_map=vm,
            layer=source.layer,
            line_width_m=source.line_width_m,
            mode=source.mode,
            extent=source.extent,
        )
    vm = {int(float(k)): int(v) for k, v in (source.value_map or {}).items()} or None
    return label_io.read_label_raster(source.path, grid, vm)


def model_grids(
    ds: gdal.Dataset, config: ModelConfig, input_resolution_m: float | None = None
) -> Grids:
    info = raster_info(ds)
    rx, ry = ground_resolution(info, input_resolution_m)
    return make_grids(info.width, info.height, rx, ry, config.ground_resolution_m)


def labelled_window(labels_model: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """Model-grid bounding box of the labelled pixels, grown by ``margin``, aligned to 4."""
    ys, xs = np.nonzero(labels_model != IGNORE)
    if len(xs) == 0:
        raise MapRefinerError(
            "No labelled pixels fall on the image: check that the labels overlap the raster, "
            "that their class values are known to the model, and the class field."
        )
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return grown_box(box, margin, (labels_model.shape[1], labels_model.shape[0]))


def grown_box(
    box: tuple[int, int, int, int], margin: int, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The pixels ``box`` (x0, y0, x1, y1) grown by ``margin`` within a grid of ``size``
    (width, height), its first corner on the stride-4 lattice."""
    x0, y0, x1, y1 = box
    return (
        max(0, (x0 - margin) // 4 * 4),
        max(0, (y0 - margin) // 4 * 4),
        min(size[0], x1 + margin),
        min(size[1], y1 + margin),
    )


def load_training_tile(
    image_path: PathLike,
    source: LabelSource,
    config: ModelConfig,
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    margin: int | None = None,
    extra_ignore: np.ndarray | None = None,
    chunk: int = 1024,
    allow_large: bool = False,
) -> TrainingTile:
    """Read the image and labels onto the model grid.

    With ``margin`` set, only the window around the labelled pixels (grown by
    ``margin`` model pixels of context) is read: fine-tuning on a few polygons
    of a large raster stays fast. ``extra_ignore`` (image grid, bool) marks
    pixels whose labels must not be used (e.g. held-out tiles).
    """
    ds = open_image(image_path)
    info = raster_info(ds)
    bands = stack_bands(ds, bands, config)
    check_bands(info, bands)
    grids = model_grids(ds, config, input_resolution_m)
    check_training_size(
        (info.width, info.height),
        (grids.model_width, grids.model_height),
        len(bands),
        allow_large,
    )
    lab = image_labels(ds, source, config.class_names)
    if extra_ignore is not None:
        lab = np.where(extra_ignore, IGNORE, lab).astype(np.uint8)
    # Checked on the image grid: a few pixels of an unknown class could lose every
    # majority vote on a coarser model grid and pass unnoticed.
    bad = (lab != IGNORE) & (lab >= config.num_classes)
    if bad.any():
        raise MapRefinerError(
            f"The labels hold class values up to {int(lab[lab != IGNORE].max())} but the model "
            f"has {config.num_classes} classes ({', '.join(config.class_names)}); map the label "
            "values to the model's classes."
        )
    lab_m = label_io.downsample_labels(lab, grids.model_width, grids.model_height)
    if margin is None:
        window = (0, 0, grids.model_width, grids.model_height)
    else:
        window = labelled_window(lab_m, margin)
    x0, y0, x1, y1 = window
    image = read_model_window(ds, bands, grids, config, window, chunk)
    labels = torch.from_numpy(np.ascontiguousarray(lab_m[y0:y1, x0:x1]))
    tile = TrainingTile(image, labels, window)
    log.info(
        "training tile %s: model window %s, %d labelled pixels",
        Path(image_path).name,
        tile.window,
        tile.labelled_pixels,
    )
    return tile


def read_model_window(
    ds: gdal.Dataset,
    bands: Sequence[int],
    grids: Grids,
    config: ModelConfig,
    window: tuple[int, int, int, int],
    chunk: int = 1024,
) -> torch.Tensor:
    """The normalised image on the model-grid ``window`` (x0, y0, x1, y1), ``(C, h, w)``,
    read in chunks so that a large window never needs a second full-size copy. A model
    that normalises by each image's own statistics gets those of the whole raster (not
    of the window), as a refine of the raster does."""
    config = for_image(config, ds, bands, grids)
    x0, y0, x1, y1 = window
    image = torch.empty((len(bands), y1 - y0, x1 - x0), dtype=torch.float32)
    dev = torch.device("cpu")
    for cy in range(y0, y1, chunk):
        for cx in range(x0, x1, chunk):
            ey, ex = min(y1, cy + chunk), min(x1, cx + chunk)
            image[:, cy - y0 : ey - y0, cx - x0 : ex - x0] = model_image(
                ds, bands, grids, config, cx, cy, ex, ey, dev
            )
    return image


def band_statistics(
    image_path: PathLike, bands: Sequence[int], max_pixels: int = 4_000_000
) -> tuple[list[float], list[float]]:
    """Mean and std of each band over valid pixels (subsampled), for normalisation."""
    ds = open_image(image_path)
    check_bands(raster_info(ds), bands)
    step = max(1, int(math.sqrt(ds.RasterXSize * ds.RasterYSize / max_pixels)))
    bw, bh = max(1, ds.RasterXSize // step), max(1, ds.RasterYSize // step)
    arrs, valid = [], np.ones((bh, bw), dtype=bool)
    for b in bands:
        band = ds.GetRasterBand(b)
        try:
            a = band.ReadAsArray(
                buf_xsize=bw, buf_ysize=bh, resample_alg=gdal.GRIORA_NearestNeighbour
            ).astype(np.float64)
        except RuntimeError as exc:
            raise MapRefinerError(
                f"Cannot read the pixels of {Path(image_path).name}: the file "
                "is damaged or truncated; use a complete copy.",
                details=str(exc),
            ) from exc
        valid &= np.isfinite(a)
        arrs.append(a)
    at_nodata = at_declared_nodata(arrs, [ds.GetRasterBand(b) for b in bands])
    if at_nodata is not None:
        valid &= ~at_nodata
    stack = np.stack(arrs)
    # All-zero pixels are treated as "no image" (mosaics are black where no tile).
    valid &= stack.sum(axis=0) > 0
    if not valid.any():
        raise MapRefinerError(f"{Path(image_path).name} has no valid pixels to learn from.")
    sel = stack[:, valid]
    return [float(v) for v in sel.mean(axis=1)], [float(max(v, 1e-3)) for v in sel.std(axis=1)]
