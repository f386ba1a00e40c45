"""Retraining the coarse CNN for the experiment (``--retrain-cnn``): the same
recipe as the bundled model's (``dev/default_model/build.py``), Xiamen's
imprecise OSM mask on its ``training.tiles`` only. Slow on a CPU."""

from __future__ import annotations

from pathlib import Path

from ...engine.rasters.read import open_raster
from ...training.coarse import CoarseParams, train_coarse
from ...training.tile import LabelSource
from ..webtiles import split_mask

RESOLUTION_M = 0.6


def retrain_cnn(data: Path, work: Path, steps: int, seed: int, device: str) -> Path:
    """Train the CNN (validation and evaluation tiles held out); returns the model file."""
    image = data / "xiamen" / "xiamen_rgb.tif"
    held_out = ~split_mask(open_raster(image), data / "xiamen" / "training.tiles")
    params = CoarseParams(
        image=image,
        labels=LabelSource(data / "xiamen" / "xiamen_osm_buildings_mask.tif", {"0": 0, "1": 1}),
        out=work / "coarse_retrained.safetensors",
        ground_resolution_m=RESOLUTION_M,
        steps=steps,
        seed=seed,
        device=device,
        overwrite=True,
        name="experiment coarse CNN",
        ignore_mask=held_out,
    )
    return train_coarse(params).model
