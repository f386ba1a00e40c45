"""Training the coarse CNN on plentiful, imprecise labels (the paper's section III).

Random patches, mini-batches of 64 with 64x64 outputs, cross-entropy, SGD with
learning rate 0.01, momentum 0.9 and weight decay 2e-4 by default.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch.nn import functional as F

from ..engine.device import configure_threads, resolve_device
from ..engine.files import check_output_path
from ..engine.model_config import ModelConfig, make_classes
from ..engine.model_io import build_model, save_model
from ..engine.progress import CancelFn, ProgressFn, make_reporter
from ..engine.raster_io import open_raster
from .checkpoint import checkpoint_path
from .data import IGNORE, LabelSource, band_statistics, load_training_tile
from .loop import run_loop
from .sampler import PatchSampler

log = logging.getLogger(__name__)


@dataclass
class CoarseParams:
    image: Path
    labels: LabelSource
    out: Path
    class_names: List[str] = field(default_factory=lambda: ["background", "building"])
    ground_resolution_m: float = 1.0
    bands: Optional[List[int]] = None
    input_resolution_m: Optional[float] = None
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
    ignore_mask: Optional[np.ndarray] = None  # image grid; True = do not learn from this pixel


@dataclass
class TrainResult:
    model: Path
    steps: int
    final_loss: float
    seconds: float
    device: str
    history: List[float]
    resumed_from: int = 0


def _fingerprint(params: object) -> str:
    d = {k: str(v) for k, v in asdict(params).items()
         if k not in ("resume", "overwrite", "ignore_mask", "steps", "checkpoint_every", "device")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def train_coarse(params: CoarseParams, progress: Optional[ProgressFn] = None,
                 is_cancelled: Optional[CancelFn] = None) -> TrainResult:
    """Train the coarse FCN and save a model whose RNN is the identity (no refinement yet)."""
    rep = make_reporter(progress, is_cancelled)
    out = Path(params.out)
    check_output_path(out, [params.image, params.labels.path], params.overwrite)
    configure_threads()
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    ds = open_raster(params.image)
    bands = params.bands or list(range(1, min(3, ds.RasterCount) + 1))
    mean, std = band_statistics(params.image, bands)
    config = ModelConfig(classes=make_classes(params.class_names), bands=bands,
                         band_names=[f"band {b}" for b in bands], mean=mean, std=std,
                         ground_resolution_m=params.ground_resolution_m, name=params.name)
    rep_load = rep.sub(0.0, 0.05)
    tile = load_training_tile(params.image, params.labels, config, bands,
                              params.input_resolution_m, extra_ignore=params.ignore_mask)
    rep_load.report(1.0)
    net = build_model(config)
    coarse = net.coarse.to(device)
    sampler = PatchSampler(tile, params.out_size, params.context, params.seed)
    opt = torch.optim.SGD(coarse.parameters(), lr=params.lr, momentum=params.momentum,
                          weight_decay=params.weight_decay)
    c, s = params.context, params.out_size

    def loss_at(step: int) -> torch.Tensor:
        img, lab, _ = sampler.batch(params.batch_size, step)
        logits = coarse(img.to(device))[:, :, c:c + s, c:c + s]
        return F.cross_entropy(logits, lab.to(device), ignore_index=IGNORE)

    ckpt = checkpoint_path(out)
    res = run_loop(coarse, opt, loss_at, params.steps, rep.sub(0.05, 1.0), ckpt,
                   params.checkpoint_every, params.resume, {"fingerprint": _fingerprint(params)})
    # Until an RNN is trained the refinement is the identity: zero update.
    with torch.no_grad():
        net.rnn.mlp_out.weight.zero_()
        net.rnn.mlp_out.bias.zero_()
    config.default_iterations = 0
    config.training = {"coarse": {
        "image": Path(params.image).name, "labels": Path(params.labels.path).name,
        "steps": params.steps, "batch_size": params.batch_size, "out_size": params.out_size,
        "lr": params.lr, "momentum": params.momentum, "weight_decay": params.weight_decay,
        "seed": params.seed, "device": str(device), "seconds": round(res.seconds, 1),
        "final_loss": round(res.final_loss, 4)}, "rnn": None}
    save_model(net.cpu(), config, out, overwrite=params.overwrite)
    ckpt.unlink(missing_ok=True)
    return TrainResult(out, params.steps, res.final_loss, res.seconds, str(device),
                       res.history, res.resumed_from)
