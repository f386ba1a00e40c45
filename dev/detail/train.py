"""Train the detail RNN of a model (training/detail_fit.py) on the shared scenes finer
than its grid, and write the model with it (ModelConfig.detail_iterations > 0).

Training areas: the left halves of the drone scenes (kampala_drone, nepal_drone:
7.5 cm imagery, a 0.15 m fine grid) and the whole of austin_enh (0.3 m; the bundled
RNN's training tile); ``--scenes`` chooses others among dev/corrections/scenes.py.
Each is read as a refine reads it: the model grid's refined scores over the whole
scene (the model's own iterations), upsampled bilinearly onto the detail grid (the
image's own pixels, no finer than a quarter of the model's: tiling.make_detail), the
image read there, the reference resampled onto it (area-weighted, >= 0.5 is the
class). austin_dev and every right half are never used: dev/detail/score.py scores
them (docs/results_detail.md, "A detail RNN").

    python -m map_refiner.dev.detail.train --out M.safetensors [--base BASE]
    python -m map_refiner.dev.detail.score --model M.safetensors --settings today,auto
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ...engine.device import configure_threads
from ...engine.modelfile.io import check_model_output, load_model, save_model
from ...engine.networks.inference import infer
from ...engine.progress import make_reporter
from ...engine.refine.predict import model_image
from ...engine.refine.refine_pass import prepare_pass
from ...engine.refine.resample import axis_band, resample_window
from ...engine.refine.tiling import make_detail
from ...training.detail_fit import DetailFitParams, DetailTile, fit_detail_rnn
from ..corrections.scenes import scenes

gdal.UseExceptions()
log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
#: Scene -> the part trained on ("left": its left half; "whole").
TRAIN: dict[str, str] = {"kampala_drone": "left", "nepal_drone": "left", "austin_enh": "whole"}


def detail_tile(
    name: str, image: Path, reference: Path, net, config, iterations: int, part: str
) -> DetailTile:
    """``image`` on the detail grid as a refine hands it to the detail iterations."""
    dev = torch.device("cpu")
    ds = gdal.Open(str(image))
    p = prepare_pass(ds, net, config, dev, None, None, None, None, 1024)
    rx, ry = p.resolution_m
    detail = make_detail(p.grids, rx, ry, config.ground_resolution_m, iterations)
    if detail is None:
        raise ValueError(f"{name}: no detail grid")
    g, fine = p.grids, detail.grids(p.grids)
    mw, mh, fw, fh = g.model_width, g.model_height, detail.width, detail.height
    img = model_image(ds, p.bands, g, p.config, 0, 0, mw, mh, dev)
    scores = infer(net, img, p.iterations)
    start = resample_window(
        scores, axis_band(0, fh, fh / mh, 0, mh, mh), axis_band(0, fw, fw / mw, 0, mw, mw)
    )
    fine_img = model_image(ds, p.bands, fine, p.config, 0, 0, fw, fh, dev)
    ref = torch.from_numpy((gdal.Open(str(reference)).ReadAsArray() > 0).astype(np.float32))
    h, w = ref.shape
    share = resample_window(
        ref, axis_band(0, fh, fine.scale_y, 0, h, h), axis_band(0, fw, fine.scale_x, 0, w, w)
    )
    cols = slice(0, fw // 2) if part == "left" else slice(None)
    return DetailTile(
        name,
        fine_img[:, :, cols].contiguous(),
        start[:, :, cols].float().contiguous(),
        (share[:, cols] >= 0.5).long().contiguous(),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument(
        "--scenes",
        default=",".join(f"{k}:{v}" for k, v in TRAIN.items()),
        help="NAME:left|whole, comma-separated",
    )
    ap.add_argument("--iterations", type=int, default=DetailFitParams.iterations)
    ap.add_argument("--steps", type=int, default=DetailFitParams.steps)
    ap.add_argument("--lr", type=float, default=DetailFitParams.lr)
    ap.add_argument("--seed", type=int, default=DetailFitParams.seed)
    ap.add_argument("--start-scale", type=float, default=DetailFitParams.start_scale)
    ap.add_argument(
        "--starts-from",
        default="",
        help="other models (comma-separated files) whose refined maps are also training "
        "starts, besides the base model's: maps of other networks on the same images",
    )
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_model_output(a.out, [a.base] if a.base else [], a.overwrite)
    configure_threads()
    net, config = load_model(a.base, "cpu")
    all_scenes = scenes(a.data, ROOT / "out" / "multiscene" / "data")
    parts = dict(item.split(":") for item in a.scenes.split(","))
    others = [Path(m) for m in a.starts_from.split(",") if m]
    tiles = []
    for source in [None, *others]:
        s_net, s_config = (net, config) if source is None else load_model(source, "cpu")
        tiles += [
            detail_tile(
                n,
                all_scenes[n].image,
                all_scenes[n].reference,
                s_net,
                s_config,
                a.iterations,
                part,
            )
            for n, part in parts.items()
        ]
    for t in tiles:
        log.info(
            "%s: %s fine pixels, %.1f %% building",
            t.name,
            tuple(t.image.shape[-2:]),
            100 * float((t.labels == 1).float().mean()),
        )
    params = DetailFitParams(
        iterations=a.iterations, steps=a.steps, lr=a.lr, seed=a.seed, start_scale=a.start_scale
    )
    t0 = time.perf_counter()
    rnn, losses = fit_detail_rnn(net.rnn, tiles, params, make_reporter(None, None))
    seconds = time.perf_counter() - t0
    log.info(
        "fitted in %.0f s; loss %.3f (first 50 steps) -> %.3f (last 50)",
        seconds,
        float(np.mean(losses[:50])),
        float(np.mean(losses[-50:])),
    )
    out_net = copy.deepcopy(net)
    out_net.detail_rnn = rnn
    config.detail_iterations = a.iterations
    config.training["detail_rnn"] = {
        "areas": parts,
        "starts_from": [p.name for p in others],
        "iterations": a.iterations,
        "steps": a.steps,
        "lr": a.lr,
        "seed": a.seed,
        "start_scale": a.start_scale,
        "patch_size": params.patch_size,
        "batch_size": params.batch_size,
        "seconds": round(seconds, 1),
        "tool": "dev/detail/train.py",
    }
    save_model(out_net, config, a.out, overwrite=a.overwrite)
    print(
        json.dumps(
            {
                "out": str(a.out),
                "loss_first": float(np.mean(losses[:50])),
                "loss_last": float(np.mean(losses[-50:])),
                "seconds": round(seconds, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
