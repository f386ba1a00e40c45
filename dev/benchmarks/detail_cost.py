"""What the bundled model's detail iterations cost on imagery 2x finer than its grid.

The `make bench` crop (2.25 km² of Xiamen, 0.54 m pixels) resampled to half its pixel
size (0.27 m, 5526 x 5526 px: 0.3 m aerial's case, where the detail iterations now run
by default), refined end to end in a fresh process each, without (`--detail-iterations
0`, the refine before session 12) and with the model's own detail iterations; best of
``--repeat`` wall times, their ratio, and each process's peak resident memory. Run it
alone on the machine (two torch processes at once slow each other several times).

    python -m map_refiner.dev.benchmarks.detail_cost --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from .bench import make_crop

gdal.UseExceptions()


def run(image: Path, out: Path, detail: int | None) -> dict[str, float]:
    """A refine in a fresh process: wall time and peak resident memory (VmHWM)."""
    code = (
        "import json, time\n"
        "from pathlib import Path\n"
        "from map_refiner.engine.refine.pipeline import RefineParams, refine_raster\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "t = time.perf_counter()\n"
        f"r = refine_raster(RefineParams(image=Path({str(image)!r}), out=Path({str(out)!r}), "
        f"device='cpu', overwrite=True, detail_iterations={detail!r}))\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'rss_mb': hwm()}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        crop = make_crop(a.data, tmp / "crop.tif")
        ds = gdal.Open(str(crop))
        fine = tmp / "crop_2x.tif"
        gdal.Translate(
            str(fine),
            ds,
            width=2 * ds.RasterXSize,
            height=2 * ds.RasterYSize,
            resampleAlg="bilinear",
            creationOptions=["TILED=YES", "COMPRESS=DEFLATE"],
        )
        size = (2 * ds.RasterXSize, 2 * ds.RasterYSize)
        del ds
        ground_m = ground_resolution(raster_info(open_raster(crop)))[0]
        rows = {}
        for name, detail in (("off", 0), ("auto", None)):
            runs = [run(fine, tmp / f"{name}.tif", detail) for _ in range(a.repeat)]
            rows[name] = {
                "s": round(min(r["s"] for r in runs), 2),
                "rss_mb": round(max(r["rss_mb"] for r in runs)),
            }
            result = gdal.Open(str(tmp / f"{name}.tif"))  # kept while its band is read
            rows[name]["map"] = result.GetRasterBand(1).GetDescription()
            del result
    out = {
        "image_px": size,
        "pixel_m": round(ground_m / 2, 3),
        **rows,
        "ratio_auto_over_off": round(rows["auto"]["s"] / rows["off"]["s"], 2),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
