"""Can a turned-back change be trimmed without the user? (session 42; measured, nothing
in the product depends on it)

In the second-round study a user who clicked round 1's mostly wrong changes taught round 2
+6.2 summed over 15 rounds, the same user who then trimmed each polygon to the change's
wrong part +11.9 (results_corrections "Session 42"): the right part of a change turned back
costs. This asks whether a label-free signal tells the two parts apart inside the changes
such a user clicks (the first four of the left half's listed changes that are mostly wrong,
as users.reviewed picks them): per pixel, the round's probability of the class the change
became, the parent's probability of the class it had, and the distance to the change's
outline. Prints, per round and pooled, the area under the ROC curve of each signal for
"this pixel of the change is wrong" (0.5: no use; 1: a perfect trim), and the share of
wrong pixels.

    python -m map_refiner.dev.corrections.trim_probe [--json out/s42/trim_probe.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage, stats

from .review_depth import JOBS
from .scenes import scenes
from .study import ROOT, refine, review_list, turned_regions
from .users import REVIEW_WRONG_OVER, burned_polygon


def auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """The area under the ROC curve of ``score`` for ``positive`` (ties count half); None
    when one side is empty."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return None
    ranks = stats.rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    found = scenes(a.data, Path("out/corrections/data"))
    rows, pooled = [], {"wrong": [], "round_new": [], "parent_old": [], "inside_m": []}
    for job in json.loads(JOBS.read_text()):
        model = Path(job["gated"])
        scene = found[model.stem.split("_largest")[0]]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            half = ref.shape[1] // 2
            pred, probs = refine(scene.image, work / "base.tif", model)
            turned_regions(scene, model, work, pred, ref, half)
            parent = work / "gate_parent.safetensors"
            _, parent_probs = refine(scene.image, work / "gate_parent.tif", parent)
            like = gdal.Open(str(scene.image))
            pixel_m = abs(like.GetGeoTransform()[1])
            picked = []
            for piece in review_list(model, work, half, top=10**6):
                mask = burned_polygon(piece.wkt, like)
                if mask.any() and (mask & (pred != ref)).sum() > REVIEW_WRONG_OVER * mask.sum():
                    picked.append((mask, piece))
                if len(picked) == a.k:
                    break
        signals = {k: [] for k in pooled}
        for mask, piece in picked:
            new = 1 if piece.became == "building" else 0
            old = 1 - new
            signals["wrong"].append((pred != ref)[mask])
            signals["round_new"].append(probs[new][mask] / max(1e-9, probs.max()))
            signals["parent_old"].append(parent_probs[old][mask] / max(1e-9, parent_probs.max()))
            inside = ndimage.distance_transform_edt(mask) * pixel_m
            signals["inside_m"].append(inside[mask])
        row = {"round": f"{job['folder']}/{model.stem}", "clicked": len(picked)}
        if picked:
            flat = {k: np.concatenate(v) for k, v in signals.items()}
            wrong = flat["wrong"]
            row["wrong_share"] = round(float(wrong.mean()), 3)
            for key in ("round_new", "parent_old", "inside_m"):
                # a wrong pixel: the round less sure, the parent surer, deeper inside?
                score = -flat[key] if key == "round_new" else flat[key]
                value = auc(score, wrong)
                row[f"auc_{key}"] = None if value is None else round(value, 3)
            for k, v in flat.items():
                pooled[k].append(v)
        rows.append(row)
        print(json.dumps(row), flush=True)
    flat = {k: np.concatenate(v) for k, v in pooled.items() if v}
    total = {"round": "pooled", "wrong_share": round(float(flat["wrong"].mean()), 3)}
    for key in ("round_new", "parent_old", "inside_m"):
        score = -flat[key] if key == "round_new" else flat[key]
        value = auc(score, flat["wrong"])
        total[f"auc_{key}"] = None if value is None else round(value, 3)
    rows.append(total)
    print(json.dumps(total))
    if a.json is not None:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
