"""What the study's user draws, looked at against the image: the K largest error regions
of the product's map on one half of each scene (the left, where the user draws, or the
right, where the studies score), each cropped from the image with its outline, one contact
sheet a scene (session 45, docs/results_reference_audit.md).

The correction studies' simulated user copies every correction from the scene's reference:
a region the map calls building and the reference does not is drawn as background. That is
what a careful cartographer would draw only where the reference is complete. This probe
shows each such region beside the image so a person can judge, region by region, whether
the reference or the map is right there (a roof the reference lacks, a roof it has that
the image does not show, or a true error), and writes the sheet the judgement is made on.

    python -m map_refiner.dev.corrections.reference_audit --out out/s45/audit [--k 16]
        [--scenes rio_wv2,...] [--model M] [--half left|right] [--cols 4 --inches 3.2]
        # M: default, the bundled model the image chooses; writes <scene>_<half>.png

Each tile: the error region outlined (red: the map's false building, drawn as background;
cyan: a reference building the map missed, drawn as building), the reference's other
outlines thin yellow, the region's rank, class and area in the title. A JSON beside the
sheets (``regions_<half>.json``) lists every region (rank, class, area m², bounding box
in image pixels, the model's file hash) so the judgement can be written down against it:
add a ``verdict`` to each row and the judged study reads them (verdicts.py,
dev/corrections/reference_verdicts.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
from osgeo import gdal
from scipy import ndimage

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ...engine.modelfile.bundled_choice import choose_bundled  # noqa: E402
from ...engine.rasters.read import open_image  # noqa: E402
from .scenes import scenes  # noqa: E402
from .study import pixel_m, refine  # noqa: E402
from .verdicts import bbox_of, model_sha, regions_of  # noqa: E402

gdal.UseExceptions()

#: Context shown around a region, in metres.
MARGIN_M = 6.0


def rgb_of(image: Path) -> np.ndarray:
    """The image's first three bands as an (H, W, 3) array scaled to 0-1 for display."""
    ds = open_image(image)
    bands = [ds.GetRasterBand(i + 1).ReadAsArray().astype(np.float32) for i in range(3)]
    rgb = np.stack(bands, axis=-1)
    lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99)
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def sheet(
    name: str,
    rgb: np.ndarray,
    ref: np.ndarray,
    regions: list,
    px_m: float,
    out: Path,
    cols: int = 4,
    inches: float = 3.2,
    side: str = "left",
) -> list[dict]:
    """One contact sheet of the regions (``cols`` tiles a row, ``inches`` wide each); the
    rows of the JSON."""
    margin = max(4, int(round(MARGIN_M / px_m)))
    rows = max(1, -(-len(regions) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * inches, rows * inches * 1.06), squeeze=False
    )
    listed = []
    ref_edges = ref & ~ndimage.binary_erosion(ref)
    for ax in axes.ravel():
        ax.axis("off")
    for rank, (size, mask, cls) in enumerate(regions, start=1):
        ys, xs = np.nonzero(mask)
        y0, y1 = max(0, ys.min() - margin), min(ref.shape[0], ys.max() + margin + 1)
        x0, x1 = max(0, xs.min() - margin), min(ref.shape[1], xs.max() + margin + 1)
        crop = rgb[y0:y1, x0:x1].copy()
        edge = mask[y0:y1, x0:x1] & ~ndimage.binary_erosion(mask[y0:y1, x0:x1])
        edge = ndimage.binary_dilation(edge, iterations=max(1, int(0.15 / px_m)))
        other = ref_edges[y0:y1, x0:x1] & ~mask[y0:y1, x0:x1]
        crop[other] = 0.6 * crop[other] + 0.4 * np.array([1.0, 1.0, 0.0])
        crop[edge] = [1.0, 0.0, 0.0] if cls == 0 else [0.0, 1.0, 1.0]
        ax = axes.ravel()[rank - 1]
        ax.imshow(crop, interpolation="nearest")
        area = size * px_m * px_m
        kind = "map's building, ref. none" if cls == 0 else "ref. building, map missed"
        ax.set_title(f"{rank}: {kind}\n{area:.0f} m²", fontsize=8)
        listed.append(
            {
                "scene": name,
                "rank": rank,
                "class": cls,
                "area_m2": round(area, 1),
                "bbox": bbox_of(mask),
            }
        )
    fig.suptitle(
        f"{name}: the {len(regions)} largest error regions of the {side} half", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return listed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--model", type=Path, default=None, help="default: chosen per image")
    ap.add_argument("--cols", type=int, default=4, help="tiles a row")
    ap.add_argument("--inches", type=float, default=3.2, help="a tile's width")
    ap.add_argument("--half", choices=("left", "right"), default="left")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    listed: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        found = scenes(a.data, work)
        names = a.scenes.split(",") if a.scenes else list(found)
        for name in names:
            scene = found[name]
            model = a.model or choose_bundled(scene.image).path
            pred, _ = refine(scene.image, work / f"{name}.tif", model)
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            px_m = pixel_m(scene, gdal.Open(str(scene.image)))
            regions = regions_of(pred, ref, a.k, a.half)
            rgb = rgb_of(scene.image)
            png = a.out / f"{name}_{a.half}.png"
            rows = sheet(name, rgb, ref, regions, px_m, png, a.cols, a.inches, a.half)
            for row in rows:
                row.update(half=a.half, model=Path(model).stem, model_sha=model_sha(model))
            listed += rows
            n_bg = sum(1 for r in rows if r["class"] == 0)
            print(f"{name}: {len(rows)} regions ({n_bg} drawn as background), {Path(model).stem}")
    (a.out / f"regions_{a.half}.json").write_text(json.dumps(listed, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
