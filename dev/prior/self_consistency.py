"""How much the snap model changes a prior left where it is drawn: the prior refined
without registration and without kept prior pixels (shifted.py's unregistered rows), then
its agreement with the prior itself (IoU of the building class, ``self``) beside both's
IoU with the reference. A probe for telling a prior that is already right from one that
is off: a right prior should come back nearly as drawn, a shifted one pulled towards the
image's objects. Session 17 found the agreement varies more by scene than by shift
(docs/results_prior.md, end of "Every scene with an accurate reference: reading").

    python -m map_refiner.dev.prior.self_consistency [--scenes a,b] [--kinds shift:0,shift:2]
        [--model M]   # one line a scene and prior kind; about 25 s for nine scenes; run alone
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from osgeo import gdal

from ..corrections.scenes import scenes
from ..corrections.study import ROOT, iou
from .shifted import prior_on_image, run_strength

gdal.UseExceptions()

ALL = (
    "austin_dev,austin_enh,kampala_drone,nepal_drone,rio_wv2,"
    "isprs_potsdam,isprs_vaihingen,loveda_0,loveda_1"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=ALL)
    ap.add_argument("--kinds", default="shift:0,shift:1,shift:2,shift:4,drop:20")
    ap.add_argument("--model", type=Path, default=None, help="default: the snap model")
    ap.add_argument("--iterations", type=int, default=5)
    a = ap.parse_args(argv)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    with tempfile.TemporaryDirectory(prefix="self_consistency_") as tmp:
        a.out_dir, a.right_half, a.prior_search = Path(tmp), False, None
        for row in run_strength(a, sc, None, registered=False):
            name, kind = row["scene"], row["prior"].replace(":", "")
            like = gdal.Open(str(sc[name].image))
            drawn = prior_on_image(a.out_dir / f"{name}_{kind}.tif", like)
            snapped = gdal.Open(str(a.out_dir / f"{name}_{kind}_snapped.tif")).ReadAsArray() == 1
            out = {k: row[k] for k in ("scene", "prior", "prior_iou", "snapped_iou")}
            print(json.dumps({**out, "self": round(100 * iou(snapped, drawn), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
