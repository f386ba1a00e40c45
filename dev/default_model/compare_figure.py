"""Figure: two models' maps of the same scenes' right halves, errors coloured.

    python -m map_refiner.dev.default_model.compare_figure --models A B --scenes S1,S2 --out F.png

Each row a scene (its right half, the half the bundled models never trained on); the
columns the image and each model's refined map over it: found buildings green, missed
ones blue, false ones red; the title gives the building IoU of what is shown (of a long
strip, its top only: at most twice as tall as wide).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

from ...engine.device import configure_threads  # noqa: E402
from ...engine.modelfile.io import load_model  # noqa: E402
from ..corrections.scenes import scenes  # noqa: E402
from ..corrections.study import iou  # noqa: E402
from .ensemble_probe import ROOT, building_probability  # noqa: E402


def rgb(image: Path) -> np.ndarray:
    arr = gdal.Open(str(image)).ReadAsArray()[:3].transpose(1, 2, 0).astype(np.float32)
    lo, hi = np.percentile(arr, (1, 99))
    return np.clip((arr - lo) / max(1e-6, hi - lo), 0, 1)


def overlay(base: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    out = base * 0.55
    for mask, colour in (
        (pred & ref, (0.1, 0.85, 0.2)),
        (~pred & ref, (0.2, 0.4, 1.0)),
        (pred & ~ref, (1.0, 0.15, 0.1)),
    ):
        out[mask] = 0.35 * base[mask] + 0.65 * np.array(colour)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path, required=True)
    ap.add_argument("--scenes", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    a = ap.parse_args(argv)
    configure_threads()
    work = ROOT / "out" / "multiscene"
    work.mkdir(parents=True, exist_ok=True)
    all_scenes = scenes(a.data, work / "data")
    names = a.scenes.split(",")
    labels = [load_model(m, "cpu")[1].name.removeprefix("Map Refiner ") for m in a.models]
    fig, axes = plt.subplots(
        len(names), 1 + len(a.models), figsize=(4 * (1 + len(a.models)), 4 * len(names))
    )
    axes = np.atleast_2d(axes)
    for row, name in enumerate(names):
        scene = all_scenes[name]
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        half = slice(ref.shape[1] // 2, None)
        rows = slice(0, 2 * (ref.shape[1] - ref.shape[1] // 2))  # a long strip's top
        cut = rows.stop < ref.shape[0]
        ref = ref[rows]
        image = rgb(scene.image)[rows, half]
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"{name}, right half" + (", top" if cut else ""))
        for col, (model, label) in enumerate(zip(a.models, labels), start=1):
            pred = (building_probability(model, scene.image, work) > 0.5)[rows, half]
            axes[row, col].imshow(overlay(image, pred, ref[:, half]))
            axes[row, col].set_title(f"{label}\nbuilding IoU {100 * iou(pred, ref[:, half]):.1f}")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle("green: found, blue: missed, red: false")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=80)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
