"""Memory flat in the raster's size for evaluate and vectorize: both read blocks of rows
(and vectorize keeps its mask and regions on disk), with the same result as one piece."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM33N, wkt
from osgeo import gdal, ogr

from map_refiner.engine.scoring import metrics
from map_refiner.engine.scoring.metrics import evaluate_rasters
from map_refiner.engine.vectors import vectorize as vectorize_module
from map_refiner.engine.vectors.vectorize import vectorize

gdal.UseExceptions()
GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)


def blocky(path: Path, size: int, square: int, shift: int = 0, gt: tuple = GT) -> Path:
    """A tiled class map of ``square``-pixel squares of classes 0/1 and a nodata strip,
    written a band of rows at a time (so a large one is cheap to make)."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, 1, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt(UTM33N))
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(255)
    x = np.arange(size)[None, :]
    step = max(1, (1 << 22) // size)
    for y0 in range(0, size, step):
        y = np.arange(y0, min(size, y0 + step))[:, None]
        rows = (((x + shift) // square + (y + shift) // square) % 2).astype(np.uint8)
        rows[(y % 97 == 5) & (x < size // 3)] = 255
        band.WriteArray(rows, 0, y0)
    ds = None
    return path


def scores_for(path: Path, classmap: Path) -> Path:
    """Probabilities on the class map's grid: P(class) varies from pixel to pixel."""
    src = gdal.Open(str(classmap))
    n = src.RasterXSize
    ds = gdal.GetDriverByName("GTiff").Create(str(path), n, n, 2, gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    p1 = (np.add.outer(np.arange(n), np.arange(n)) % 50 / 50.0).astype(np.float32)
    ds.GetRasterBand(1).WriteArray(1 - p1)
    ds.GetRasterBand(2).WriteArray(p1)
    ds = None
    return path


def test_evaluate_in_blocks_equals_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also for a prediction on another grid (warped block by block)."""
    ref = blocky(tmp_path / "ref.tif", 203, 17, shift=3)
    other = (GT[0] + 0.25, 0.4, 0.0, GT[3] - 0.35, 0.0, -0.4)
    pred = blocky(tmp_path / "pred.tif", 260, 21, gt=other)
    names = ["background", "building"]
    whole = evaluate_rasters(pred, ref, names)
    monkeypatch.setattr(metrics, "BLOCK_PIXELS", 1000)  # 4 rows a block
    blocks = evaluate_rasters(pred, ref, names)
    assert whole.pixel_count > 30000
    assert (blocks.confusion == whole.confusion).all()


def _features(path: Path) -> list[tuple]:
    ds = ogr.Open(str(path))
    return sorted(
        (f["class_id"], round(f["area_m2"], 3), f["mean_prob"], f.GetGeometryRef().ExportToWkt())
        for f in ds.GetLayer(0)
    )


def test_vectorize_in_blocks_equals_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classmap = blocky(tmp_path / "c.tif", 150, 23)
    scores = scores_for(tmp_path / "s.tif", classmap)
    vectorize(classmap, tmp_path / "whole.gpkg", scores_path=scores)
    monkeypatch.setattr(vectorize_module, "BLOCK_PIXELS", 600)  # 4 rows a block
    vectorize(classmap, tmp_path / "blocks.gpkg", scores_path=scores)
    whole = _features(tmp_path / "whole.gpkg")
    assert len(whole) > 40
    assert _features(tmp_path / "blocks.gpkg") == whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocks.gpkg",
        "c.tif",
        "s.tif",
        "whole.gpkg",
    ]  # no scratch folder left


# VmHWM, not getrusage: a forked child's ru_maxrss starts at its parent's (pytest's) size.
PEAK = (
    "import re, sys\n"
    "from map_refiner import cli\n"
    "rc = cli.main(sys.argv[1:]) if len(sys.argv) > 1 else 0\n"
    "status = open('/proc/self/status').read()\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024, rc)\n"
)


def _peak_mb(*args: object) -> int:
    """Peak resident memory (MB) of a fresh process that runs the command line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GDAL_CACHEMAX": "16"}  # MB: what is left
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    mb, rc = done.stdout.split()[-2:]
    assert rc == "0", done.stderr
    return int(mb)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_evaluate_and_vectorize_memory_does_not_grow_with_the_raster(tmp_path: Path) -> None:
    """An 8000 x 8000 map (64 million pixels), GDAL's cache at 16 MB: read whole, evaluate
    grew by 373 MB and vectorize by 390 MB (about 6 bytes a pixel); by blocks 115 and 97
    MB, whatever the size (docs/reliability.md has the 20000 x 20000 figures)."""
    pred = blocky(tmp_path / "pred.tif", 8000, 250)
    ref = blocky(tmp_path / "ref.tif", 8000, 250, shift=7)
    base = _peak_mb()
    grown = {
        "evaluate": _peak_mb("evaluate", pred, ref) - base,
        "vectorize": _peak_mb("vectorize", pred, "--out", tmp_path / "v.gpkg") - base,
    }
    assert all(mb < 200 for mb in grown.values()), grown
