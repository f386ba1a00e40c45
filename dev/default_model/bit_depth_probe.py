"""Imagery beyond 8 bits: which mapping into the 8-bit range the bundled models were trained
in reads best (session 39; docs/results_bundled_recipes.md "Session 39").

Each scene's 8-bit image is written as two 16-bit versions: ``x256`` (the same values
shifted into 16 bits, as an orthophoto exported at 16 bits) and ``lin11`` (an 11-bit linear
version, (v / 255) ** 2.2 * 2047, as satellite values before a display stretch), and
refined through the product's path with the model the image chooses: as written
(``raw``: before session 39 read as they are, since then scaled by the product's
rasters.read.value_scale), scaled by bit depth here (``bitdepth``), and stretched per band
or jointly between two percentiles (``band_2_98``, ``joint_0.5_99.5``, ...); the 8-bit
image itself is stretched too. Whole-image building IoU.

    python -m map_refiner.dev.default_model.bit_depth_probe --json out/s39/bit_depth.json \\
        austin_dev kampala_drone nepal_drone rio_wv2 austin_enh
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from ..corrections.study import iou, refine
from .scene_probe import scene_probe_main

STRETCHES = ((2, 98, False), (2, 98, True), (0.1, 99.9, True), (0.5, 99.5, True))


def write(arr: np.ndarray, like: gdal.Dataset, path: Path, dtype: int) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), arr.shape[2], arr.shape[1], arr.shape[0], dtype
    )
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    return path


def stretch(a: np.ndarray, lo_p: float, hi_p: float, joint: bool) -> np.ndarray:
    """``a`` stretched to 0-255 between two percentiles of its valid pixels, per band or
    one pair for all bands (``joint``: keeps the colour balance)."""
    a = a.astype(np.float64)
    valid = a.sum(0) > 0
    if joint:
        lo, hi = np.percentile(a[:, valid], [lo_p, hi_p])
        los, his = np.full(a.shape[0], lo), np.full(a.shape[0], hi)
    else:
        los = np.array([np.percentile(b[valid], lo_p) for b in a])
        his = np.array([np.percentile(b[valid], hi_p) for b in a])
    out = (a - los[:, None, None]) / (his - los)[:, None, None] * 255
    return np.clip(out, 0, 255).astype(np.uint8)


def scene_row(image: Path, reference: Path, work: Path) -> dict[str, float]:
    src = gdal.Open(str(image))
    a8 = src.ReadAsArray()[:3]
    ref = gdal.Open(str(reference)).ReadAsArray() > 0

    def score(arr: np.ndarray, dtype: int = gdal.GDT_Byte) -> float:
        pred, _ = refine(write(arr, src, work / "in.tif", dtype), work / "out.tif")
        return round(100 * iou(pred, ref), 1)

    row = {"8bit": score(a8)}
    for lo, hi, joint in STRETCHES:
        row[f"8bit_{'joint' if joint else 'band'}_{lo}_{hi}"] = score(stretch(a8, lo, hi, joint))
    versions = {
        "x256": a8.astype(np.uint16) * 256,
        "lin11": np.round((a8 / 255.0) ** 2.2 * 2047).astype(np.uint16),
    }
    for name, a16 in versions.items():
        row[f"{name}_raw"] = score(a16, gdal.GDT_UInt16)
        bits = int(np.ceil(np.log2(int(a16.max()) + 1)))
        row[f"{name}_bitdepth"] = score((a16 >> max(0, bits - 8)).astype(np.uint8))
        for lo, hi, joint in STRETCHES:
            key = f"{name}_{'joint' if joint else 'band'}_{lo}_{hi}"
            row[key] = score(stretch(a16, lo, hi, joint))
    return row


def main(argv: list[str] | None = None) -> int:
    return scene_probe_main(__doc__, scene_row, argv)


if __name__ == "__main__":
    raise SystemExit(main())
