"""How far a model's class calibration alone could move the loop's undrawn halves: the
model's coarse-CNN building bias (``coarse.conv4.bias``, one number for the whole image)
shifted by each of ``--deltas``, every scene refined, building IoU of its left and right
halves printed. An oracle (it looks at the reference): what a fit that learnt only the
calibration could reach at best, not a method.

    python -m map_refiner.dev.corrections.bias_oracle \\
        --model out/multiscene/old_default.safetensors [--deltas=-2,-1,0,1,2,3] [--scenes ...]
        # -> one line a scene: (delta, left IoU, right IoU); about 25 s for nine scenes
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from osgeo import gdal

from ...engine.modelfile.io import load_model, save_model
from .scenes import scenes
from .study import ROOT, iou, refine

gdal.UseExceptions()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--deltas", default="-2,-1,0,1,2,3")
    ap.add_argument("--scenes", default=None, help="comma-separated names (default: all)")
    a = ap.parse_args(argv)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    names = a.scenes.split(",") if a.scenes else list(sc)
    deltas = [float(d) for d in a.deltas.split(",")]
    with tempfile.TemporaryDirectory(prefix="bias_oracle_") as tmp:
        return oracle(a, sc, names, deltas, Path(tmp))


def oracle(
    a: argparse.Namespace, sc: dict, names: list[str], deltas: list[float], work: Path
) -> int:
    """Each scene's line, with the shifted models in ``work``."""
    models = {}
    for d in deltas:
        net, cfg = load_model(a.model, "cpu")[:2]
        building = [c.name for c in cfg.classes].index("building")
        with torch.no_grad():
            net.coarse.conv4.bias[building] += d
        models[d] = save_model(net, cfg, work / f"m_{d:g}.safetensors")
    for name in names:
        s = sc[name]
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        half = ref.shape[1] // 2
        out = []
        for d in deltas:
            pred, _ = refine(s.image, work / "out.tif", models[d])
            left = round(100 * iou(pred[:, :half], ref[:, :half]), 1)
            out.append((d, left, round(100 * iou(pred[:, half:], ref[:, half:]), 1)))
        print(name, out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
