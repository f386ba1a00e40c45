"""How far down a round's review list its wrong changes lie (session 42).

The iterations dock lists a round's largest changes (engine turn_back.largest_changes,
REVIEW_TOP rows). In the second-round study a user who went down a 10-row list and
clicked the mostly wrong changes (``study --users reviewed``) taught round 2 less (-0.9
summed over 15 chains) than one who looked at every change and clicked the largest wrong
ones (``clicked``, +6.2): on some scenes the list's first rows held fewer than K wrong
changes. For each gated round-1 model of ``out/s38/chain2/jobs.json`` this prints the
rows (1-based) of the left half's listed changes that are mostly wrong against the
reference (users.reviewed's rule), and the list's length, so the list's length can be
set where the clicking user's K picks lie. No fine-tune: two refines per round.

    python -m map_refiner.dev.corrections.review_depth [--k 4] [--json out/s42/depth.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from .scenes import scenes
from .study import ROOT, refine, review_list, turned_regions
from .users import REVIEW_WRONG_OVER, burned_polygon

JOBS = Path("out/s38/chain2/jobs.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--k", type=int, default=4, help="the clicks a round-2 user makes")
    ap.add_argument("--json", type=Path, help="write the rows here too")
    a = ap.parse_args()
    found = scenes(a.data, Path("out/corrections/data"))
    rows = []
    for job in json.loads(JOBS.read_text()):
        model = Path(job["gated"])
        name = model.stem.split("_largest")[0]
        scene = found[name]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            half = ref.shape[1] // 2
            pred, _ = refine(scene.image, work / "base.tif", model)
            turned_regions(scene, model, work, pred, ref, half)  # the gate parent's map
            listed = review_list(model, work, half, top=10**6)
            like = gdal.Open(str(scene.image))
            wrong = []
            for row, piece in enumerate(listed, start=1):
                mask = burned_polygon(piece.wkt, like)
                if mask.any() and (mask & (pred != ref)).sum() > REVIEW_WRONG_OVER * mask.sum():
                    wrong.append(row)
        row = {
            "round": f"{job['folder']}/{model.stem}",
            "listed": len(listed),
            "wrong_rows": wrong,
            f"row_of_wrong_{a.k}": wrong[a.k - 1] if len(wrong) >= a.k else None,
            "pixels": [int(p.pixels) for p in listed[:40]],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1))
    deepest = [r[f"row_of_wrong_{a.k}"] or r["listed"] for r in rows]
    print(f"the {a.k}th wrong change (or the list's end) lies at rows {sorted(deepest)}")
    print(f"median list length {int(np.median([r['listed'] for r in rows]))}")


if __name__ == "__main__":
    main()
