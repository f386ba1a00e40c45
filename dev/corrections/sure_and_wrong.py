"""How often a starting model was sure where the study's user says it is wrong.

For each scene and K, the largest-errors user's drawn pixels (dev/corrections/users.py)
that the starting model gets wrong, and the share of them it was at least 0.9 sure of:
the measure the fine-tune's anchors are chosen by (training/corrections/fit.py
``sure_and_wrong``; the fine-tune takes it on the model grid, this on the image's
pixels, so the two can differ by a few points).

    python -m map_refiner.dev.corrections.sure_and_wrong [--model M] [--ks 4,16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...training.corrections.fit import ANCHOR_CONFIDENCE
from .scenes import scenes
from .study import ROOT, cell_px, refine
from .users import error_regions, ordered

gdal.UseExceptions()


def shares(model: Path | None, data: Path, ks: list[int]) -> dict[str, dict[int, float]]:
    """scene -> K -> share of the drawn, wrongly mapped pixels the model was sure of."""
    work = ROOT / "out" / "corrections"
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[int, float]] = {}
    for name, scene in scenes(data, work / "data").items():
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        half = ref.shape[1] // 2
        with tempfile.TemporaryDirectory(dir=work) as d:
            pred, probs = refine(scene.image, Path(d) / "map.tif", model)
        sure = probs.max(0) >= ANCHOR_CONFIDENCE
        order = ordered(
            error_regions(pred, ref, half),
            "largest",
            probs,
            half,
            cell_px(scene, gdal.Open(str(scene.image))),
        )
        out[name] = {}
        for k in ks:
            if not order[:k]:
                continue
            wrong = np.zeros_like(ref)
            for mask, cls in order[:k]:
                wrong |= mask & (pred != bool(cls))
            out[name][k] = float(sure[wrong].mean()) if wrong.any() else 0.0
        print(name, {k: round(v, 2) for k, v in out[name].items()}, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="starting model (default: bundled)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--ks", default="4,16")
    a = ap.parse_args(argv)
    shares(a.model, a.data, [int(k) for k in a.ks.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
