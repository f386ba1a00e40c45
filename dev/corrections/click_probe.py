"""Probe (session 31): could a click give a correction polygon as good as a drawn one?

For the K largest error regions of the bundled default model's left half on every shared
scene (users.error_regions, the largest-errors user's), the simulated user clicks the
region's innermost pixel, and two click tools are scored against the region (IoU) and
for how much of what they outline has the class the user wants (precision):

* ``map_obj``: the refined map's object under the click (its connected class region),
  what a "this object is wrong" click would outline;
* ``p0.3`` / ``p0.1``: the model's building-probability region at that threshold;
* ``wand_T``: a colour "magic wand" (the 3x3-smoothed image within T band-standard
  deviations of the clicked colour, connected to the click, holes filled) at T = 0.5, 1;
  ``wand_oracle`` the best T per region (an upper bound), ``wand_leak`` the T before the
  region's largest jump in area;
* ``click``: session 44's click tool (click_outline.py: the tolerance whose outline lies on
  the strongest edges for its shape), measured, not built into the product.

    python -m map_refiner.dev.corrections.click_probe [--out out/s31/probe] [--k 16]
        [--model M]   (the base model; default: the bundled default)

Prints the means per scene and class (0: a false building to outline as background, 1:
a missed building); docs/results_corrections.md "Session 31" reads them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from .scenes import scenes
from .study import iou, refine
from .users import error_regions, innermost, outlined


def _precision(found: np.ndarray, ref: np.ndarray, cls: int) -> float:
    return float((ref[found] == bool(cls)).mean()) if found.any() else float("nan")


def probe_region(
    mask: np.ndarray,
    cls: int,
    pred: np.ndarray,
    probs: np.ndarray,
    img: np.ndarray,
    ref: np.ndarray,
    image: Path | None = None,
) -> dict:
    cy, cx = innermost(mask)
    row: dict = {"cls": cls, "size": int(mask.sum())}
    if image is not None:  # session 44: click_outline.py's region growing
        found = outlined(image, cy, cx, mask.shape)
        row["click"] = iou(found, mask)
        row["click_prec"] = _precision(found, ref, cls)
    lab, _ = ndimage.label(pred == pred[cy, cx])
    comp = lab == lab[cy, cx]
    row["map_obj"] = iou(comp, mask) if comp.sum() < 20 * mask.sum() else 0.0
    row["map_obj_prec"] = _precision(comp, ref, cls)
    for t in (0.3, 0.1):
        lab, _ = ndimage.label(probs[1] >= t)
        comp = (lab == lab[cy, cx]) if probs[1][cy, cx] >= t else np.zeros_like(mask)
        row[f"p{t}"] = iou(comp, mask)
        row[f"p{t}_prec"] = _precision(comp, ref, cls)
    ys, xs = np.nonzero(mask)
    h = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    wy0, wy1 = max(0, cy - 2 * h), min(ref.shape[0], cy + 2 * h)
    wx0, wx1 = max(0, cx - 2 * h), min(ref.shape[1], cx + 2 * h)
    win = ndimage.uniform_filter(img[:, wy0:wy1, wx0:wx1], (1, 3, 3))
    sd = win.reshape(len(win), -1).std(1)[:, None, None] + 1e-3
    sy, sx = cy - wy0, cx - wx0
    seed = win[:, max(0, sy - 1) : sy + 2, max(0, sx - 1) : sx + 2].reshape(len(win), -1).mean(1)
    d = np.sqrt((((win - seed[:, None, None]) / sd) ** 2).sum(0))
    scores, areas = {}, []
    for tol in np.round(np.arange(0.1, 2.01, 0.1), 1):
        lab, _ = ndimage.label(d <= tol)
        comp = ndimage.binary_fill_holes(lab == lab[sy, sx])
        areas.append(comp.sum())
        full = np.zeros_like(mask)
        full[wy0:wy1, wx0:wx1] = comp
        scores[float(tol)] = iou(full, mask)
        if tol in (0.5, 1.0):
            row[f"wand_{tol}"] = scores[float(tol)]
            row[f"wand_{tol}_prec"] = _precision(full, ref, cls)
    row["wand_oracle"] = max(scores.values())
    a = np.array(areas, float)
    row["wand_leak"] = list(scores.values())[int(np.argmax(a[1:] / a[:-1]))]
    return row


def _print_means(name: str, cls: int, rows: list[dict]) -> None:
    of = [r for r in rows if r["cls"] == cls]
    if of:
        keys = [k for k in of[0] if k not in ("cls", "size")]
        means = {k: round(float(np.nanmean([r[k] for r in of])), 3) for k in keys}
        print(name, "class", cls, len(of), means, flush=True)


def _probe_scene(name: str, s, a: argparse.Namespace) -> list[dict]:  # noqa: ANN001 - a Scene
    """The rows of one scene's K largest errors, their means printed per class."""
    pred, probs = refine(s.image, a.out / f"{name}.tif", a.model)
    ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
    img = gdal.Open(str(s.image)).ReadAsArray()[:3].astype(np.float32)
    half = ref.shape[1] // 2
    regions = sorted(error_regions(pred, ref, half), key=lambda r: -r[0])[: a.k]
    rows = [probe_region(m, c, pred, probs, img, ref, s.image) for _, (m, c) in regions]
    for cls in (0, 1):
        _print_means(name, cls, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("out/s31/probe"))
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--model", type=Path, default=None, help="the base model (bundled default)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, s in scenes(a.data, a.out / "data").items():
        found[name] = _probe_scene(name, s, a)
    for cls in (0, 1):  # every scene's regions together (results_corrections "Session 44")
        _print_means("all", cls, [r for rows in found.values() for r in rows])
    (a.out / "rows.json").write_text(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
