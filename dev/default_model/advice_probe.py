"""Probe: do a user's first corrections tell which of two models reads the imagery better?

    python -m map_refiner.dev.default_model.advice_probe --pair SCENE:A,B ... --json OUT.json

The user refines with model A and draws the K largest errors of its map on the left half
(the study's largest-errors user, K = 4 and 16). On those drawn pixels A is wrong by
construction; the probe records how many of them model B gets right (balanced over the
drawn classes), and, with the reference, the right halves' building IoU of both models,
so a rule "B gets most of what you drew right: try B" can be scored against the better
model. Session 28's label-free signals (edge support, confidence, share) picked right in
9 of 15 pairs; the drawn polygons are labels. A question, not a product path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.device import configure_threads
from ..corrections.scenes import scenes
from ..corrections.study import cell_px, iou, refine
from ..corrections.users import error_regions, ordered

ROOT = Path(__file__).resolve().parents[2]


def drawn_accuracy(pred: np.ndarray, drawn: list) -> float:
    """The mean over the drawn classes of the share of their drawn pixels ``pred`` gives."""
    per: dict[int, list[int]] = {}
    for mask, c in drawn:
        hit = per.setdefault(int(c), [0, 0])
        hit[0] += int((pred[mask] == bool(c)).sum())
        hit[1] += int(mask.sum())
    return float(np.mean([h / n for h, n in per.values() if n])) if per else float("nan")


def probe(scene, a: Path, b: Path, ks: list[int], work: Path) -> list[dict]:
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    pred_a, probs_a = refine(scene.image, work / "a.tif", a)
    pred_b, _ = refine(scene.image, work / "b.tif", b)
    regions = error_regions(pred_a, ref, half)
    order = ordered(regions, "largest", probs_a, half, cell_px(scene, gdal.Open(str(scene.image))))
    rows = []
    for k in ks:
        drawn = order[:k]
        if not drawn:
            continue
        rows.append(
            {
                "scene": scene.name,
                "a": a.name,
                "b": b.name,
                "k": k,
                "drawn": len(drawn),
                "classes": sorted({int(c) for _, c in drawn}),
                "acc_a": round(drawn_accuracy(pred_a, drawn), 4),
                "acc_b": round(drawn_accuracy(pred_b, drawn), 4),
                "iou_a": round(100 * iou(pred_a[:, half:], ref[:, half:]), 2),
                "iou_b": round(100 * iou(pred_b[:, half:], ref[:, half:]), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", required=True, help="SCENE:MODEL_A,MODEL_B")
    ap.add_argument("--ks", default="4,16")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    a = ap.parse_args(argv)
    configure_threads()
    ks = [int(k) for k in a.ks.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        found = scenes(a.data, work / "scenes")
        for spec in a.pair:
            name, models = spec.split(":", 1)
            first, second = (Path(m) for m in models.split(","))
            rows += probe(found[name], first, second, ks, work)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
