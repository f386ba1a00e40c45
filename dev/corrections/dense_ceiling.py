"""How far a scene's own labels could take a model: the paper's RNN training on the
whole left half, accurately labelled, scored on the right half.

The correction loop (study.py) learns from a few polygons drawn on the left half. This
probe gives the same model every left-half pixel instead (``map-refiner train-rnn IMAGE
LABELS --value-map 0:0,1:1 --model BASE``, the right half left unmapped so it is
ignored) and scores the right half as the study does: a ceiling for what corrections on
the left half can teach the RNN, and so a measure of whether the loop is short of
information (few polygons) or of capacity (the frozen CNN).

    python -m map_refiner.dev.corrections.dense_ceiling --scenes austin_dev,rio_wv2
        [--model BASE] [--steps 600] [--lr 0.01] [--rows rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...cli import main as cli_main
from ..provenance import git_state
from .scenes import scenes
from .study import ROOT, iou, refine

gdal.UseExceptions()
#: Label raster values: background 0, building 1, the right half IGNORED (unmapped).
IGNORED = 255


def left_half_labels(reference: Path, out: Path) -> Path:
    """The reference as 0/1 on the left half and ``IGNORED`` on the right, on its grid."""
    ds = gdal.Open(str(reference))
    ref = ds.ReadAsArray() > 0
    labels = ref.astype(np.uint8)
    labels[:, ref.shape[1] // 2 :] = IGNORED
    drv = gdal.GetDriverByName("GTiff")
    dst = drv.Create(str(out), ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    dst.SetGeoTransform(ds.GetGeoTransform())
    dst.SetProjection(ds.GetProjection())
    dst.GetRasterBand(1).WriteArray(labels)
    dst.FlushCache()
    return out


def run(scene, model: Path | None, steps: int, seed: int, work: Path, lr: float = 0.01) -> dict:
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    pred, _ = refine(scene.image, work / "base.tif", model)
    labels = left_half_labels(scene.reference, work / "labels.tif")
    trained = work / "dense.safetensors"
    args = ["train-rnn", str(scene.image), str(labels), "--value-map", "0:0,1:1"]
    args += ["--out", str(trained), "--steps", str(steps), "--seed", str(seed)]
    args += ["--lr", str(lr), "--device", "cpu", "--no-resume", "--overwrite"]
    if model is not None:
        args += ["--model", str(model)]
    t0 = time.perf_counter()
    rc = cli_main(args)
    if rc:
        raise SystemExit(f"train-rnn failed on {scene.name} (rc {rc})")
    seconds = time.perf_counter() - t0
    after, _ = refine(scene.image, work / "dense.tif", trained)
    return {
        "scene": scene.name,
        "model": str(model) if model else "bundled",
        "steps": steps,
        "seed": seed,
        "lr": lr,
        "before": round(100 * iou(pred[:, half:], ref[:, half:]), 2),
        "after": round(100 * iou(after[:, half:], ref[:, half:]), 2),
        "left_before": round(100 * iou(pred[:, :half], ref[:, :half]), 2),
        "left_after": round(100 * iou(after[:, :half], ref[:, :half]), 2),
        "train_s": round(seconds, 1),
        "commit": git_state(untracked=False)["commit"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--scenes", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.01, help="train-rnn's rate (AdaGrad)")
    ap.add_argument("--rows", default="rows_dense_ceiling.jsonl")
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    every = scenes(a.data, a.out_dir / "data")
    for name in a.scenes.split(",") if a.scenes else list(every):
        with tempfile.TemporaryDirectory(dir=a.out_dir) as work:
            row = run(every[name], a.model, a.steps, a.seed, Path(work), a.lr)
        print(json.dumps(row), flush=True)
        with (a.out_dir / a.rows).open("a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
