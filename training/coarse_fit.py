"""Fitting the coarse CNN on plentiful, imprecise labels (the paper's section III).

Random patches, mini-batches of 64 with 64x64 outputs, cross-entropy, SGD with
learning rate 0.01, momentum 0.9 and weight decay 2e-4 by default.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..engine.progress import Reporter
from .loop import LoopResult, run_loop
from .sampler import PatchSampler
from .tile import IGNORE, LabelSource, TrainingTile

log = logging.getLogger(__name__)


@dataclass
class CoarseParams:
    image: Path
    labels: LabelSource
    out: Path
    class_names: list[str] = field(default_factory=lambda: ["background", "building"])
    ground_resolution_m: float = 1.0
    bands: list[int] | None = None
    input_resolution_m: float | None = None
    steps: int = 2000
    batch_size: int = 64
    out_size: int = 64
    context: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 2e-4
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 200
    resume: bool = True
    overwrite: bool = False
    name: str = "coarse CNN"
    max_seconds: float | None = None  # stop early after this long (GPU time budgets)
    allow_large: bool = False  # train on a raster past limits.check_training_size
    ignore_mask: np.ndarray | None = None  # image grid; True = do not learn from this pixel


@dataclass
class TrainResult:
    model: Path
    steps: int
    final_loss: float
    seconds: float
    device: str
    history: list[float]
    resumed_from: int = 0
    note: str = ""  # what the trainer wants said (train_rnn: bands that name no colours)


def _canonical(v: object) -> object:
    """A settings value with every path made absolute and resolved, so that a resume does
    not depend on how a path was spelled (``a.tif``, ``./a.tif``, ``/abs/a.tif``)."""
    if isinstance(v, Path):
        return str(v.resolve())
    if isinstance(v, dict):
        return {k: _canonical(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    return str(v)


def fingerprint(params: object) -> str:
    skip = (
        "resume",
        "overwrite",
        "ignore_mask",
        "steps",
        "checkpoint_every",
        "device",
        "max_seconds",
        "out",
    )
    d = {k: _canonical(v) for k, v in asdict(params).items() if k not in skip}  # type: ignore
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def fit_coarse(
    coarse: torch.nn.Module,
    tile: TrainingTile,
    params: CoarseParams,
    device: torch.device,
    rep: Reporter,
    ckpt: Path | None,
) -> LoopResult:
    """SGD on random patches: loss on the ``out_size`` centre, ``context`` around it."""
    coarse.to(device)
    sampler = PatchSampler(tile, params.out_size, params.context, params.seed)
    opt = torch.optim.SGD(
        coarse.parameters(),
        lr=params.lr,
        momentum=params.momentum,
        weight_decay=params.weight_decay,
    )
    c, s = params.context, params.out_size

    def loss_at(step: int) -> torch.Tensor:
        img, lab, _ = sampler.batch(params.batch_size, step)
        logits = coarse(img.to(device, non_blocking=True))[:, :, c : c + s, c : c + s]
        return F.cross_entropy(logits, lab.to(device, non_blocking=True), ignore_index=IGNORE)

    return run_loop(
        coarse,
        opt,
        loss_at,
        params.steps,
        rep,
        ckpt,
        params.checkpoint_every,
        params.resume,
        {"fingerprint": fingerprint(params)},
        max_seconds=params.max_seconds,
    )


def coarse_record(params: CoarseParams, res: LoopResult, device: torch.device) -> dict:
    """What the model card keeps about how the coarse CNN was trained."""
    return {
        "image": Path(params.image).name,
        "labels": Path(params.labels.path).name,
        "steps": res.steps,
        "batch_size": params.batch_size,
        "out_size": params.out_size,
        "lr": params.lr,
        "momentum": params.momentum,
        "weight_decay": params.weight_decay,
        "seed": params.seed,
        "device": str(device),
        "seconds": round(res.seconds, 1),
        "final_loss": round(res.final_loss, 4),
    }


def identity_rnn(net: torch.nn.Module) -> None:
    """Until an RNN is trained the refinement is the identity: zero update."""
    with torch.no_grad():
        net.rnn.mlp_out.weight.zero_()
        net.rnn.mlp_out.bias.zero_()
