"""Imagery coarser than the bundled model's grid: each scene's image averaged to 1.2, 2.4
and 4.8 m pixels (2x, 4x and 8x the bundled models' 0.6 m) and refined through the
product's path with the bundled default model; building IoU against the reference read
on the same grid (a pixel is building where a building covers half of it). Sets
limits.COARSE_NOTE (session 40; docs/results_bundled_recipes.md "Session 40").

    python -m map_refiner.dev.default_model.coarse_probe --json out/s40/coarse.json \\
        austin_dev kampala_drone nepal_drone
"""

from __future__ import annotations

from pathlib import Path

from osgeo import gdal

from ..corrections.study import iou, refine
from .scene_probe import scene_probe_main

PIXELS_M = (None, 1.2, 2.4, 4.8)


def reference_on(reference: Path, like: Path) -> object:
    """``reference`` (building > 0) averaged onto ``like``'s grid, building where half."""
    ds = gdal.Open(str(like))
    gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    bounds = (gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3])
    src = gdal.Open(str(reference))
    top = 255.0 if src.ReadAsArray().max() > 1 else 1.0
    out = gdal.Warp(
        "", src, format="MEM", width=w, height=h, outputBounds=bounds, resampleAlg="average"
    )
    return out.ReadAsArray() >= 0.5 * top


def scene_row(image: Path, reference: Path, work: Path) -> dict[str, float]:
    row = {}
    for pixel_m in PIXELS_M:
        copy = image
        if pixel_m is not None:
            copy = work / f"{image.stem}_{pixel_m}.tif"
            gdal.Warp(str(copy), str(image), xRes=pixel_m, yRes=pixel_m, resampleAlg="average")
        out = work / f"{image.stem}_{pixel_m}_map.tif"
        pred, _ = refine(copy, out)
        key = "own pixels" if pixel_m is None else f"{pixel_m} m"
        row[key] = round(100 * iou(pred, reference_on(reference, out)), 1)
        print(image.stem, key, row[key], flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    return scene_probe_main(__doc__, scene_row, argv)


if __name__ == "__main__":
    raise SystemExit(main())
