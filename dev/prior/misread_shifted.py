"""Shifted priors on imagery the model misreads (session 40): the case the edge move
acts on (registration.edge_offset: where the model's own move is undone by the image's
edges, the prior goes onto the strongest edges instead).

Each scene's reference shifted east and south by 1 and 2 m (shifted.wrong_map) is refined
as a prior with the snap model from the image read in each band order of misread.py, as
the product does; building IoU against the reference, and what registration did
(shifted.short_note). Rows where the edge move acted say "by the edges".

    python -m map_refiner.dev.prior.misread_shifted [--scenes a,b] [--bands "3,2,1;1,1,1"]
        [--kinds shift:1,shift:2] --json out/s40/misread_shifted.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.refine.params import RefineParams
from ...engine.refine.pipeline import refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import iou
from .misread import ORDERS, SCENES, building_iou
from .shifted import ROOT, prior_on_image, short_note, wrong_map


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=",".join(SCENES + ("isprs_vaihingen",)))
    ap.add_argument("--bands", default=ORDERS, help="band orders, ';'-separated")
    ap.add_argument("--kinds", default="shift:1,shift:2")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in a.scenes.split(","):
            scene = found[name]
            like = gdal.Open(str(scene.image))
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            for kind in a.kinds.split(","):
                prior = wrong_map(ref, like, kind, work / f"{name}_{kind}.tif")
                drawn = 100.0 * iou(prior_on_image(prior, like), ref)
                for order in ["as is"] + a.bands.split(";"):
                    bands = None if order == "as is" else [int(b) for b in order.split(",")]
                    out = work / "snapped.tif"
                    res = refine_raster(
                        RefineParams(
                            image=scene.image, out=out, prior=prior, bands=bands, overwrite=True
                        )
                    )
                    row = {
                        "scene": name,
                        "prior": kind,
                        "bands": order,
                        "prior_iou": round(drawn, 1),
                        "snapped_iou": round(building_iou(out, ref), 1),
                        "registration": short_note(res.prior_note),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    print("| scene | prior | bands | prior's IoU | snapped | registration |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scene']} | {r['prior']} | {r['bands']} | {r['prior_iou']} | "
            f"{r['snapped_iou']} | {r['registration']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
