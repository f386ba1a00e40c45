"""Do the image's own edges say where a building prior belongs? A probe for a
model-free check on prior registration (issue 16: a right prior moved off its roofs
when the model misreads the imagery, e.g. Vaihingen's false colour).

For every scene with an accurate reference, on a grid of about 0.6 m: the image's
gradient magnitude and the reference's outline pixels, as the engine's check measures
them (registration.edge_strength, registration.outline).
The edge score of a shift is the mean gradient under the outline moved by it. Printed
per scene and known shift of the reference (0, 1, 2, 4 m east and south): the shift
with the best edge score (it should undo the known one), the score there against the
score of the shift that undoes it, and that score against the score in place.

    python -m map_refiner.dev.prior.edge_probe [--scenes a,b] [--grid-m 0.6]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import signal

from ...engine.refine.registration import edge_strength, outline
from ..corrections.scenes import scenes

GRID_M = 0.6


def on_grid(scene, grid_m: float = GRID_M) -> tuple[np.ndarray, np.ndarray, float]:
    """Luminance and reference building mask averaged to about ``grid_m`` (never finer
    than the image), and the pixel size."""
    ds = gdal.Open(str(scene.image))
    img = ds.ReadAsArray().astype(np.float32)
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    gt = ds.GetGeoTransform()
    px = abs(gt[1])
    if px < 1e-3:  # degrees
        px *= 111_320.0
    f = max(1, int(round(grid_m / px)))
    lum = img[:3].mean(0) if img.ndim == 3 else img
    h, w = (lum.shape[0] // f) * f, (lum.shape[1] // f) * f
    lum = lum[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))
    mask = ref[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3)) >= 0.5
    return lum, mask, px * f


def edge_surface(edges: np.ndarray, line: np.ndarray, radius: int) -> np.ndarray:
    """Mean edge strength under ``line`` moved by (dy, dx) in [-radius, radius]^2."""
    a = np.pad(edges, radius)
    s = signal.fftconvolve(a, line[::-1, ::-1].astype(np.float32), mode="valid")
    return s / max(1, int(line.sum()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--radius-m", type=float, default=6.0)
    ap.add_argument("--grid-m", type=float, default=GRID_M, help="the grid's pixel size")
    args = ap.parse_args(argv)
    found = scenes(args.data, Path("out/edge_probe"))
    for name in args.scenes.split(",") if args.scenes else list(found):
        lum, mask, px = on_grid(found[name], args.grid_m)
        edges = edge_strength(lum[None])
        r = int(np.ceil(args.radius_m / px))
        for metres in (0, 1, 2, 4):
            t = int(round(metres / px))
            line = outline(np.roll(mask, (t, t), (0, 1)).astype(np.int32))
            surf = edge_surface(edges, line, r)
            by, bx = np.unravel_index(np.argmax(surf), surf.shape)
            row = {
                "scene": name,
                "pixel_m": round(px, 2),
                "shift_m": metres,
                "best_m": [round((by - r) * px, 1), round((bx - r) * px, 1)],
                "undo_m": [round(-t * px, 1), round(-t * px, 1)],
                "score_best_over_undo": round(float(surf[by, bx] / surf[r - t, r - t]), 3),
                "score_undo_over_here": round(float(surf[r - t, r - t] / surf[r, r]), 3),
            }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
