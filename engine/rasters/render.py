"""Quick-look PNGs: image, class maps as overlays, side-by-side panels (GDAL PNG driver)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from osgeo import gdal

from .files import atomic_path

gdal.UseExceptions()


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` image of any range to ``(H, W, 3)`` uint8 with a 2-98 % stretch."""
    img = image[:3].astype(np.float32)
    if img.shape[0] < 3:
        img = np.repeat(img[:1], 3, axis=0)
    out = np.empty(img.shape[1:] + (3,), dtype=np.uint8)
    for i in range(3):
        lo, hi = np.percentile(img[i], [2, 98])
        out[..., i] = np.clip((img[i] - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return out


def overlay(
    rgb: np.ndarray,
    classes: np.ndarray,
    colours: Sequence[tuple[int, int, int]],
    alpha: float = 0.55,
    skip: Sequence[int] = (0,),
) -> np.ndarray:
    """Class colours blended over a greyed image; class boundaries drawn solid."""
    grey = rgb.mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.8 + 40
    out = grey.copy()
    edge = np.zeros(classes.shape, dtype=bool)
    edge[:-1] |= classes[:-1] != classes[1:]
    edge[:, :-1] |= classes[:, :-1] != classes[:, 1:]
    for k, c in enumerate(colours):
        if k in skip:
            continue
        m = classes == k
        out[m] = (1 - alpha) * out[m] + alpha * np.asarray(c, dtype=np.float64)
        out[m & edge] = np.asarray(c, dtype=np.float64) * 0.7
    return np.clip(out, 0, 255).astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    x = 0
    for p in panels:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as PNG, atomically."""
    path = Path(path)
    mem = gdal.GetDriverByName("MEM").Create("", rgb.shape[1], rgb.shape[0], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(rgb[..., i])
    with atomic_path(path) as tmp:
        gdal.GetDriverByName("PNG").CreateCopy(str(tmp), mem)
        aux = Path(str(tmp) + ".aux.xml")
        if aux.exists():
            aux.unlink()
    return path
