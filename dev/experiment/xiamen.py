"""The coarse CNN on Xiamen's held-out evaluation tiles, against the imprecise OSM mask.

Each evaluation web tile is refined through the engine's own pipeline
(:func:`engine.pipeline.refine_array`, 0 RNN iterations = the CNN) on a window
grown by ``margin`` source pixels of real context, and scored on the tile's
pixels against ``xiamen_osm_buildings_mask.tif`` (255 = no tile, not scored).
These labels are the imprecise ones the CNN was trained on, so the score says
how well the CNN learned its own task, not how accurate its maps are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.modelfile.config import ModelConfig
from ...engine.networks.models import MapRefinerNet
from ...engine.rasters.read import open_raster
from ...engine.refine.pipeline import refine_array
from ...engine.scoring.metrics import Scores, confusion_matrix
from ..webtiles import read_tiles, tile_pixel_box

MASK_VALUES = {0: 0, 1: 1}


def evaluate_split(
    net: MapRefinerNet,
    config: ModelConfig,
    image: Path,
    mask: Path,
    tiles_file: Path,
    margin: int = 64,
    limit: int = 0,
) -> Scores:
    """Scores of the CNN's class map on the tiles of ``tiles_file``.

    ``limit`` > 0 scores only the first ``limit`` tiles.
    """
    ds, mds = open_raster(image), open_raster(mask)
    k = config.num_classes
    cm = np.zeros((k, k), dtype=np.int64)
    lut = np.full(256, 255, dtype=np.uint8)
    for v, c in MASK_VALUES.items():
        lut[v] = c
    tiles = read_tiles(tiles_file)
    for x, y, z in tiles[:limit] if limit else tiles:
        c0, r0, c1, r1 = tile_pixel_box(ds, x, y, z)
        c0, r0 = max(0, c0), max(0, r0)
        c1, r1 = min(ds.RasterXSize, c1), min(ds.RasterYSize, r1)
        if c1 <= c0 or r1 <= r0:
            continue
        wx0, wy0 = max(0, c0 - margin), max(0, r0 - margin)
        wx1, wy1 = min(ds.RasterXSize, c1 + margin), min(ds.RasterYSize, r1 + margin)
        window = gdal.Translate("", ds, format="VRT", srcWin=[wx0, wy0, wx1 - wx0, wy1 - wy0])
        logits, valid = refine_array(net, config, window, 0)
        sl = (slice(r0 - wy0, r1 - wy0), slice(c0 - wx0, c1 - wx0))
        pred = logits.argmax(axis=0).astype(np.uint8)[sl]
        pred[~valid[sl]] = 255
        ref = lut[mds.GetRasterBand(1).ReadAsArray(c0, r0, c1 - c0, r1 - r0)]
        cm += confusion_matrix(pred, ref, k)
    return Scores.from_confusion(cm, config.class_names)


def tile_count(tiles_file: Path) -> int:
    return len(read_tiles(tiles_file))
