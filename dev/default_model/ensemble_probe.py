"""Probe: two models' refined probabilities averaged, scored on each scene's right half.

    python -m map_refiner.dev.default_model.ensemble_probe --models A B [--weights 0.5,0.5]

Each model refines each shared scene (the product's path: detail pass and all) and
writes its class probabilities; the probe scores each model alone and the weighted mean
of their probabilities (argmax), building IoU of the right half (the half the bundled
model never trained on). A question, not a product path: whether two models' maps
together start better than either on scenes from several sensors.
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
from ..corrections.scenes import scenes
from ..corrections.study import iou, refine

ROOT = Path(__file__).resolve().parents[2]


def building_probability(model: Path, image: Path, work: Path) -> np.ndarray:
    """The model's refined building probability on ``image``'s grid (the scores file's
    band of the class named building: one float band per class)."""
    building = read_model_config(model).class_names.index("building")
    with tempfile.TemporaryDirectory(dir=work) as d:
        return refine(image, Path(d) / "map.tif", model)[1][building].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path, required=True)
    ap.add_argument("--weights", default=None, help="comma-separated, one per model")
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    configure_threads()
    weights = (
        [float(w) for w in a.weights.split(",")]
        if a.weights
        else [1.0 / len(a.models)] * len(a.models)
    )
    only = a.scenes.split(",") if a.scenes else None
    work = ROOT / "out" / "multiscene"
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, float]] = {}
    for name, scene in scenes(a.data, work / "data").items():
        if only and name not in only:
            continue
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        cols = slice(ref.shape[1] // 2, None)
        probs = [building_probability(m, scene.image, work) for m in a.models]
        row = {}
        for m, p in zip(a.models, probs):
            row[m.stem] = round(100 * iou((p > 0.5)[:, cols], ref[:, cols]), 2)
        mean = sum(w * p for w, p in zip(weights, probs)) / sum(weights)
        row["mean"] = round(100 * iou((mean > 0.5)[:, cols], ref[:, cols]), 2)
        result[name] = row
        print(name, row, flush=True)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
