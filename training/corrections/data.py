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
from ...engine.labels.rasterize import vector_shapes
from ...engine.labels.rasters import cells_of_pixels, downsample_window, pixels_of_cells
from ...engine.modelfile.config import ModelConfig
from ...engine.rasters.grid import grid_of, scaled, window
from ...engine.rasters.read import check_bands, open_raster, raster_info
from ..data import grown_box, model_grids, read_model_window
from ..tile import IGNORE, LabelSource, TrainingTile

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
#: Images whose model grid is at most this many pixels are read whole (context for
#: the anchors and the held-out check); larger ones only around the corrections.
WHOLE_IMAGE_PIXELS = 4_000_000
#: Model pixels of context read around the corrections of a large image.
MARGIN = 192
#: The most model pixels a fine-tune holds around the corrections of a large image
#: (4000 x 4000). The fit keeps the window's image, its frozen CNN features, the base
#: model's map and the anchors (which cover the whole window) for every pixel, so its
#: memory grows with the window: corrections spread wider than this over a large image
#: are refused with what to do, before the image is read. Windows within it are
#: exactly what they were before the bound (whole images up to WHOLE_IMAGE_PIXELS,
#: else the corrections' box and MARGIN), so the same polygons give the same model.
MAX_WINDOW_PIXELS = 16_000_000


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
    allow_large: bool = False,
) -> Corrections:
    """Read the correction layer (sparse: only drawn pixels count) and the image
    (``allow_large``: around corrections spread past MAX_WINDOW_PIXELS too)."""
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
    drawn = vector_shapes(
        source.path,
        grid,
        config.class_names,
        class_field=source.class_field,
        value_map=vm,
        layer=source.layer,
        line_width_m=source.line_width_m,
    )
    new = KeptCorrections(grid, drawn.shapes, Path(image_path).name)
    kept = merged(from_config(config.corrections, config.num_classes), new)
    earlier = len(kept.shapes) > len(new.shapes)
    if earlier:
        log.info(
            "the base model's %d earlier corrections of this image are learnt again",
            kept.features - new.features,
        )
    grids = model_grids(ds, config, input_resolution_m)
    size = (grids.model_width, grids.model_height)
    drawn_box = _drawn_cells(kept, size)
    if drawn_box is None:
        raise MapRefinerError(
            "The corrections are too small to show on the model's grid "
            f"({config.ground_resolution_m:g} m pixels); draw polygons a few metres across."
        )
    if size[0] * size[1] <= WHOLE_IMAGE_PIXELS:
        win = (0, 0, *size)
    else:
        win = grown_box(drawn_box, MARGIN, size)
        if not allow_large:
            _check_window(win, config.ground_resolution_m, Path(image_path).name, earlier)
    x0, y0, x1, y1 = win
    model_grid = scaled(grid, *size)
    features = kept.features_on(window(model_grid, x0, y0, x1 - x0, y1 - y0)).astype(np.int64)
    labels = _labels_on_cells(kept, size, win)
    image = read_model_window(ds, bands, grids, config, win)
    tile = TrainingTile(image, torch.from_numpy(labels), win)
    log.info(
        "corrections on %s: %d polygons, %d model pixels drawn, model window %s",
        Path(image_path).name,
        kept.features,
        tile.labelled_pixels,
        win,
    )
    return Corrections(tile, torch.from_numpy(np.ascontiguousarray(features)), kept)


def _labels_on_cells(
    kept: KeptCorrections, size: tuple[int, int], cells: tuple[int, int, int, int]
) -> np.ndarray:
    """The drawn classes on the model-grid ``cells`` (x0, y0, x1, y1) of a model grid of
    ``size``: only the image pixels under them are burned."""
    g = kept.grid
    x0, y0, x1, y1 = cells
    px0, px1 = pixels_of_cells(g.width, size[0], x0, x1)
    py0, py1 = pixels_of_cells(g.height, size[1], y0, y1)
    on_image = kept.labels_on(window(g, px0, py0, px1 - px0, py1 - py0))
    return downsample_window(on_image, (g.width, g.height), size, cells)


def _drawn_cells(kept: KeptCorrections, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The box ``(x0, y0, x1, y1)`` of the model-grid cells the polygons label, or None.
    Each polygon is burned alone, around itself: a cell is labelled when any polygon
    labels a pixel in it, so the union of their boxes is the box of all of them burned
    together, and spread polygons never burn the image between them."""
    g = kept.grid
    boxes = []
    for shape in kept.shapes:
        box = kept.pixel_box([shape])
        if box is None:
            continue
        cx0, cx1 = cells_of_pixels(g.width, size[0], box[0], box[2])
        cy0, cy1 = cells_of_pixels(g.height, size[1], box[1], box[3])
        if cx0 == cx1 or cy0 == cy1:
            continue
        alone = KeptCorrections(g, [shape])
        ys, xs = np.nonzero(_labels_on_cells(alone, size, (cx0, cy0, cx1, cy1)) != IGNORE)
        if len(xs):
            boxes.append((cx0 + xs.min(), cy0 + ys.min(), cx0 + xs.max() + 1, cy0 + ys.max() + 1))
    if not boxes:
        return None
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _check_window(
    win: tuple[int, int, int, int], resolution_m: float, image: str, earlier: bool
) -> None:
    """Refuse a window past MAX_WINDOW_PIXELS before anything is read."""
    w, h = win[2] - win[0], win[3] - win[1]
    if w * h <= MAX_WINDOW_PIXELS:
        return
    side = int(MAX_WINDOW_PIXELS**0.5)
    also = " (with the earlier rounds' on this image)" if earlier else ""
    raise MapRefinerError(
        f"The corrections{also} on {image} spread over {w} x {h} pixels of the model's grid "
        f"({w * resolution_m / 1000:.1f} x {h * resolution_m / 1000:.1f} km); a fine-tune "
        f"holds that whole area in memory and takes at most {side} x {side} "
        f"({side * resolution_m / 1000:.1f} km across). Draw this round's corrections "
        "closer together, fine-tune on a crop of the image around them, or add "
        "--allow-large if this machine has the memory."
    )
