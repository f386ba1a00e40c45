"""Imagery that declares a nodata value: each scene's image copied with ``-a_nodata 0`` and
``-a_nodata 255`` (the same pixels; one value for every band, as a GeoTIFF stores it, the
way orthophotos are often delivered with a black or white collar) and refined through
the product's path with the bundled default model, against the copy that declares none
(session 40; docs/results_bundled_recipes.md "Session 40"). Whole-image building IoU and
the share of the class map left as no data.

    python -m map_refiner.dev.default_model.nodata_probe --json out/s40/nodata_after.json \\
        austin_dev kampala_drone nepal_drone rio_wv2 austin_enh
"""

from __future__ import annotations

from pathlib import Path

from osgeo import gdal

from ...engine.rasters.write import CLASS_NODATA
from ..corrections.study import iou, refine
from .scene_probe import scene_probe_main

VALUES = (None, 0, 255)


def scene_row(image: Path, reference: Path, work: Path) -> dict[str, dict[str, float]]:
    ref = gdal.Open(str(reference)).ReadAsArray() > 0
    row = {}
    for value in VALUES:
        name = "declared none" if value is None else f"nodata {value}"
        copy = work / f"{image.stem}_{value}.tif"
        options = "-a_nodata none" if value is None else f"-a_nodata {value}"
        gdal.Translate(str(copy), str(image), options=options)
        out = work / f"{image.stem}_{value}_map.tif"
        pred, _ = refine(copy, out)
        holes = gdal.Open(str(out)).ReadAsArray() == CLASS_NODATA
        row[name] = {
            "building_iou": round(100 * iou(pred, ref), 2),
            "no_data_pct": round(100 * float(holes.mean()), 3),
        }
        print(image.stem, name, row[name], flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    return scene_probe_main(__doc__, scene_row, argv)


if __name__ == "__main__":
    raise SystemExit(main())
