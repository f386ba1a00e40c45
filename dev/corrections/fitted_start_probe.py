"""Why a fitted map gains less from the detail pass (session 13's probe).

For one scene, K and fine-tune seed: the largest-errors user's corrections, the
product's fine-tune without its detail stage and without the temperature it now records
(ModelConfig.detail_temperature: this probe is why it exists), then the right half of the starting
(``base``) and fitted (``fit``) models' maps: building IoU without the detail pass
(``off``), the share of pixels the model grid's map is at least 0.9 sure of (``sure``),
IoU through the detail pass with the sure-pixel rule (``keep0.9``) and without it
(``keep1.01``), and through the detail pass with the model grid's scores divided by T
first (``T<T>``; T = 1 is the product).

    python -m map_refiner.dev.corrections.fitted_start_probe kampala_drone 4 0 --temps 1,1.5,2,3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from osgeo import gdal

from ...engine.refine import predict
from ...training.corrections.finetune import finetune
from ...training.tile import LabelSource
from .scenes import scenes
from .study import VARIANTS, cell_px, iou, refine
from .users import error_regions, ordered, write_corrections

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("k", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--temps", default="1,1.5,2,3")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = ap.parse_args(argv)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")[a.scene]
    # the refines below patch predict.detail_scores: no map kept by an unpatched refine
    # may stand in for a gate parent's (engine/networks/map_cache.py)
    os.environ["MAP_REFINER_MAP_CACHE"] = "off"
    original = predict.detail_scores

    def divided(t: float):
        def scores(model, config, ds, bands, grids, tile, detail, heat, *rest, **kw):
            return original(model, config, ds, bands, grids, tile, detail, heat / t, *rest, **kw)

        return scores

    with tempfile.TemporaryDirectory(dir=ROOT / "out" / "corrections") as tmp:
        work = Path(tmp)
        ref = gdal.Open(str(sc.reference)).ReadAsArray() > 0
        half = ref.shape[1] // 2
        pred, probs = refine(sc.image, work / "base.tif", None)
        like = gdal.Open(str(sc.image))
        order = ordered(error_regions(pred, ref, half), "largest", probs, half, cell_px(sc, like))
        gpkg = write_corrections(order[: a.k], like, work / "c.gpkg")
        fitted = work / "fit.safetensors"
        finetune(
            sc.image,
            LabelSource(gpkg, class_field="class", mode="sparse"),
            fitted,
            params=replace(  # the fitted model as it was before its own temperature
                VARIANTS["head+rnn"], seed=a.seed, detail=False, detail_temperature=False
            ),
            device="cpu",
        )
        row: dict[str, object] = {"scene": a.scene, "k": a.k, "seed": a.seed}
        for tag, model in (("base", None), ("fit", fitted)):
            off, p = refine(sc.image, work / "off.tif", model, 0)
            row[f"{tag}_off"] = round(100 * iou(off[:, half:], ref[:, half:]), 2)
            row[f"{tag}_sure"] = round(100 * float((p.max(0)[:, half:] >= 0.9).mean()), 1)
            try:
                for keep in (0.9, 1.01):
                    predict.DETAIL_KEEPS_SURE = keep
                    auto, _ = refine(sc.image, work / "auto.tif", model, None)
                    row[f"{tag}_keep{keep}"] = round(100 * iou(auto[:, half:], ref[:, half:]), 2)
                predict.DETAIL_KEEPS_SURE = 0.9
                for t in (float(v) for v in a.temps.split(",")):
                    predict.detail_scores = divided(t)
                    auto, _ = refine(sc.image, work / "auto.tif", model, None)
                    row[f"{tag}_T{t:g}"] = round(100 * iou(auto[:, half:], ref[:, half:]), 2)
            finally:
                predict.DETAIL_KEEPS_SURE = 0.9
                predict.detail_scores = original
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
