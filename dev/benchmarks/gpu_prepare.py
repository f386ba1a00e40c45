"""Inputs for the GPU benchmark, written here (GDAL) for a GPU box that has
torch but no GDAL (dev/device_bench.sh runs dev/benchmarks/cuda_check.py there).

Writes into OUT (default out/gpu_bench, about 20 MB, under the device tool's
64 MiB carry limit):

* ``xiamen_crop.png``: the 2.25 km² Xiamen crop of ``make bench``, resampled to
  the model's 0.6 m grid (2500 x 2500, RGB);
* ``austin_dev.png`` / ``austin_dev_labels.png``: the Austin test tile and its
  reference on the model grid (labels 0 background, 1 building), for the
  fp32-vs-bf16 IoU check.

    python -m map_refiner.dev.benchmarks.gpu_prepare [--data ../shared/data] [--out out/gpu_bench]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.modelfile.io import load_model
from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from .bench import make_crop

gdal.UseExceptions()


def to_model_grid(
    src: Path, out: Path, resolution_m: float, resampling: str, scale: list[float] | None = None
) -> Path:
    """``src`` resampled to ``resolution_m`` over the same extent, as a PNG."""
    ds = open_raster(src)
    rx, ry = ground_resolution(raster_info(ds))
    w = int(round(ds.RasterXSize * rx / resolution_m))
    h = int(round(ds.RasterYSize * ry / resolution_m))
    opts = dict(format="PNG", width=w, height=h, resampleAlg=resampling, outputType=gdal.GDT_Byte)
    if scale:
        opts["scaleParams"] = [scale]
    gdal.Translate(str(out), ds, **opts)
    Path(str(out) + ".aux.xml").unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("out/gpu_bench"))
    a = ap.parse_args(argv)
    res = load_model()[1].ground_resolution_m
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        crop = make_crop(a.data, Path(td) / "crop.tif")
        to_model_grid(crop, a.out / "xiamen_crop.png", res, "bilinear")
    austin = a.data / "austin"
    to_model_grid(austin / "austin_dev_rgb.tif", a.out / "austin_dev.png", res, "bilinear")
    # 0/255 reference -> 0/1 on the model grid (nearest keeps it a label map).
    to_model_grid(
        austin / "austin_dev_gt.tif",
        a.out / "austin_dev_labels.png",
        res,
        "nearest",
        scale=[0, 255, 0, 1],
    )
    for p in sorted(a.out.iterdir()):
        print(f"{p} {p.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
