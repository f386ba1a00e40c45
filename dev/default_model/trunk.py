"""Retrain the whole bundled model (the CNN's trunk as well as its head, and the RNN)
on varied imagery, with the augmentation a new sensor needs.

``multiscene.py`` trains only the CNN's last layers and the RNN on top of a trunk
(conv1-3) learnt on Xiamen alone, and precomputes that trunk once per colour copy.
Session 8 found (docs/results_bundled_recipes.md) that per-image normalisation helps a
sensor left out of the training (+10 to +12 building IoU) but underfits on that frozen
trunk: this script trains every layer, so the trunk can learn colours and textures
from every scene, each patch augmented on the fly:

* geometry: a quarter turn and a flip (on ``--turn-share`` of the patches: they hide
  the sun's direction, which Austin's shadows all share), and a scale change of 0.7-1.4
  (the same roof seen at another ground resolution, as a sensor resampled to the model
  grid shows it);
* radiometry: per-band gain, shift and contrast (multiscene.jittered, at
  ``--jitter``), a blur of random width and sensor noise, each on part of the patches;
  with ``--restyle P`` (session 25), P of the patches first recoloured as another
  sensor would show the scene: the scene's band means and spreads replaced by ones drawn
  over the range real sensors give on the model grid (RESTYLE_MEAN, RESTYLE_STD), so a
  patch of Austin may come out as bright and warm as Kampala's drone mosaic (band means
  159/134/100, 1.7 spreads above the training mean: beyond the jitter's +-0.45);
* class balance: half the patches centred on a building pixel, half on background;
* hard examples (``--hard-from MODEL``): a share of the patches (``--hard-share``)
  centred on a pixel that MODEL's refined map gets wrong (session 11: the session-9
  candidate called leafless tree canopy building on austin_enh, a few hundred pixels
  among 60 000 that plain class-balanced draws rarely centre on).

Losses: cross-entropy on the map after the RNN's iterations (as the paper trains the
RNN) plus ``--coarse-weight`` times cross-entropy on the CNN's own map, which keeps
the coarse heat maps a classifier (the calibrated prior start, the coarse map layer
and the uncertainty read them). Imprecise labels (Xiamen's OpenStreetMap mask,
``--osm``) train the CNN's map only, never the RNN, as in the paper.

Data: the left halves of the accurately labelled scenes (dev/corrections/scenes.py;
``austin_enh`` whole, ``austin_dev`` never) and, with ``--osm``, Xiamen. Scored by
``multiscene score`` on the right halves.

    python -m map_refiner.dev.default_model.trunk --out M.safetensors \
        --base out/multiscene/old_default.safetensors --normalisation image --osm
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from osgeo import gdal

from ...engine.device import configure_threads
from ...engine.labels.classes import IGNORE
from ...engine.modelfile.io import load_model, save_model
from ...engine.networks.inference import infer
from ...engine.networks.models import MapRefinerNet
from ...training.data import load_training_tile
from ...training.tile import LabelSource
from ..corrections.scenes import scenes
from .multiscene import FULL_WEIGHT_PX, KEPT_OUT, ROOT, WHOLE, jittered, left_half_tile
from .soup import model_inputs

gdal.UseExceptions()
log = logging.getLogger(__name__)
#: Output pixels a patch is scored on (model grid).
OUT = 64
#: Context around them for the RNN: 2 px per iteration, plus 2.
RNN_CTX = 12
#: Context the CNN needs around the RNN's input (its receptive radius is 36 px).
CNN_CTX = 36
#: The patch the CNN reads: a multiple of its stride 4.
SIZE = OUT + 2 * (RNN_CTX + CNN_CTX)


@dataclass
class Source:
    """One scene on the model grid and where each class is, for balanced patches."""

    name: str
    image: torch.Tensor  # (C, H, W), normalised and zero-padded by SIZE on every side
    labels: torch.Tensor  # (H, W) uint8, IGNORE-padded the same way
    where: dict[int, np.ndarray]  # class -> flat indices (unpadded grid) of its pixels
    width: int
    accurate: bool  # False: imprecise labels, train the CNN's map only
    weight: float
    # the scene's band means and spreads in normalised units (for --restyle)
    band_mean: torch.Tensor
    band_std: torch.Tensor
    wrong: np.ndarray | None = None  # flat indices a mining model gets wrong

    def mine(self, net: MapRefinerNet, iterations: int, window: int = 512) -> int:
        """Record the labelled pixels ``net``'s refined map gets wrong; their count."""
        margin = CNN_CTX + RNN_CTX + 4
        img = self.image[:, SIZE:-SIZE, SIZE:-SIZE]
        lab = self.labels[SIZE:-SIZE, SIZE:-SIZE]
        h, w = lab.shape
        pred = torch.zeros((h, w), dtype=torch.uint8)
        for y in range(0, h, window):
            for x in range(0, w, window):
                y0, x0 = max(0, y - margin), max(0, x - margin)
                y1, x1 = min(h, y + window + margin), min(w, x + window + margin)
                out = infer(net, img[:, y0:y1, x0:x1], iterations).argmax(0)
                yy, xx = min(h, y + window), min(w, x + window)
                pred[y:yy, x:xx] = out[y - y0 : yy - y0, x - x0 : xx - x0].to(torch.uint8)
        wrong = (lab != IGNORE) & (pred != lab)
        self.wrong = np.flatnonzero(wrong.flatten().numpy()).astype(np.int64)
        return len(self.wrong)

    @classmethod
    def of(cls, name: str, image, labels, accurate: bool, weight: float) -> Source:
        h, w = labels.shape
        flat = labels.flatten().numpy()
        where = {c: np.flatnonzero(flat == c).astype(np.int64) for c in (0, 1)}
        where = {c: v for c, v in where.items() if len(v)}
        valid = (image != 0).any(0)  # nodata reads as the training mean: 0
        pixels = image[:, valid] if bool(valid.any()) else image.flatten(1)
        return cls(
            name,
            F.pad(image, (SIZE,) * 4),
            F.pad(labels, (SIZE,) * 4, value=IGNORE),
            where,
            w,
            accurate,
            weight,
            band_mean=pixels.mean(1),
            band_std=pixels.std(1).clamp_min(1e-3),
        )

    def patch(
        self, rng: np.random.Generator, span: int, hard: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``span``-pixel crop centred on a pixel of a class drawn at even odds, or
        (``hard``, when mined) on a pixel the mining model got wrong."""
        if hard and self.wrong is not None and len(self.wrong):
            idx = self.wrong[int(rng.integers(len(self.wrong)))]
        else:
            c = list(self.where)[int(rng.integers(len(self.where)))]
            idx = self.where[c][int(rng.integers(len(self.where[c])))]
        y, x = divmod(int(idx), self.width)
        y0, x0 = y + SIZE - span // 2, x + SIZE - span // 2
        return (
            self.image[:, y0 : y0 + span, x0 : x0 + span],
            self.labels[y0 : y0 + span, x0 : x0 + span],
        )


#: --restyle's target band means on the raw 8-bit scale: an overall brightness drawn
#: from the first range, each band scaled by a factor from the second (a colour cast);
#: the shared scenes' means run from 80 (Xiamen) to 159 (Kampala's red band).
RESTYLE_MEAN = ((60.0, 175.0), (0.75, 1.25))
#: --restyle's target band spreads (raw standard deviations), drawn the same way:
#: haze and low sun give 20, a contrasty drone mosaic 65.
RESTYLE_STD = ((20.0, 65.0), (0.85, 1.15))


def restyled(
    img: torch.Tensor,
    src: Source,
    rng: np.random.Generator,
    norm: tuple[np.ndarray, np.ndarray],
) -> torch.Tensor:
    """``img`` (a patch of ``src``, normalised by ``norm``: the model's raw band means
    and spreads) as a sensor with other band statistics would show the scene: the
    scene's means and spreads mapped onto ones drawn from RESTYLE_MEAN and RESTYLE_STD."""
    c = img.shape[0]
    (lo, hi), (flo, fhi) = RESTYLE_MEAN
    mean_raw = rng.uniform(lo, hi) * rng.uniform(flo, fhi, size=c)
    (lo, hi), (flo, fhi) = RESTYLE_STD
    std_raw = rng.uniform(lo, hi) * rng.uniform(flo, fhi, size=c)
    model_mean, model_std = norm
    t = torch.tensor((mean_raw - model_mean[:c]) / model_std[:c], dtype=img.dtype)
    u = torch.tensor(std_raw / model_std[:c], dtype=img.dtype)
    m, s = src.band_mean[:, None, None], src.band_std[:, None, None]
    return (img - m) / s * u[:, None, None] + t[:, None, None]


def decoloured(
    img: torch.Tensor, rng: np.random.Generator, grey: float, shuffle: float
) -> torch.Tensor:
    """``img`` with its colour made useless as a cue, on part of the patches (session 29):
    with probability ``grey`` every band becomes the bands' mean (a grey patch), else with
    probability ``shuffle`` the bands come in a random order. The network must then find
    roofs by shape and texture, which a new sensor changes less than colour."""
    if grey > 0 and rng.random() < grey:
        return img.mean(0, keepdim=True).expand_as(img).contiguous()
    if shuffle > 0 and rng.random() < shuffle:
        return img[torch.as_tensor(rng.permutation(img.shape[0]))]
    return img


def augmented(
    src: Source,
    rng: np.random.Generator,
    jitter: float,
    scale: tuple[float, float],
    hard_share: float = 0.0,
    turn_share: float = 1.0,
    restyle: float = 0.0,
    norm: tuple[np.ndarray, np.ndarray] | None = None,
    grey: float = 0.0,
    shuffle: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training patch of ``SIZE`` pixels with its labels, augmented (``turn_share``:
    the share of patches given a random quarter turn and flip; ``restyle``: the share
    recoloured by ``restyled``, which needs ``norm``; ``grey`` and ``shuffle``: the shares
    passed through ``decoloured``)."""
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    span = min(2 * SIZE, max(8, int(round(SIZE / s))))
    hard = hard_share > 0 and rng.random() < hard_share
    img, lab = src.patch(rng, span, hard)
    if span != SIZE:
        img = F.interpolate(
            img[None], size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True
        )[0]
        lab = F.interpolate(lab[None, None].float(), size=(SIZE, SIZE), mode="nearest")[0, 0]
        lab = lab.to(torch.uint8)
    if turn_share >= 1 or rng.random() < turn_share:  # (1: the stream of earlier runs)
        k = int(rng.integers(4))
        img, lab = torch.rot90(img, k, (1, 2)), torch.rot90(lab, k, (0, 1))
        if rng.integers(2):
            img, lab = img.flip(2), lab.flip(1)
    if restyle > 0 and norm is not None and rng.random() < restyle:
        img = restyled(img, src, rng, norm)
    img = decoloured(img, rng, grey, shuffle)
    img = jittered(img.contiguous(), rng, blur=False, strength=jitter)
    if rng.random() < 0.3:
        sigma = float(rng.uniform(0.4, 1.5))
        r = 3
        g = torch.exp(-(torch.arange(-r, r + 1, dtype=img.dtype) ** 2) / (2 * sigma**2))
        g = g / g.sum()
        c = img.shape[0]
        img = F.pad(img[None], (r, r, r, r), mode="replicate")
        img = F.conv2d(img, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        img = F.conv2d(img, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]
    if rng.random() < 0.3:
        gen = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
        img = img + float(rng.uniform(0.02, 0.1)) * torch.randn(img.shape, generator=gen)
    return img, lab


def losses(
    net: MapRefinerNet, img: torch.Tensor, lab: torch.Tensor, accurate: torch.Tensor, iterations
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the refined map (accurate patches) and of the CNN's map (all),
    on the centre ``OUT`` pixels."""
    heat = net.coarse(img)
    a, b = CNN_CTX, SIZE - CNN_CTX
    inner = heat[:, :, a:b, a:b]
    o0, o1 = CNN_CTX + RNN_CTX, CNN_CTX + RNN_CTX + OUT
    target = lab[:, o0:o1, o0:o1].long()
    coarse = F.cross_entropy(heat[:, :, o0:o1, o0:o1], target, ignore_index=IGNORE)
    if not bool(accurate.any()):
        return coarse, torch.zeros(())
    sel = accurate.nonzero().flatten()
    refined = net.rnn(img[sel, :, a:b, a:b], inner[sel], iterations)
    fine = F.cross_entropy(
        refined[:, :, RNN_CTX : RNN_CTX + OUT, RNN_CTX : RNN_CTX + OUT],
        target[sel],
        ignore_index=IGNORE,
    )
    return coarse, fine


def load_sources(data: Path, config, leave_out: list[str], osm: bool) -> list[Source]:
    work = ROOT / "out" / "multiscene"
    every = scenes(data, work / "data")
    unknown = sorted(set(leave_out) - set(every))
    if unknown:
        raise SystemExit(f"no scene named {', '.join(unknown)}; the scenes: {', '.join(every)}")
    out = []
    for name, scene in every.items():
        if name in KEPT_OUT + tuple(leave_out):
            continue
        tile = left_half_tile(scene.image, scene.reference, config, whole=name in WHOLE)
        weight = min(1.0, tile.labelled_pixels / FULL_WEIGHT_PX)
        out.append(Source.of(name, tile.image, tile.labels, True, weight))
        log.info("%s: %d labelled model pixels", name, tile.labelled_pixels)
    if osm:
        x = data / "xiamen"
        tile = load_training_tile(
            x / "xiamen_rgb.tif",
            LabelSource(x / "xiamen_osm_buildings_mask.tif", value_map={"0": 0, "1": 1}),
            config,
            allow_large=True,
        )
        out.append(Source.of("xiamen_osm", tile.image, tile.labels, False, 1.0))
        log.info("xiamen_osm: %d labelled model pixels", tile.labelled_pixels)
    return out


def train(a: argparse.Namespace) -> dict:
    configure_threads()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net, config = load_model(a.base, "cpu")
    config = copy.deepcopy(config)
    config.normalisation = a.normalisation
    leave = [n for n in a.leave_out.split(",") if n]
    sources = load_sources(a.data, config, leave, a.osm)
    mined: dict[str, int] = {}
    if a.hard_from is not None:
        miner, miner_config = load_model(a.hard_from, "cpu")
        if model_inputs(miner_config) != model_inputs(config):
            raise SystemExit(
                "--hard-from needs a model with the same classes, grid and input normalisation"
            )
        miner.eval()
        for s in sources:
            if s.accurate:
                mined[s.name] = s.mine(miner, config.default_iterations)
                log.info("%s: %d pixels the mining model gets wrong", s.name, mined[s.name])
        del miner
    scale = dict(w.split("=") for w in a.weigh.split(",") if w)
    unknown = sorted(set(scale) - {s.name for s in sources})
    if unknown:
        raise SystemExit(f"--weigh names no training scene: {', '.join(unknown)}")
    odds = np.array([s.weight * float(scale.get(s.name, 1.0)) for s in sources])
    odds /= odds.sum()
    c = net.coarse
    trunk = [p for m in (c.conv1, c.conv2, c.conv3) for p in m.parameters()]
    rest = [p for p in net.parameters() if all(p is not q for q in trunk)]
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(
        [{"params": trunk, "lr": a.lr * a.trunk_lr_scale}, {"params": rest, "lr": a.lr}]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / a.steps))
    )
    norm = (np.asarray(config.mean, np.float64), np.asarray(config.std, np.float64))
    if a.restyle > 0 and config.normalisation != "model":
        raise SystemExit("--restyle recolours patches on the model's fixed normalisation")
    t0, history = time.perf_counter(), []
    net.train()
    for step in range(1, a.steps + 1):
        imgs, labs, acc = [], [], []
        for _ in range(a.batch):
            src = sources[int(rng.choice(len(sources), p=odds))]
            img, lab = augmented(
                src,
                rng,
                a.jitter,
                (a.scale_min, a.scale_max),
                a.hard_share if mined else 0.0,
                a.turn_share,
                a.restyle,
                norm,
                a.grey,
                a.band_shuffle,
            )
            imgs.append(img)
            labs.append(lab)
            acc.append(src.accurate)
        coarse, fine = losses(
            net, torch.stack(imgs), torch.stack(labs), torch.tensor(acc), config.default_iterations
        )
        loss = fine + a.coarse_weight * coarse
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append((coarse.item(), fine.item()))
        if step % 50 == 0:
            h = np.array(history[-50:])
            print(
                f"step {step} coarse {h[:, 0].mean():.4f} refined {h[:, 1].mean():.4f} "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        if a.checkpoint and step % 500 == 0:
            save_model(
                net, config, a.out.with_name(a.out.stem + f"_s{step}.safetensors"), overwrite=True
            )
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    h = np.array(history[-100:])
    record = {
        "what": "every layer (CNN trunk, head, RNN) on the left halves of the accurately "
        "labelled scenes"
        + (" and Xiamen's OpenStreetMap mask (CNN map only)" if a.osm else "")
        + ", patches augmented on the fly (dev/default_model/trunk.py)",
        "scenes": {s.name: round(float(w), 3) for s, w in zip(sources, odds)},
        "whole": [s.name for s in sources if s.name in WHOLE],
        "left_out": list(KEPT_OUT) + leave,
        "steps": a.steps,
        "batch": a.batch,
        "patch": f"{OUT} px scored, {SIZE} px read",
        "optimiser": f"Adam lr {a.lr} (trunk x{a.trunk_lr_scale}), 100-step warm-up, cosine",
        "coarse_weight": a.coarse_weight,
        "augmentation": f"quarter turns and flips on {100 * a.turn_share:.0f} %, "
        f"scale {a.scale_min}-{a.scale_max}, colour jitter {a.jitter}, blur and noise on "
        "30 % each, half the patches on buildings"
        + (
            f", {100 * a.restyle:.0f} % recoloured as another sensor (band means "
            f"{RESTYLE_MEAN}, spreads {RESTYLE_STD})"
            if a.restyle > 0
            else ""
        )
        + (f", {100 * a.grey:.0f} % grey" if a.grey > 0 else "")
        + (f", {100 * a.band_shuffle:.0f} % of the rest bands shuffled" if a.band_shuffle else ""),
        "hard_examples": (
            {"from": str(a.hard_from), "share": a.hard_share, "wrong_pixels": mined}
            if mined
            else None
        ),
        "seed": a.seed,
        "base": str(a.base) if a.base else "the bundled model",
        "normalisation": a.normalisation,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_last_100": {
            "coarse": round(float(h[:, 0].mean()), 4),
            "refined": round(float(h[:, 1].mean()), 4),
        },
        "device": "cpu",
    }
    config.training["trunk"] = record
    config.name = "Map Refiner default (buildings, several scenes)"
    save_model(net, config, a.out, overwrite=True)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--base", type=Path, default=None, help="starting model (default: bundled)")
    ap.add_argument("--normalisation", choices=("model", "image"), default="image")
    ap.add_argument("--leave-out", default="")
    ap.add_argument("--osm", action="store_true", help="Xiamen's OSM mask for the CNN's map")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--trunk-lr-scale", type=float, default=0.3)
    ap.add_argument("--coarse-weight", type=float, default=0.5)
    ap.add_argument("--jitter", type=float, default=1.5)
    ap.add_argument("--scale-min", type=float, default=0.7)
    ap.add_argument("--scale-max", type=float, default=1.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--turn-share",
        type=float,
        default=1.0,
        help="share of patches turned and flipped (0: the sun's direction always kept)",
    )
    ap.add_argument(
        "--restyle",
        type=float,
        default=0.0,
        help="share of patches recoloured as another sensor would show the scene",
    )
    ap.add_argument(
        "--grey", type=float, default=0.0, help="share of patches turned grey (bands' mean)"
    )
    ap.add_argument(
        "--band-shuffle",
        type=float,
        default=0.0,
        help="share of the other patches whose bands come in a random order",
    )
    ap.add_argument("--checkpoint", action="store_true", help="save every 500 steps")
    ap.add_argument(
        "--hard-from",
        type=Path,
        default=None,
        help="mine the pixels this model's refined map gets wrong on the training halves",
    )
    ap.add_argument(
        "--weigh", default="", help="NAME=FACTOR,...: draw these scenes FACTOR times as often"
    )
    ap.add_argument(
        "--hard-share", type=float, default=0.25, help="share of patches centred on them"
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(train(a)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
