"""Retrain the bundled model's CNN head and RNN on every shared scene with an
accurate building reference (the left half of each), with colour augmentation,
and score it against the starting model on what no fit saw.

The coarse CNN's first three layers stay as they are (trained on Xiamen's
OpenStreetMap labels); its last layer and the whole RNN learn from the left
halves of the accurately labelled scenes (dev/corrections/scenes.py), each read
onto the model grid once and in a few colour-jittered copies (brightness,
contrast, per-band gain, a blur), so that the frozen layers run once per copy.
``austin_enh``, the paper's RNN tile, is used whole. Each step draws one copy of
one scene (scenes alike once large enough, see FULL_WEIGHT_PX) and
a batch of patches from it, half centred on each class (training/corrections/
fit.py's sampler). ``austin_dev`` is never used: it stays the development and
demo tile.

Scoring: the product's refine of every scene, building IoU and accuracy of the
right halves (never trained on; ``austin_dev`` not at all), as the correction
study scores them. ``--leave-out NAME`` trains without that scene at all, to see
what a scene of a kind the model has never seen gets.

    python -m map_refiner.dev.default_model.multiscene train --out M.safetensors
    python -m map_refiner.dev.default_model.multiscene score --model M.safetensors
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from osgeo import gdal

from ...engine.device import configure_threads
from ...engine.labels.classes import IGNORE
from ...engine.modelfile.io import load_model, save_model
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...training.corrections.fit import CorrectionFit, FitParams
from ...training.data import load_training_tile
from ...training.tile import LabelSource, TrainingTile
from ..corrections.scenes import scenes
from ..corrections.study import iou

gdal.UseExceptions()
log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
KEPT_OUT = ("austin_dev",)
#: The tile the paper's RNN is trained on (the bundled RNN saw all of it): used whole.
WHOLE = ("austin_enh",)
#: A scene is drawn as often as any other once it holds this many labelled model
#: pixels (about 100 x 100 m at 0.6 m), proportionally less below: the two ISPRS crops
#: (under 3000 each) would otherwise get a quarter of the steps on 1 % of the pixels.
FULL_WEIGHT_PX = 30_000


def left_half_tile(image: Path, reference: Path, config, whole: bool = False) -> TrainingTile:
    """The scene on the model grid, labels on its left half only (right half IGNORE),
    or on all of it with ``whole``."""
    ds = gdal.Open(str(reference))
    w, h = ds.RasterXSize, ds.RasterYSize
    right = np.zeros((h, w), dtype=bool)
    right[:, w // 2 :] = not whole
    values = np.unique(ds.ReadAsArray())
    value_map = {str(int(v)): int(v > 0) for v in values}
    tile = load_training_tile(
        image, LabelSource(reference, value_map=value_map), config, extra_ignore=right
    )
    # A model pixel straddling the half's edge holds the majority of its image pixels:
    # keep two model pixels clear of it.
    cols = torch.nonzero((tile.labels != IGNORE).any(0)).flatten()
    if len(cols) and not whole:
        tile.labels[:, max(0, int(cols.max()) - 1) :] = IGNORE
    return tile


def jittered(
    image: torch.Tensor, rng: np.random.Generator, blur: bool, strength: float = 1.0
) -> torch.Tensor:
    """A colour-jittered copy of a normalised ``(C, H, W)`` image: per-band gain
    0.8-1.25, shift +-0.3 std, contrast 0.7-1.3 at ``strength`` 1 (the ranges grow
    with it: gain 0.8^s-1.25^s, shift +-0.3 s, contrast 1 +- 0.3 s, at least 0.3)."""
    c, s = image.shape[0], strength
    gain = torch.tensor(rng.uniform(0.8**s, 1.25**s, size=c), dtype=image.dtype)[:, None, None]
    shift = torch.tensor(rng.uniform(-0.3 * s, 0.3 * s, size=c), dtype=image.dtype)[:, None, None]
    contrast = float(rng.uniform(max(0.3, 1 - 0.3 * s), 1 + 0.3 * s))
    mean = image.mean(dim=(1, 2), keepdim=True)
    out = (image - mean) * contrast * gain + mean + shift
    if blur:
        k = torch.tensor([0.25, 0.5, 0.25], dtype=image.dtype)
        k2 = (k[:, None] * k[None, :]).expand(c, 1, 3, 3)
        out = F.conv2d(F.pad(out[None], (1, 1, 1, 1), mode="replicate"), k2, groups=c)[0]
    return out


def train(
    out: Path,
    data: Path,
    steps: int,
    copies: int,
    leave_out: list[str],
    seed: int,
    lr: float,
    base: Path | None = None,
    normalisation: str = "model",
    adapt: str = "head+rnn",
    jitter: float = 1.0,
) -> dict:
    configure_threads()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net, config = load_model(base, "cpu")
    config = copy.deepcopy(config)
    config.normalisation = normalisation
    work = ROOT / "out" / "multiscene"
    work.mkdir(parents=True, exist_ok=True)
    every = scenes(data, work / "data")
    unknown = sorted(set(leave_out) - set(every))
    if unknown:
        raise SystemExit(f"no scene named {', '.join(unknown)}; the scenes: {', '.join(every)}")
    chosen = {n: s for n, s in every.items() if n not in KEPT_OUT + tuple(leave_out)}
    params = FitParams(adapt=adapt, anchor_weight=0.0, balance=False)
    fits: dict[str, list[CorrectionFit]] = {}
    weights: dict[str, float] = {}
    for name, scene in chosen.items():
        tile = left_half_tile(scene.image, scene.reference, config, whole=name in WHOLE)
        weights[name] = min(1.0, tile.labelled_pixels / FULL_WEIGHT_PX)
        versions = [tile.image] + [
            jittered(tile.image, rng, blur=(i % 2 == 1), strength=jitter) for i in range(copies)
        ]
        fits[name] = []
        for img in versions:
            p = copy.deepcopy(params)
            p.seed = int(rng.integers(1 << 31))
            f = CorrectionFit(
                net, TrainingTile(img, tile.labels, tile.window), p, torch.device("cpu")
            )
            f.anchor[:] = False  # every label is accurate: no anchors, patches on labels
            fits[name].append(f)
        log.info("%s: %d labelled model pixels", name, tile.labelled_pixels)
    first = next(iter(fits.values()))[0]
    opt = torch.optim.Adam(first.trained, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    prepared = {
        name: [(f, *f.targets(f.labels), f._pools(f.labels)) for f in fs]
        for name, fs in fits.items()
    }
    names = sorted(prepared)
    odds = np.array([weights[n] for n in names])
    odds /= odds.sum()
    t0, history = time.perf_counter(), []
    net.train()
    for step in range(1, steps + 1):
        name = names[rng.choice(len(names), p=odds)]
        f, tgt, weight, pools = prepared[name][rng.integers(len(prepared[name]))]
        loss = f._loss(tgt, weight, pools)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(first.trained, params.clip)
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % 100 == 0:
            print(
                f"step {step} loss {np.mean(history[-100:]):.4f} {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    net.eval()
    seconds = time.perf_counter() - t0
    record = {
        "what": f"the layers of fine-tune mode {adapt!r} (head: conv4 and the upsampling; "
        "deep: conv3 as well) and the RNN on the left halves of accurately labelled "
        "scenes, colour-jittered copies; the earlier CNN layers as trained on Xiamen",
        "scenes": {n: round(float(w), 3) for n, w in zip(names, odds)},
        "whole": [n for n in names if n in WHOLE],
        "left_out": list(KEPT_OUT) + leave_out,
        "steps": steps,
        "copies": copies,
        "optimiser": f"Adam lr {lr}, cosine to 0, batch {params.batch_size} of "
        f"{params.patch_size} px patches, half centred on each class",
        "seed": seed,
        "base": str(base) if base else "the bundled model",
        "normalisation": normalisation,
        "adapt": adapt,
        "jitter": jitter,
        "seconds": round(seconds, 1),
        "loss_last_100": round(float(np.mean(history[-100:])), 4),
        "device": "cpu",
    }
    config.training["multiscene"] = record
    config.name = "Map Refiner default (buildings, several scenes)"
    save_model(net, config, out, overwrite=True)
    return record


def score(
    model: Path | None, data: Path, only: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """Building IoU and accuracy of each scene's right half (austin_dev: whole)."""
    work = ROOT / "out" / "multiscene"
    out: dict[str, dict[str, float]] = {}
    for name, scene in scenes(data, work / "data").items():
        if only and name not in only:
            continue
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        with tempfile.TemporaryDirectory(dir=work) as d:
            path = Path(d) / "map.tif"
            refine_raster(RefineParams(image=scene.image, out=path, model_path=model, device="cpu"))
            ds = gdal.Open(str(path))
            band = ds.GetRasterBand(1)
            ds.GetGeoTransform()
            names = [n.lower() for n in band.GetCategoryNames()]
            pred = band.ReadAsArray() == names.index("building")
            del ds
        cols = slice(ref.shape[1] // 2, None)
        p, r = pred[:, cols], ref[:, cols]
        out[name] = {
            "building_iou": round(100 * iou(p, r), 2),
            "accuracy": round(100 * float((p == r).mean()), 2),
        }
        print(name, out[name], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--data", type=Path, default=Path("../shared/data"))
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--copies", type=int, default=3)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--leave-out", default="")
    t.add_argument("--base", type=Path, default=None, help="starting model (default: bundled)")
    t.add_argument(
        "--normalisation",
        choices=("model", "image"),
        default="model",
        help="image: each image normalised by its own band statistics",
    )
    t.add_argument("--adapt", default="head+rnn", help="what is trained (FitParams.adapt)")
    t.add_argument("--jitter", type=float, default=1.0, help="colour jitter strength")
    c = sub.add_parser("compare", help="score two models, for the model card")
    c.add_argument("--old", type=Path, required=True)
    c.add_argument("--new", type=Path, required=True)
    c.add_argument("--data", type=Path, default=Path("../shared/data"))
    c.add_argument("--json", type=Path, required=True)
    s = sub.add_parser("score")
    s.add_argument("--model", type=Path, default=None)
    s.add_argument("--data", type=Path, default=Path("../shared/data"))
    s.add_argument("--json", type=Path, default=None)
    s.add_argument("--scenes", default="", help="comma-separated names (default: all)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.cmd == "train":
        leave = [n for n in a.leave_out.split(",") if n]
        record = train(
            a.out,
            a.data,
            a.steps,
            a.copies,
            leave,
            a.seed,
            a.lr,
            a.base,
            a.normalisation,
            a.adapt,
            a.jitter,
        )
        print(json.dumps(record))
    elif a.cmd == "compare":
        both = {"old": score(a.old, a.data), "new": score(a.new, a.data)}
        a.json.write_text(json.dumps(both, indent=1) + "\n")
    else:
        res = score(a.model, a.data, [n for n in a.scenes.split(",") if n])
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
