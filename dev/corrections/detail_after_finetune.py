"""The largest-errors user's fine-tune scored with and without the detail iterations.

For each scene and K: the starting model refines the scene as a user gets it (with its
detail iterations where it has them and the image is fine enough), the user draws
the K largest errors of that map on the left half (dev/corrections/users.py), the
product's fine-tune runs (head+rnn, the flip check off, as the study's rows), and the
right half is scored four ways: the starting model with (`base_auto`) and without
(`base_off`, --detail-iterations 0) its detail iterations, the fitted model likewise
(`fit_auto`, `fit_off`). A fine-tune fits the model grid's networks only; this says
what the detail RNN, trained on the starting model's maps, does for a fitted one.

    python -m map_refiner.dev.corrections.detail_after_finetune \\
        --scenes kampala_drone,nepal_drone,austin_enh,austin_dev [--model M]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...training.corrections.finetune import finetune
from ...training.tile import LabelSource
from ..detail.score import refine as refine_with
from .scenes import scenes
from .study import VARIANTS, cell_px, iou, refine
from .users import error_regions, ordered, write_corrections

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]


def right_half_iou(mask: np.ndarray, ref: np.ndarray) -> float:
    half = ref.shape[1] // 2
    return round(100 * iou(mask[:, half:], ref[:, half:]), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default="kampala_drone,nepal_drone,austin_enh,austin_dev")
    ap.add_argument("--ks", default="4,16")
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled one")
    ap.add_argument("--seed", type=int, default=0, help="the fine-tune's (FitParams.seed)")
    ap.add_argument("--detail-fit", action="store_true", help="the fine-tune with its detail stage")
    a = ap.parse_args(argv)
    out_dir = ROOT / "out" / "corrections"
    out_dir.mkdir(parents=True, exist_ok=True)
    all_scenes = scenes(a.data, out_dir / "data")
    for name in a.scenes.split(","):
        sc = all_scenes[name]
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            work = Path(tmp)
            ref = gdal.Open(str(sc.reference)).ReadAsArray() > 0
            half = ref.shape[1] // 2

            pred, probs = refine(sc.image, work / "base.tif", a.model)
            base_off = refine_with(sc.image, work / "base_off.tif", a.model, "today")
            like = gdal.Open(str(sc.image))
            regions = error_regions(pred, ref, half)
            order = ordered(regions, "largest", probs, half, cell_px(sc, like))
            for k in map(int, a.ks.split(",")):
                gpkg = write_corrections(order[:k], like, work / f"largest_{k}.gpkg")
                fitted = work / f"fit_{k}.safetensors"
                res = finetune(
                    sc.image,
                    LabelSource(gpkg, class_field="class", mode="sparse"),
                    fitted,
                    base_model=a.model,
                    params=replace(  # as the study's rows
                        VARIANTS["head+rnn"], seed=a.seed, detail=a.detail_fit
                    ),
                    device="cpu",
                    overwrite=True,
                )
                row = {
                    "scene": name,
                    "k": k,
                    "seed": a.seed,
                    "detail_fit": a.detail_fit,
                    "adopted": res.adopted,
                    "detail": None
                    if res.detail is None
                    else {
                        "adopted": res.detail.adopted,
                        "base_score": round(res.detail.base_score, 4),
                        "tuned_score": res.detail.tuned_score,
                        "seconds": round(res.detail.seconds, 1),
                    },
                    "base_auto": right_half_iou(pred, ref),
                    "base_off": right_half_iou(base_off, ref),
                    "fit_auto": right_half_iou(
                        refine_with(sc.image, work / "fit.tif", fitted, "auto"), ref
                    ),
                    "fit_off": right_half_iou(
                        refine_with(sc.image, work / "fit_off.tif", fitted, "today"), ref
                    ),
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
