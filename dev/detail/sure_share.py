"""The share of each shared scene's model-grid map (the bundled model, no detail pass)
that is at least 0.9 sure, whole / left half / right half: whether a scene's sureness
tells which scenes want a detail temperature above 1 (docs/results_detail.md, last
section; it does not).

    python -m map_refiner.dev.detail.sure_share
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from osgeo import gdal

from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled one")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name, sc in scenes(a.data, ROOT / "out" / "multiscene" / "data").items():
            out, scores = Path(tmp) / f"{name}.tif", Path(tmp) / f"{name}_scores.tif"
            refine_raster(
                RefineParams(
                    image=sc.image,
                    out=out,
                    model_path=a.model,
                    scores=scores,
                    device="cpu",
                    overwrite=True,
                    detail_iterations=0,
                )
            )
            top = gdal.Open(str(scores)).ReadAsArray().max(0) >= 0.9
            w = top.shape[1]
            print(
                f"{name}: {100 * top.mean():.1f} % sure (left {100 * top[:, : w // 2].mean():.1f}"
                f", right {100 * top[:, w // 2 :].mean():.1f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
