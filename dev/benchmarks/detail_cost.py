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
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ...engine.refine.params import RefineParams
from .bench import make_crop, scaling_run

gdal.UseExceptions()


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
            refined = tmp / f"{name}.tif"
            runs = [
                scaling_run(fine, refined, RefineParams.tile_size, detail) for _ in range(a.repeat)
            ]
            rows[name] = {
                "s": round(min(r["s"] for r in runs), 2),
                "rss_mb": round(max(r["rss_mb"] for r in runs)),
            }
            result = gdal.Open(str(refined))  # kept while its band is read
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
