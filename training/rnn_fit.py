"""Fitting the refinement RNN (torch only): the paper's RNN training, CNN frozen.

Defaults follow the paper: random patches, cross-entropy on the map after
T=5 unrolled iterations with shared weights, AdaGrad with learning rate 0.01,
Glorot initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from ..engine.networks.inference import coarse_scores
from ..engine.networks.models import MapRefinerNet, pad_to_stride
from ..engine.progress import Reporter
from .coarse_fit import fingerprint
from .loop import LoopResult, run_loop
from .sampler import PatchSampler
from .tile import IGNORE, LabelSource, TrainingTile


@dataclass
class RnnParams:
    image: Path
    labels: LabelSource
    out: Path
    base_model: Path | None = None  # None: the bundled default model
    steps: int = 3000
    batch_size: int = 8
    patch_size: int = 64
    iterations: int = 5
    lr: float = 0.01
    seed: int = 0
    device: str = "auto"
    class_specific: bool = True
    init: str = "fresh"  # "fresh": new RNN (the paper); "base": continue the base's RNN
    margin: int | None = None  # read only the labelled window + margin (fine-tuning)
    bands: list[int] | None = None
    input_resolution_m: float | None = None
    checkpoint_every: int = 500
    resume: bool = True
    overwrite: bool = False
    name: str | None = None
    max_seconds: float | None = None  # stop early after this long (GPU time budgets)
    allow_large: bool = False  # train on a raster past limits.check_training_size


def coarse_heat(net: MapRefinerNet, image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The frozen CNN's scores over a whole training tile, ``(K, H, W)``."""
    h, w = image.shape[-2:]
    net.coarse.to(device).eval()
    with torch.no_grad():
        x = pad_to_stride(image.unsqueeze(0).to(device))
        return coarse_scores(net.coarse, x)[0, :, :h, :w].cpu()


def fit_rnn(
    net: MapRefinerNet,
    tile: TrainingTile,
    params: RnnParams,
    device: torch.device,
    rep: Reporter,
    ckpt: Path | None,
) -> LoopResult:
    """AdaGrad on random patches of (image, frozen CNN scores, labels)."""
    heat = coarse_heat(net, tile.image, device)
    for p in net.coarse.parameters():
        p.requires_grad_(False)
    rnn = net.rnn.to(device)
    context = 2 * (params.iterations + 1)
    sampler = PatchSampler(tile, params.patch_size, context, params.seed, heat=heat)
    opt = torch.optim.Adagrad(rnn.parameters(), lr=params.lr)
    s = params.patch_size

    def loss_at(step: int) -> torch.Tensor:
        img, lab, h = sampler.batch(params.batch_size, step)
        refined = rnn(img.to(device), h.to(device), params.iterations)
        refined = refined[:, :, context : context + s, context : context + s]
        return F.cross_entropy(refined, lab.to(device), ignore_index=IGNORE)

    return run_loop(
        rnn,
        opt,
        loss_at,
        params.steps,
        rep,
        ckpt,
        params.checkpoint_every,
        params.resume,
        {"fingerprint": fingerprint(params)},
        log_every=25,
        max_seconds=params.max_seconds,
    )


def rnn_record(
    params: RnnParams, tile: TrainingTile, res: LoopResult, device: torch.device
) -> dict:
    """What the model card keeps about how the RNN was trained."""
    return {
        "image": Path(params.image).name,
        "labels": Path(params.labels.path).name,
        "labelled_pixels": tile.labelled_pixels,
        "steps": res.steps,
        "batch_size": params.batch_size,
        "patch_size": params.patch_size,
        "iterations": params.iterations,
        "lr": params.lr,
        "seed": params.seed,
        "init": params.init,
        "device": str(device),
        "seconds": round(res.seconds, 1),
        "final_loss": round(res.final_loss, 4),
    }
