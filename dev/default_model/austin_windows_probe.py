"""Probe (session 48): is every hectare-sized part of the Austin orthophoto read as the
shared tiles are (the default model, as it is)? The acceptance check scores another part
of this orthophoto; a part whose look lay over 2.4 from austin_enh would get the general
model with its colours matched. Windows of 100 and 120 m at the corners and middles of
austin_dev and austin_enh, each refined with no model named and with the default named:
the choice, the look's distance, building IoU both ways.

    python -m map_refiner.dev.default_model.austin_windows_probe
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch  # noqa: F401  (before GDAL, as every dev module here)
from osgeo import gdal

from ...engine.modelfile.bundled_choice import choose_bundled

D = Path("../shared/data/austin")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for t in ("austin_dev", "austin_enh"):
            for side in (334, 400):  # 100 m and 120 m at 0.3 m
                for oy in sorted({0, 500 - side}):
                    for ox in sorted({0, 500 - side, (500 - side) // 2}):
                        src, ref = f"{tmp}/w.tif", f"{tmp}/w_gt.tif"
                        gdal.Translate(src, str(D / f"{t}_rgb.tif"), srcWin=[ox, oy, side, side])
                        gdal.Translate(ref, str(D / f"{t}_gt.tif"), srcWin=[ox, oy, side, side])
                        c = choose_bundled(src)
                        r = gdal.Open(ref).ReadAsArray() > 0
                        res = []
                        for args in ([], ["--model", "default"]):
                            out = f"{tmp}/w_map.tif"
                            cmd = [sys.executable, "-m", "map_refiner", "refine", src, "--out", out]
                            txt = subprocess.run(
                                [*cmd, "--overwrite", *args], capture_output=True, text=True
                            ).stdout
                            m = gdal.Open(out).ReadAsArray() == 1
                            iou = 100 * (m & r).sum() / max(1, (m | r).sum())
                            res.append((round(float(iou), 1), "matched" in txt))
                        print(t, side, oy, ox, c.path.stem, c.distance, c.nearest, res[0], res[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
