"""How much the snap model changes a prior left where it is drawn: the prior refined
without registration and without kept prior pixels, then its agreement with the prior
itself (IoU of the building class) beside both's IoU with the reference. A probe for
telling a prior that is already right from one that is off: a right prior should come
back nearly as drawn, a shifted one pulled towards the image's objects.

    python -m map_refiner.dev.prior.self_consistency [--scenes a,b] [--kinds shift:0,shift:2]
        [--model M]   # one line a scene and prior kind; run alone
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import ROOT, iou
from .shifted import prior_on_image, wrong_map

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
    ap.add_argument("--model", type=Path, default=ROOT / "resources/models/snap.safetensors")
    ap.add_argument("--iterations", type=int, default=5)
    a = ap.parse_args(argv)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    with tempfile.TemporaryDirectory(prefix="self_consistency_") as tmp:
        for name in a.scenes.split(","):
            s = sc[name]
            like = gdal.Open(str(s.image))
            ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
            for kind in a.kinds.split(","):
                prior = wrong_map(ref, like, kind, Path(tmp) / "prior.tif")
                out = Path(tmp) / "snapped.tif"
                refine_raster(
                    RefineParams(
                        image=s.image,
                        out=out,
                        device="cpu",
                        model_path=a.model,
                        iterations=a.iterations,
                        prior=prior,
                        prior_value_map={0: 0, 1: 1},
                        prior_register=False,
                        prior_keep=0.0,
                        overwrite=True,
                    )
                )
                snapped = gdal.Open(str(out)).ReadAsArray() == 1
                drawn = prior_on_image(prior, like)
                row = {
                    "scene": name,
                    "prior": kind,
                    "self": round(100 * iou(snapped, drawn), 1),
                    "prior_iou": round(100 * iou(drawn, ref), 1),
                    "snapped_iou": round(100 * iou(snapped, ref), 1),
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
