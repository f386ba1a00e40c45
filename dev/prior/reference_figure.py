"""A shared scene's image beside the same with its reference's outlines drawn on it
(session 41: LoveDA_1's two buildings, the scene whose "right prior" rows stand apart in
docs/results_prior.md). ``--shift DY``: a third panel with the outlines DY image pixels
further south (session 48: where LoveDA_0's strongest edges lie).

    python -m map_refiner.dev.prior.reference_figure [--scene loveda_1]
        [--window 690:920:400:680] [--shift 4] --out docs/figures/loveda_1_reference.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from osgeo import gdal
from PIL import Image

from ..corrections.scenes import scenes
from .shifted import ROOT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scene", default="loveda_1")
    ap.add_argument("--window", default="690:920:400:680", help="y0:y1:x0:x1, image pixels")
    ap.add_argument("--shift", type=int, default=0, help="a third panel, outlines DY px south")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    s = scenes(a.data, ROOT / "out" / "corrections" / "data")[a.scene]
    img = gdal.Open(str(s.image)).ReadAsArray()[:3].transpose(1, 2, 0)
    ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
    edge = (ref ^ np.roll(ref, 1, 0)) | (ref ^ np.roll(ref, 1, 1))
    y0, y1, x0, x1 = (int(v) for v in a.window.split(":"))
    plain = img[y0:y1, x0:x1].copy()
    drawn = plain.copy()
    drawn[edge[y0:y1, x0:x1]] = (255, 0, 255)
    panels = [plain, drawn]
    if a.shift:
        moved = plain.copy()
        moved[np.roll(edge, a.shift, 0)[y0:y1, x0:x1]] = (0, 255, 255)
        panels.append(moved)
    h, w = plain.shape[:2]
    gap = np.full((h, 4, 3), 255, np.uint8)
    both = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], 1)
    out = Image.fromarray(both).resize((both.shape[1] * 2, h * 2), Image.NEAREST)
    out.convert("RGB").quantize(128).save(a.out, optimize=True)
    print(a.out, out.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
