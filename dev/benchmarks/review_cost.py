"""What the review list adds to a round's refine (session 42): engine
turn_back.largest_changes against the comparison it follows (changes.map_changes, which
writes the changes raster), timed in one process on the same maps.

Two cases: real maps (the bundled model's map of a shared scene against a map of the same
image made with another bundled model, so that thousands of pixels differ), and the
worst case the list is bounded for, a changes raster of noise (every pixel changed with
probability 0.2: specks by the tens of thousands) of SIDE x SIDE pixels. Prints seconds
and the ratio, and the peak memory the list added (tracemalloc: numpy and GDAL's Python
side only). Run it alone on a quiet machine.

    python -m map_refiner.dev.benchmarks.review_cost [--scene kampala_drone] [--side 4096]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from ...engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from ...engine.rasters.write import style_class_band
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.scoring.changes import map_changes
from ...engine.scoring.turn_back import largest_changes
from ..corrections.scenes import scenes
from ..corrections.study import ROOT


def timed(what, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    tracemalloc.start()
    t0 = time.perf_counter()
    out = what(*args, **kwargs)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def noise_maps(folder: Path, side: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    old = (rng.random((side, side)) < 0.3).astype(np.uint8)
    new = np.where(rng.random((side, side)) < 0.2, 1 - old, old).astype(np.uint8)
    paths = []
    for name, array in (("old", old), ("new", new)):
        path = folder / f"{name}.tif"
        ds = gdal.GetDriverByName("GTiff").Create(str(path), side, side, 1, gdal.GDT_Byte)
        ds.SetGeoTransform((500000.0, 0.3, 0.0, 4000000.0, 0.0, -0.3))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32631)
        ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).WriteArray(array)
        style_class_band(
            ds.GetRasterBand(1), ["background", "building"], [(235, 235, 225), (200, 40, 40)]
        )
        ds = None
        paths.append(path)
    return paths[0], paths[1]


def report(label: str, before: Path, after: Path, folder: Path) -> None:
    found, compare_s, _ = timed(map_changes, before, after, folder / f"{label}_changes.tif")
    listed, list_s, peak = timed(largest_changes, found.out, before)
    ds = gdal.Open(str(after))
    print(
        f"{label}: {ds.RasterXSize} x {ds.RasterYSize} px, {found.changed} changed px; "
        f"map_changes {compare_s:.2f} s, largest_changes {list_s:.2f} s "
        f"({list_s / compare_s:.2f} x the comparison), {len(listed)} listed "
        f"(largest {listed[0].pixels if listed else 0} px), list's peak {peak / 2**20:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--scene", default="kampala_drone")
    ap.add_argument("--side", type=int, default=4096)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scene = scenes(a.data, Path("out/corrections/data"))[a.scene]
        maps = []
        for name, model in (("default", DEFAULT_MODEL_PATH), ("general", GENERAL_MODEL_PATH)):
            out = folder / f"{name}.tif"
            refine_raster(RefineParams(image=scene.image, out=out, model_path=model, device="cpu"))
            maps.append(out)
        report(f"{a.scene} (bundled default against general)", maps[0], maps[1], folder)
        report(f"noise {a.side} px", *noise_maps(folder, a.side), folder)


if __name__ == "__main__":
    main()
