"""Probe: can a refine's own map and image tell which of two models reads the imagery better?

    python -m map_refiner.dev.default_model.choice_probe --pair SCENE:MODEL,MODEL[,...] ... \
        --json out/s28/choice.json

Each model refines the scene's whole image (the product's path) and the probe records,
without the reference, what a rule choosing a model per image could use: the mean edge
strength under the building outlines over the image's mean (registration.edge_support,
the figure the prior checks trust, here on the model's grid), the building share, and
the mean of the winning class's probability. With the reference it records the right
half's building IoU, so a rule's choice can be scored against the better model's. A
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
from ...engine.modelfile.header import read_model_config
from ...engine.refine.registration import edge_strength, edge_sum, edge_support
from ..corrections.scenes import scenes
from ..corrections.study import iou, refine

ROOT = Path(__file__).resolve().parents[2]


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f`` x ``f`` blocks of the last two axes (the remainder cut)."""
    if f <= 1:
        return a
    h, w = (a.shape[-2] // f) * f, (a.shape[-1] // f) * f
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))


def features(image: Path, probs: np.ndarray, building: int, res_m: float) -> dict[str, float]:
    """Label-free figures of one refine on the model's grid (block means)."""
    ds = gdal.Open(str(image))
    pixel = abs(ds.GetGeoTransform()[1])
    f = max(1, int(round(res_m / pixel)))
    img = _blocks(ds.ReadAsArray()[:3].astype(np.float32), f)
    p = _blocks(probs.astype(np.float32), f)
    strength = edge_strength(img)
    classes = (p[building] > 0.5).astype(np.int32)
    support = edge_support(
        edge_sum(strength, classes), (float(strength.sum()), int((strength > 0).sum()))
    )
    return {
        "support": round(support, 4) if support is not None else None,
        "share": round(float(classes.mean()), 4),
        "confidence": round(float(p.max(0).mean()), 4),
    }


def save_rows(path: Path, rows: dict) -> None:
    """``rows`` written to the JSON file ``path`` whole or not at all (a probe resumes
    from it)."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", required=True, help="SCENE:MODEL,MODEL,...")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    configure_threads()
    work = ROOT / "out" / "multiscene"
    work.mkdir(parents=True, exist_ok=True)
    every = scenes(a.data, work / "data")
    result = json.loads(a.json.read_text()) if a.json.exists() else {}
    for spec in a.pair:
        name, models = spec.split(":", 1)
        scene = every[name]
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        cols = slice(ref.shape[1] // 2, None)
        for m in (Path(x) for x in models.split(",")):
            key = f"{name}|{m}"
            if key in result:
                continue
            cfg = read_model_config(m)
            building = cfg.class_names.index("building")
            with tempfile.TemporaryDirectory(dir=work) as d:
                probs = refine(scene.image, Path(d) / "map.tif", m)[1]
            row = features(scene.image, probs, building, cfg.ground_resolution_m)
            row["right_iou"] = round(100 * iou((probs[building] > 0.5)[:, cols], ref[:, cols]), 2)
            row["scene"], row["model"] = name, str(m)
            result[key] = row
            print(key, row, flush=True)
            save_rows(a.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
