"""Probe (session 31): how much of a drawn polygon an edge band takes.

The K=16 largest errors of four scenes' left halves (the model a study round starts
from: the never-seen models for Nepal and LoveDA_1, the bundled default for Kampala and
austin_dev), drawn ``rough:1`` (users.drawn_as); per polygon: class, area (m²), the
share left after an erosion by ``--band`` metres on the image grid (what
FitParams.edge_band_m keeps in the loss before the model grid's vote), and the polygon's
largest inscribed radius (m).

    python -m map_refiner.dev.corrections.band_share [--band 1] [--out out/s31]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from .scenes import scenes
from .study import pixel_m, refine
from .users import drawn_as, error_regions

ROUNDS = (
    ("nepal_drone", "out/s23/loo/hr_nepal_drone_s1.safetensors"),
    ("kampala_drone", None),
    ("austin_dev", None),
    ("loveda_1", "out/s23/loo/hr_loveda_1_s1.safetensors"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("out/s31"))
    ap.add_argument("--band", type=float, default=1.0)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    every = scenes(a.data, Path("out/corrections/data"))
    for name, model in ROUNDS:
        s = every[name]
        pred, _ = refine(s.image, a.out / f"band_{name}.tif", Path(model) if model else None)
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        half = ref.shape[1] // 2
        pm = pixel_m(s, gdal.Open(str(s.image)))
        regions = sorted(error_regions(pred, ref, half), key=lambda r: -r[0])[:16]
        r = int(round(a.band / pm))
        rows = []
        for m, c in drawn_as([c for _, c in regions], "rough:1", pm, half, 0):
            inner = ndimage.binary_erosion(m, np.ones((2 * r + 1, 2 * r + 1)))
            radius = ndimage.distance_transform_edt(m).max() * pm
            rows.append(
                (c, round(m.sum() * pm * pm, 1), round(inner.sum() / m.sum(), 2), round(radius, 2))
            )
        print(name, model or "bundled default", f"{pm:.3f} m", rows, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
