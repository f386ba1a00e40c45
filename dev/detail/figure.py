"""A crop of one scene's outlines, today's map beside the map with detail iterations,
both over the image with the reference's outlines (maps from ``score.py``).

    python -m map_refiner.dev.detail.figure --scene kampala_drone --setting detail2 \
        --out docs/figures/detail_kampala.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402
from scipy import ndimage  # noqa: E402

from ..corrections.scenes import scenes  # noqa: E402
from .score import MAPS, ROOT, outline  # noqa: E402

gdal.UseExceptions()


def busiest_crop(ref: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left of the ``side`` px crop of the right half with most reference outline."""
    edges = outline(ref).astype(np.int64)
    h, w = ref.shape
    best, where = -1, (0, w // 2)
    for y in range(0, h - side + 1, side // 4):
        for x in range(w // 2, w - side + 1, side // 4):
            n = int(edges[y : y + side, x : x + side].sum())
            if n > best:
                best, where = n, (y, x)
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="kampala_drone")
    ap.add_argument("--setting", default="detail2")
    ap.add_argument("--side", type=int, default=640, help="crop side in image pixels")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    scene = scenes(a.data, ROOT / "out" / "multiscene" / "data")[a.scene]
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    y, x = busiest_crop(ref, a.side)
    win = (slice(y, y + a.side), slice(x, x + a.side))
    rgb = gdal.Open(str(scene.image)).ReadAsArray(x, y, a.side, a.side)[:3].transpose(1, 2, 0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.3))
    for ax, setting in zip(axes, ("today", a.setting)):
        pred = gdal.Open(str(MAPS / f"{a.scene}_{setting}.tif")).ReadAsArray() == 1
        ax.imshow(rgb)
        for mask, colour in ((ref[win], (1, 1, 0)), (pred[win], (0, 1, 1))):
            layer = np.zeros((a.side, a.side, 4))
            layer[ndimage.binary_dilation(outline(mask))] = (*colour, 1)
            ax.imshow(layer)
        ax.set_title(f"{a.scene}: {setting} (cyan) and the reference (yellow)")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.out, dpi=90)
    print(f"wrote {a.out} (crop at x={x}, y={y}, {a.side} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
