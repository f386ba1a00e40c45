"""Figure: the click tool's outlines (click_outline.py, session 44) on four scenes.

For the 2nd, 5th, 10th and 21st largest reference buildings of austin_dev, Kampala, Nepal
and Rio, a click on each building's innermost pixel; the reference outline in yellow, the
tool's in cyan, the click a red cross, 60 m of ground around it.

    python -m map_refiner.dev.corrections.click_figure docs/figures/click_outlines.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from osgeo import gdal, ogr  # noqa: E402
from scipy import ndimage  # noqa: E402

from .click_outline import outline_at  # noqa: E402
from .users import innermost  # noqa: E402

DATA = Path("../shared/data")
SCENES = [
    ("austin_dev", "austin/austin_dev_rgb.tif", "austin/austin_dev_gt.tif"),
    ("kampala", "kampala_drone/kampala_rgb.tif", "kampala_drone/kampala_buildings_mask.tif"),
    ("nepal", "nepal_drone/nepal_rgb.tif", "nepal_drone/nepal_buildings_mask.tif"),
    ("rio", "rio_wv2/rio_rgb.tif", "rio_wv2/rio_buildings_mask.tif"),
]
RANKS = (1, 4, 9, 20)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:])[0])
    fig, axes = plt.subplots(len(SCENES), len(RANKS), figsize=(16, 4 * len(SCENES)))
    for row, (name, image, reference) in zip(axes, SCENES, strict=True):
        ds = gdal.Open(str(DATA / image))
        gt = ds.GetGeoTransform()
        ref = gdal.Open(str(DATA / reference)).ReadAsArray() > 0
        lab, n = ndimage.label(ref)
        order = np.argsort(-ndimage.sum(ref, lab, range(1, n + 1)))
        for ax, rank in zip(row, RANKS, strict=True):
            building = lab == order[rank] + 1
            cy, cx = innermost(building)
            x, y = gt[0] + (cx + 0.5) * gt[1], gt[3] + (cy + 0.5) * gt[5]
            found = outline_at(DATA / image, x, y)
            half = int(30 / abs(gt[1]))
            y0, y1 = max(0, cy - half), min(ds.RasterYSize, cy + half)
            x0, x1 = max(0, cx - half), min(ds.RasterXSize, cx + half)
            ax.imshow(ds.ReadAsArray(x0, y0, x1 - x0, y1 - y0)[:3].transpose(1, 2, 0))
            ax.contour(building[y0:y1, x0:x1], [0.5], colors="yellow", linewidths=1)
            polygon = ogr.CreateGeometryFromWkt(found.wkt)  # kept: the ring is its part
            pts = np.array(polygon.GetGeometryRef(0).GetPoints())
            ax.plot(
                (pts[:, 0] - gt[0]) / gt[1] - x0 - 0.5,
                (pts[:, 1] - gt[3]) / gt[5] - y0 - 0.5,
                "c-",
                lw=1.5,
            )
            ax.plot(cx - x0, cy - y0, "r+", ms=12)
            cut = ", cut" if found.cut else ""
            ax.set_title(f"{name}: {found.describe()}{cut}")
            ax.axis("off")
    plt.tight_layout()
    plt.savefig(out, dpi=50)
    from PIL import Image  # a 128-colour palette: a quarter of the file

    Image.open(out).convert("RGB").quantize(128).save(out, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
