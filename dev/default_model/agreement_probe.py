"""Probe: does the two bundled recipes' disagreement tell which reads an image better?

    python -m map_refiner.dev.default_model.agreement_probe --pair SCENE:A,B ... --json J

A is a model of the default's recipe (its trunk trained in Xiamen and Austin), B one of
the general recipe's (every layer retrained with turns and scale). Where B reads the
imagery better the images are usually unlike A's training (new sensors: A's maps are
confidently wrong there), which may show as the two maps disagreeing. For each pair both
refine the scene's whole image (the product's path); the probe records, without the
reference, the building IoU between the two maps on the right half (the half no bundled
model trained on) and each map's building share there, the agreement a product's
choice could compute cheaply (``building_maps``: the model grids' maps, no detail pass,
on a lattice of windows of the whole image), and with the reference each
model's right-half building IoU, so a rule "B where they disagree" can be scored. With
``--looks``, each scene is also read with other looks (dev/prior/misread.LOOKS: haze,
colour casts, dark, bright, flat), imagery as another sensor or day would show it. A
question, not a product path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.device import configure_threads
from ...engine.refine.refine_pass import open_pass
from ...engine.refine.tiling import lattice_tiles
from ..corrections.scenes import scenes
from ..corrections.study import iou, refine
from .choice_probe import save_rows

ROOT = Path(__file__).resolve().parents[2]
#: The windows ``building_maps`` samples: up to WINDOWS x WINDOWS of SIDE_M metres a side.
WINDOWS = 3
SIDE_M = 300.0


def building_maps(image: Path, model: Path) -> list[np.ndarray]:
    """``model``'s building map (its model grid's, no detail pass) on each window of a
    fixed lattice over ``image`` (-1 where the image has no data)."""
    p = open_pass(image, model, detail_iterations=0, keep_corrections=False)
    building = [n.lower() for n in p.config.class_names].index("building")
    side_px = max(16, int(round(SIDE_M / p.pixel_size_m)))
    out = []
    for tile in lattice_tiles(p.grids, p.iterations, WINDOWS, side_px):
        res = p.predict(tile, from_prior=False, fine=False)
        cls = res.logits.float().argmax(0).cpu().numpy() == building
        out.append(np.where(res.valid, cls.astype(np.int8), np.int8(-1)))
    return out


def agreement(first: list[np.ndarray], second: list[np.ndarray]) -> float | None:
    """Building IoU of two models' maps over the same windows (valid pixels of both);
    None where neither finds a building."""
    valid = [(a >= 0) & (b >= 0) for a, b in zip(first, second)]
    a = np.concatenate([(m == 1)[v] for m, v in zip(first, valid)])
    b = np.concatenate([(m == 1)[v] for m, v in zip(second, valid)])
    return iou(a, b) if (a | b).any() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", required=True, help="SCENE:A,B (or SCENE:A,B:TAG)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--looks", default="as is", help="comma-separated misread.LOOKS names")
    a = ap.parse_args(argv)
    from ..prior.misread import LOOKS, apply_look

    looks = a.looks.split(",")
    if any(look not in LOOKS for look in looks):
        raise SystemExit(f"looks are {', '.join(LOOKS)}")
    configure_threads()
    work = ROOT / "out" / "multiscene"
    work.mkdir(parents=True, exist_ok=True)
    every = scenes(a.data, work / "data")
    result = json.loads(a.json.read_text()) if a.json.exists() else {}
    for spec, look in ((s, look) for s in a.pair for look in looks):
        name, models, *tag = spec.split(":")
        key = f"{name}|{tag[0] if tag else models}" + ("" if look == "as is" else f"|{look}")
        row = result.get(key)
        if row is not None and "product_agreement" in row:
            continue
        scene = every[name]
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        cols = slice(ref.shape[1] // 2, None)
        pair = [Path(x) for x in models.split(",")]
        with tempfile.TemporaryDirectory(dir=work) as d:
            image = scene.image
            if look != "as is":
                image = apply_look(scene.image, look, Path(d) / "looked.tif")
            if row is None:
                first, second = (refine(image, Path(d) / "map.tif", m)[0][:, cols] for m in pair)
                row = {
                    "scene": name,
                    "look": look,
                    "models": models,
                    "agreement": round(100 * iou(first, second), 2),
                    "share_a": round(100 * float(first.mean()), 2),
                    "share_b": round(100 * float(second.mean()), 2),
                    "iou_a": round(100 * iou(first, ref[:, cols]), 2),
                    "iou_b": round(100 * iou(second, ref[:, cols]), 2),
                }
            # what a product's choice could compute: the model grids' maps on the
            # lattice windows of the whole image
            product = agreement(*(building_maps(image, m) for m in pair))
            row["product_agreement"] = None if product is None else round(100 * product, 2)
        result[key] = row
        print(key, row, flush=True)
        save_rows(a.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
