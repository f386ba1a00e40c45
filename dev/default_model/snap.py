"""A snap model: the bundled model with its RNN trained to move a wrong prior map
onto the image (``refine --prior``), not to refine the CNN's heat maps.

Training data: the accurately labelled shared scenes on the model grid (the left
halves of kampala_drone, nepal_drone and rio_wv2; austin_enh whole; austin_dev never),
each with the coarse CNN's heat maps computed once and their calibration (the CNN's
mean heat vector per class it calls, engine/refine/prior.calibration, as a refine
with a prior computes it). Each step draws a scene, degrades its reference the way
coarse maps are wrong (shifted by up to 4 m, a fifth of the buildings dropped,
outlines grown or shrunk by a pixel or two; sometimes left right), turns it into the
calibrated start, and fits the RNN (from the bundled one) to the reference with Adam.

    python -m map_refiner.dev.default_model.snap --out out/snap/snap.safetensors [--steps 1200]
    python -m map_refiner.dev.prior.shifted --model out/snap/snap.safetensors --right-half

Session 25: ``--base`` starts from another model's RNN (the shipped snap model, to train
it further), and ``--looks P`` gives a share P of the patches the look of other
imagery (a random exposure, colour cast, haze and contrast: ``looked``), as
dev/prior/misread.py's looks test a right prior with. Session 45: ``--generalise P`` first
merges (gaps 1-3 m) or simplifies (0.6-1.8 m) a share P of the wrong priors
(dev/prior/generalise.py); measured at 0.3 and not adopted (docs/results_prior.md
"Session 45": Kampala's right prior -10.4).
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...engine.device import configure_threads
from ...engine.labels.classes import IGNORE
from ...engine.modelfile.io import load_model, save_model
from ...engine.networks.inference import coarse_scores
from ...engine.networks.models import pad_to_stride
from ...engine.refine.prior import calibration
from ...training.data import load_training_tile
from ...training.tile import LabelSource
from ..corrections.scenes import scenes
from ..prior.generalise import merged, simplified
from ..prior.misread import relook

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
TRAIN = {"austin_enh": "whole", "kampala_drone": "left", "nepal_drone": "left", "rio_wv2": "left"}
CONTEXT = 12  # model px the RNN needs around a patch (2 per iteration + 2)


def scene_data(net, config, s, part: str) -> dict:
    tile = load_training_tile(
        s.image, LabelSource(s.reference, value_map={"0": 0, "255": 1}), config
    )
    img = tile.image
    with torch.no_grad():
        heat = coarse_scores(net.coarse, pad_to_stride(img[None]))[
            0, :, : img.shape[1], : img.shape[2]
        ]
    labels = tile.labels.numpy().astype(np.int64)
    valid = labels != IGNORE
    calib = calibration([heat.numpy()], [np.ones(labels.shape, bool)], 1.0)
    limit = labels.shape[1] if part == "whole" else labels.shape[1] // 2
    return {"img": img, "labels": labels, "valid": valid, "calib": calib, "x_limit": limit}


#: Share of steps whose prior is the reference itself: the snap model must keep a map
#: that is already right.
RIGHT_SHARE = 0.4


def degrade(
    ref: np.ndarray,
    rng: np.random.Generator,
    px_m: float = 0.6,
    right: float = RIGHT_SHARE,
    generalise: float = 0.0,
) -> np.ndarray:
    """The reference as a coarse map would have it; with probability ``generalise`` (of the
    wrong priors) also generalised first: buildings less than 1-3 m apart merged into
    blocks, or outlines simplified by 0.6-1.8 m (dev/prior/generalise.py), half each."""
    out = ref.copy()
    if rng.random() < right:
        return out
    if generalise > 0 and rng.random() < generalise:  # no draw at 0: the shipped stream
        if rng.random() < 0.5:
            out = merged(out, rng.uniform(1.0, 3.0) / px_m)
        else:
            out = simplified(out, rng.uniform(0.6, 1.8) / px_m)
    shift = int(round(rng.uniform(0, 4.0) / px_m))
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = int(round(shift * np.sin(angle))), int(round(shift * np.cos(angle)))
    out = np.roll(out, (dy, dx), axis=(0, 1))
    if rng.random() < 0.5:
        labels, n = ndimage.label(out)
        if n:
            gone = rng.choice(np.arange(1, n + 1), size=max(0, int(round(0.2 * n))), replace=False)
            out[np.isin(labels, gone)] = False
    grow = rng.integers(-2, 3)
    if grow > 0:
        out = ndimage.binary_dilation(out, iterations=int(grow))
    elif grow < 0:
        out = ndimage.binary_erosion(out, iterations=int(-grow))
    return out


def soft(prior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class map as another tool's building probability: the outline blurred over
    0.5-2 model pixels, and never fully sure (a floor and ceiling of 0-0.15)."""
    p = ndimage.gaussian_filter(prior.astype(np.float32), rng.uniform(0.5, 2.0))
    floor = rng.uniform(0.0, 0.15)
    return floor + (1 - 2 * floor) * p


#: ``--looks``' ranges: overall gain (log-uniform), per-band cast, haze (a blend
#: towards misread.AIRLIGHT) and contrast about the patch's mean; raw 8-bit scale,
#: clipped (misread.relook, the looks dev/prior/misread.py tests a right prior with).
LOOK_GAIN = (0.5, 1.6)
LOOK_CAST = (0.8, 1.25)
LOOK_HAZE = (0.0, 0.5)
LOOK_CONTRAST = (0.5, 1.2)


def looked(
    imgs: torch.Tensor,
    rng: np.random.Generator,
    norm: tuple[np.ndarray, np.ndarray],
    share: float,
) -> torch.Tensor:
    """``imgs`` (``(N, C, H, W)``, normalised by ``norm``: the model's raw band means and
    spreads), a share ``share`` of them given another look on the raw scale: a gain, a
    colour cast, haze and a contrast change drawn from the LOOK_* ranges, clipped to
    0-255 as an 8-bit image would be."""
    out = imgs.clone()
    c = imgs.shape[1]
    mean = torch.tensor(norm[0][:c], dtype=imgs.dtype)[:, None, None]
    std = torch.tensor(norm[1][:c], dtype=imgs.dtype)[:, None, None]
    for i in range(imgs.shape[0]):
        if rng.random() >= share:
            continue
        contrast = float(rng.uniform(*LOOK_CONTRAST))
        gain = np.exp(rng.uniform(np.log(LOOK_GAIN[0]), np.log(LOOK_GAIN[1])))
        cast = gain * rng.uniform(*LOOK_CAST, size=c)
        haze = float(rng.uniform(*LOOK_HAZE))
        raw = relook((imgs[i] * std + mean).numpy(), cast, haze, contrast)
        out[i] = (torch.from_numpy(raw).clamp(0, 255) - mean) / std
    return out


def batch(
    d: dict,
    rng: np.random.Generator,
    size: int,
    patch: int,
    right: float = RIGHT_SHARE,
    soft_share: float = 0.0,
    generalise: float = 0.0,
):
    h, w = d["labels"].shape
    side = patch + 2 * CONTEXT
    prior = degrade(d["labels"] == 1, rng, right=right, generalise=generalise)
    if rng.random() < soft_share:  # a probability prior mixes the classes' start vectors
        p = soft(prior, rng)
        mix = (1 - p)[..., None] * d["calib"][0] + p[..., None] * d["calib"][1]
        start = torch.from_numpy(mix.transpose(2, 0, 1).astype(np.float32).copy())
    else:
        start = torch.from_numpy(d["calib"][prior.astype(np.int64)].transpose(2, 0, 1).copy())
    img = F.pad(d["img"], (CONTEXT, CONTEXT + patch, CONTEXT, CONTEXT + patch))
    heat = F.pad(start, (CONTEXT, CONTEXT + patch, CONTEXT, CONTEXT + patch))
    labels = np.pad(d["labels"], ((0, patch), (0, patch)), constant_values=IGNORE)
    imgs, heats, targets = [], [], []
    for _ in range(size):
        y = int(rng.integers(0, max(1, h - patch // 2)))
        x = int(rng.integers(0, max(1, d["x_limit"] - patch // 2)))
        imgs.append(img[:, y : y + side, x : x + side])
        heats.append(heat[:, y : y + side, x : x + side])
        t = labels[y : y + patch, x : x + patch].copy()
        t[:, max(0, d["x_limit"] - x) :] = IGNORE  # never learn the right half
        targets.append(torch.from_numpy(t))
    return torch.stack(imgs), torch.stack(heats), torch.stack(targets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--right-share", type=float, default=RIGHT_SHARE, help="steps whose prior is right"
    )
    ap.add_argument(
        "--base", type=Path, default=None, help="start from this model (default: the bundled)"
    )
    ap.add_argument("--looks", type=float, default=0.0, help="share of patches given another look")
    ap.add_argument(
        "--soft-share",
        type=float,
        default=0.0,
        help="steps whose prior is given as probabilities (another tool's soft map)",
    )
    ap.add_argument(
        "--generalise",
        type=float,
        default=0.0,
        help="share of the wrong priors also merged into blocks or simplified (session 45)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_threads()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net, config = load_model(a.base, "cpu")
    config = copy.deepcopy(config)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    data = [scene_data(net, config, sc[name], part) for name, part in TRAIN.items()]
    for p in net.parameters():
        p.requires_grad_(False)
    for p in net.rnn.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(net.rnn.parameters(), lr=a.lr)
    t0, ema = time.perf_counter(), None
    net.train()
    for step in range(1, a.steps + 1):
        d = data[int(rng.integers(len(data)))]
        imgs, heats, targets = batch(
            d, rng, a.batch, a.patch, a.right_share, a.soft_share, a.generalise
        )
        if a.looks > 0:
            imgs = looked(imgs, rng, (np.asarray(config.mean), np.asarray(config.std)), a.looks)
        out = net.rnn(imgs, heats, config.default_iterations)
        out = out[:, :, CONTEXT : CONTEXT + a.patch, CONTEXT : CONTEXT + a.patch]
        loss = F.cross_entropy(out, targets, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.rnn.parameters(), 1.0)
        opt.step()
        value = float(loss.detach())
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if step % 100 == 0:
            log.info("step %d loss %.4f (%.0f s)", step, ema, time.perf_counter() - t0)
    net.eval()
    config.name = "Map Refiner snap (buildings, priors)"
    if "snap" in config.training:  # trained further: keep the first training's record
        config.training["snap_first"] = config.training["snap"]
    config.training["snap"] = {
        "scenes": TRAIN,
        "steps": a.steps,
        "lr": a.lr,
        "batch": a.batch,
        "patch": a.patch,
        "seed": a.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": round(ema or float("nan"), 4),
        "degradations": "shift 0-4 m, drop 20 % of buildings (p 0.5), grow/shrink 0-2 px, "
        f"{100 * a.right_share:.0f} % left right, {100 * a.soft_share:.0f} % given as "
        "probabilities (blurred 0.5-2 px, floor 0-0.15)"
        + (
            f"; {100 * a.generalise:.0f} % of the wrong ones first merged (gaps 1-3 m) or "
            "simplified (0.6-1.8 m)"
            if a.generalise > 0
            else ""
        ),
        "base": str(a.base) if a.base else "the bundled model",
        "looks": (
            f"{100 * a.looks:.0f} % of patches: gain {LOOK_GAIN}, cast {LOOK_CAST}, haze "
            f"{LOOK_HAZE}, contrast {LOOK_CONTRAST}"
            if a.looks > 0
            else None
        ),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(net, config, a.out, overwrite=True)
    log.info("wrote %s", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
