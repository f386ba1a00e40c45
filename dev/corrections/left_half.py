"""A scene's map, reference and left-half error regions, as the probes and figures that
look at drawn outlines read them (overdrawn_probe, snap_probe, overdrawn_figure,
dev/desktop/snap_corrections): the map a refine makes (cached as
``<maps>/<scene>_<tag>.tif``), the reference, and the error regions of the left half,
largest first (users.error_regions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from .scenes import Scene
from .study import building_mask, pixel_m, refine
from .users import Correction, error_regions


@dataclass
class LeftHalf:
    scene: Scene
    pred: np.ndarray  # (h, w) bool: the map's buildings
    ref: np.ndarray  # (h, w) bool: the reference's
    half: int  # the first column of the right half
    like: gdal.Dataset  # the image
    pixel_m: float
    errors: list[Correction]  # the left half's error regions, largest first

    def image(self) -> np.ndarray:
        """The image's first three bands, ``(3, h, w)`` float32."""
        return self.like.ReadAsArray()[:3].astype(np.float32)

    def missed(self, k: int) -> list[Correction]:
        """The ``k`` largest buildings the map missed."""
        return [c for c in self.errors if c[1] == 1][:k]


def left_half(scene: Scene, maps: Path, model: Path | None = None, reuse: bool = True) -> LeftHalf:
    """``scene`` read with its map (``model``'s, None the bundled default; made again
    unless ``reuse`` and ``maps`` holds it already)."""
    maps.mkdir(parents=True, exist_ok=True)
    made = maps / f"{scene.name}_{model.stem if model else 'default'}.tif"
    pred = building_mask(made) if reuse and made.exists() else refine(scene.image, made, model)[0]
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    like = gdal.Open(str(scene.image))
    regions = sorted(error_regions(pred, ref, half), key=lambda r: -r[0])
    return LeftHalf(scene, pred, ref, half, like, pixel_m(scene, like), [c for _, c in regions])
