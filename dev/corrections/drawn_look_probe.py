"""How engine/labels/drawn_look.py tells the image a model's polygons were drawn on from
another on the same grid, measured on austin_dev (session 51).

Thirty polygons (the 25 largest reference buildings and five background squares of 8-30
px) keep their looks on austin_dev; each variant of the image is then judged polygon by
polygon: copies that should keep every polygon (JPEG-compressed, gamma, gain and noise),
the ground shifted by a few pixels, and other imagery on the same grid (austin_enh, the
tile turned half round). Prints, for each variant, the polygons judged not alike and the
least correlation and mean difference found.

    python -m map_refiner.dev.corrections.drawn_look_probe [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from ...engine.labels.burn import Shape
from ...engine.labels.drawn_look import _alike, _samples
from ...engine.labels.kept import KeptCorrections
from ...engine.rasters.grid import grid_of

SQUARES = ((20, 20, 10), (300, 60, 20), (420, 420, 30), (100, 400, 15), (250, 250, 8))


def _mem(a: np.ndarray) -> gdal.Dataset:
    ds = gdal.GetDriverByName("MEM").Create("", a.shape[2], a.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(np.clip(a[i], 0, 255).astype(np.uint8))
    return ds


def variants(src: gdal.Dataset, other: np.ndarray) -> dict[str, gdal.Dataset]:
    arr = src.ReadAsArray().astype(np.float64)
    rng = np.random.default_rng(0)
    out = {}
    for q in (30, 75):
        path = f"/vsimem/drawn_look_probe_{q}.tif"
        gdal.Translate(path, src, creationOptions=["COMPRESS=JPEG", f"JPEG_QUALITY={q}"])
        out[f"JPEG quality {q}"] = gdal.Open(path)
    out["gamma 0.6"] = _mem(255 * (arr / 255) ** 0.6)
    out["gain 1.3, noise 8"] = _mem(arr * 1.3 + rng.normal(0, 8, arr.shape))
    for px in (1, 2, 4):
        out[f"shifted {px} px"] = _mem(np.roll(arr, (px, px), (1, 2)))
    out["austin_enh on its grid"] = _mem(other[:, : arr.shape[1], : arr.shape[2]])
    out["turned half round"] = _mem(arr[:, ::-1, ::-1])
    return out


def polygons(src: gdal.Dataset, buildings: Path) -> KeptCorrections:
    ds = ogr.Open(str(buildings))
    layer = ds.GetLayer(0)  # (ds kept: the layer dies with it)
    wkts = sorted((f.GetGeometryRef().ExportToWkt() for f in layer), key=len)[-25:]
    shapes = [Shape(1, i, w) for i, w in enumerate(wkts)]
    gt = src.GetGeoTransform()
    for i, (x, y, s) in enumerate(SQUARES):
        x0, y0 = gt[0] + x * gt[1], gt[3] + y * gt[5]
        x1, y1 = x0 + s * gt[1], y0 + s * gt[5]
        ring = f"{x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}"
        shapes.append(Shape(0, 100 + i, f"POLYGON(({ring}))"))
    return KeptCorrections(grid_of(src), shapes, "austin_dev_rgb.tif")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = ap.parse_args(argv)
    austin = a.data / "austin"
    src = gdal.Open(str(austin / "austin_dev_rgb.tif"))
    other = gdal.Open(str(austin / "austin_enh_rgb.tif")).ReadAsArray().astype(np.float64)
    kept = polygons(src, austin / "austin_dev_buildings.gpkg")
    for name, ds in variants(src, other).items():
        rs, diffs, apart = [], [], 0
        for shape in kept.shapes:
            box = kept.pixel_box([shape])
            assert box is not None
            alike = True
            for b in (1, 2, 3):
                old, new = _samples(src, box, b), _samples(ds, box, b)
                rs.append(float(np.corrcoef(old, new)[0, 1]))
                diffs.append(float(np.abs(old - new).mean() / max(1.0, np.abs(old).max())))
                alike &= _alike(old, new)
            apart += not alike
        print(
            f"{name:24s} not alike {apart:2d} of {len(kept.shapes)}; correlation from "
            f"{min(rs):.3f} (median {np.median(rs):.3f}); mean difference "
            f"{min(diffs):.3f}-{max(diffs):.3f} of the values' scale"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
