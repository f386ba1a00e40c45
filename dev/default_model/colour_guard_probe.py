"""Probe (session 47): can the model's own reading tell a harmful colour match from a
helpful one, without labels?

Session 46 matched an image's colours to the training imagery where it looks like none
of it (engine/modelfile/colour_fit.py) and found no label-free guard against the scenes it
costs (LoveDA's rural tiles, the ISPRS crops): the matched image's look distance and the
gains' spread do not separate them (colour_match_probe --guards). This probe reads what
the model itself says of each reading: for every looked image (dev/prior/misread.py's
looks) it refines the image as read and matched onto the left-out pool (the scored
scene's own area out, as colour_match_probe's section 1), with the general model read
without its own entry, and prints per reading the mean top-class probability (sure),
the building share, the share of pixels the two maps call differently, and the right
half's building IoU against the reference.

    python -m map_refiner.dev.default_model.colour_guard_probe \\
        --scenes austin_dev,austin_enh,kampala_drone,nepal_drone,rio_wv2,loveda_0,loveda_1 \\
        --json out/s47/guard_signals.json

``--table`` prints a --json file's rows and how each candidate rule would have chosen.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (before GDAL, as every dev module here)
from osgeo import gdal

from ...engine.modelfile.bundled_choice import look_pixels
from ...engine.modelfile.colour_fit import band_percentiles, fit_gains
from ...engine.modelfile.colour_match import PERCENTILES
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import ROOT, building_mask, iou
from .colour_match import area_percentiles
from .colour_match_probe import looked, matched
from .multiscene import KEPT_OUT, WHOLE

gdal.UseExceptions()

LOOKS = "haze 0.3,haze 0.5,warm cast,cool cast,green cast,dark,bright,flat"


def reading(image: Path, reference: Path, model: Path, work: Path) -> dict[str, float]:
    """The general model's map of ``image``, as the probe's signals and the right half's
    building IoU."""
    out, scores = work / "map.tif", work / "scores.tif"
    params = RefineParams(image=image, out=out, model_path=model, device="cpu", scores=scores)
    refine_raster(replace(params, match_colours=False))
    ds = gdal.Open(str(scores))
    probs = ds.ReadAsArray().astype(np.float32)  # (classes, h, w)
    ds = None
    valid = np.isfinite(probs).all(0) & (probs.sum(0) > 0)
    pred = building_mask(out)
    ref = gdal.Open(str(reference)).ReadAsArray() > 0
    cols = slice(ref.shape[1] // 2, None)
    row = {
        "sure": float(probs.max(0)[valid].mean()),
        "building": float(pred.mean()),
        "iou": round(100 * iou(pred[:, cols], ref[:, cols]), 2),
    }
    np.save(work / f"{image.stem}.npy", pred)
    out.unlink()
    scores.unlink()
    return row


def probe(data: Path, model: Path, names: list[str], looks: list[str], out_json: Path) -> None:
    found = scenes(data, ROOT / "out" / "corrections" / "data")
    areas = {
        n: area_percentiles(s.image, "whole" if n in WHOLE else "left")
        for n, s in found.items()
        if n not in KEPT_OUT
    }
    rows = json.loads(out_json.read_text()) if out_json.exists() else {}
    for name in names:
        pool = np.mean([v for k, v in areas.items() if k != name], 0)
        for look in looks:
            image = looked(found[name].image, name, look)
            ds = gdal.Open(str(image))
            rgb, valid = look_pixels(ds, [1, 2, 3], abs(ds.GetGeoTransform()[1]))
            ds = None
            g, c = fit_gains(band_percentiles(rgb, valid, PERCENTILES), pool)
            with tempfile.TemporaryDirectory(dir=ROOT / "out") as d:
                work = Path(d)
                m = matched(image, g, c, work / "matched.tif")
                row: dict[str, object] = {
                    "read": reading(image, found[name].reference, model, work),
                    "matched": reading(m, found[name].reference, model, work),
                }
                a, b = np.load(work / f"{image.stem}.npy"), np.load(work / "matched.npy")
                row["changed"] = float((a != b).mean())
            rows[f"{name}+{look}"] = row
            print(f"{name}+{look}", json.dumps(row), flush=True)
            out_json.write_text(json.dumps(rows, indent=1))


def table(rows: dict) -> None:
    print(
        "| image | IoU read -> matched | sure read -> matched | building read -> matched "
        "| changed |"
    )
    print("|---|---|---|---|---|")
    for key, r in rows.items():
        a, b = r["read"], r["matched"]
        print(
            f"| {key} | {a['iou']:.1f} -> {b['iou']:.1f} | {a['sure']:.3f} -> {b['sure']:.3f} "
            f"| {100 * a['building']:.1f} -> {100 * b['building']:.1f} "
            f"| {100 * r['changed']:.1f} |"
        )
    for rule, keep in (
        ("always match", lambda a, b, r: True),
        ("match when the model is surer matched", lambda a, b, r: b["sure"] > a["sure"]),
    ):
        gain = [r["matched"]["iou"] - r["read"]["iou"] for r in rows.values()]
        chosen = [
            (r["matched"]["iou"] if keep(r["read"], r["matched"], r) else r["read"]["iou"])
            - r["read"]["iou"]
            for r in rows.values()
        ]
        lost = sum(1 for x in chosen if x < -1)
        print(f"{rule}: {sum(chosen):+.1f} over {len(gain)} images, {lost} lose over a point")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, default=ROOT / "resources/models/general.safetensors")
    ap.add_argument("--scenes", default="austin_dev,kampala_drone,nepal_drone,rio_wv2,loveda_1")
    ap.add_argument("--looks", default=LOOKS)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args(argv)
    if a.table:
        table(json.loads(a.json.read_text()))
        return 0
    probe(a.data, a.model, a.scenes.split(","), a.looks.split(","), a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
