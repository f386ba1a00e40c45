"""Training the refinement RNN on a small, accurately labelled tile (CNN frozen),
and fine-tuning it on a few correction polygons.

Defaults follow the paper: random patches, cross-entropy on the map after
T=5 unrolled iterations with shared weights, AdaGrad with learning rate 0.01,
Glorot initialisation.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch
from torch.nn import functional as F

from ..engine.device import configure_threads, resolve_device
from ..engine.errors import MapRefinerError
from ..engine.files import check_output_path
from ..engine.model_io import load_model, save_model
from ..engine.models import RefinementRNN
from ..engine.predict import pad_to_stride
from ..engine.progress import CancelFn, ProgressFn, make_reporter
from .checkpoint import checkpoint_path
from .coarse import TrainResult, _fingerprint
from .data import IGNORE, LabelSource, load_training_tile
from .loop import run_loop
from .sampler import PatchSampler

log = logging.getLogger(__name__)


@dataclass
class RnnParams:
    image: Path
    labels: LabelSource
    out: Path
    base_model: Optional[Path] = None   # None: the bundled default model
    steps: int = 3000
    batch_size: int = 8
    patch_size: int = 64
    iterations: int = 5
    lr: float = 0.01
    seed: int = 0
    device: str = "auto"
    class_specific: bool = True
    init: str = "fresh"                 # "fresh": new RNN (the paper); "base": continue the base's RNN
    margin: Optional[int] = None        # read only the labelled window + margin (fine-tuning)
    bands: Optional[List[int]] = None
    input_resolution_m: Optional[float] = None
    checkpoint_every: int = 500
    resume: bool = True
    overwrite: bool = False
    name: Optional[str] = None


def coarse_heat(net, image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The frozen CNN's scores over a whole training tile, ``(K, H, W)``."""
    h, w = image.shape[-2:]
    with torch.no_grad():
        x = pad_to_stride(image.unsqueeze(0).to(device))
        return net.coarse(x)[0, :, :h, :w].cpu()


def train_rnn(params: RnnParams, progress: Optional[ProgressFn] = None,
              is_cancelled: Optional[CancelFn] = None) -> TrainResult:
    """Train (or fine-tune) the RNN of ``base_model`` and save a new model file."""
    rep = make_reporter(progress, is_cancelled)
    out = Path(params.out)
    inputs = [params.image, params.labels.path] + ([params.base_model] if params.base_model else [])
    check_output_path(out, inputs, params.overwrite)
    if params.iterations < 1:
        raise MapRefinerError("Training the RNN needs at least one iteration.")
    configure_threads()
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    net, config = load_model(params.base_model, "cpu")
    config = copy.deepcopy(config)
    tile = load_training_tile(params.image, params.labels, config, params.bands,
                              params.input_resolution_m, margin=params.margin)
    rep.sub(0.0, 0.05).report(1.0)
    net.to(device)
    heat = coarse_heat(net, tile.image, device)
    if params.init == "fresh" or params.class_specific != config.class_specific:
        net.rnn = RefinementRNN(config.in_channels, config.num_classes,
                                class_specific=params.class_specific)
        config.class_specific = params.class_specific
    elif params.init != "base":
        raise MapRefinerError(f"Unknown RNN initialisation {params.init!r}; use 'fresh' or 'base'.")
    rnn = net.rnn.to(device)
    for p in net.coarse.parameters():
        p.requires_grad_(False)
    context = 2 * (params.iterations + 1)
    sampler = PatchSampler(tile, params.patch_size, context, params.seed, heat=heat)
    opt = torch.optim.Adagrad(rnn.parameters(), lr=params.lr)
    s = params.patch_size

    def loss_at(step: int) -> torch.Tensor:
        img, lab, h = sampler.batch(params.batch_size, step)
        refined = rnn(img.to(device), h.to(device), params.iterations)
        refined = refined[:, :, context:context + s, context:context + s]
        return F.cross_entropy(refined, lab.to(device), ignore_index=IGNORE)

    ckpt = checkpoint_path(out)
    res = run_loop(rnn, opt, loss_at, params.steps, rep.sub(0.05, 1.0), ckpt,
                   params.checkpoint_every, params.resume,
                   {"fingerprint": _fingerprint(params)}, log_every=25)
    config.default_iterations = params.iterations
    if params.name:
        config.name = params.name
    record = {"image": Path(params.image).name, "labels": Path(params.labels.path).name,
              "labelled_pixels": tile.labelled_pixels, "steps": params.steps,
              "batch_size": params.batch_size, "patch_size": params.patch_size,
              "iterations": params.iterations, "lr": params.lr, "seed": params.seed,
              "init": params.init, "device": str(device), "seconds": round(res.seconds, 1),
              "final_loss": round(res.final_loss, 4)}
    key = "rnn" if params.init == "fresh" else "finetune"
    history = config.training.get(key) if isinstance(config.training.get(key), list) else []
    config.training[key] = record if key == "rnn" else history + [record]
    save_model(net.cpu(), config, out, overwrite=params.overwrite)
    ckpt.unlink(missing_ok=True)
    return TrainResult(out, params.steps, res.final_loss, res.seconds, str(device),
                       res.history, res.resumed_from)


def finetune(image: Path, labels: LabelSource, out: Path, base_model: Optional[Path] = None,
             steps: int = 150, device: str = "auto", seed: int = 0, overwrite: bool = False,
             progress: Optional[ProgressFn] = None,
             is_cancelled: Optional[CancelFn] = None) -> TrainResult:
    """Fine-tune the RNN on correction polygons: only the window around them is read."""
    params = RnnParams(image=image, labels=labels, out=out, base_model=base_model, steps=steps,
                       device=device, seed=seed, init="base", margin=64, overwrite=overwrite,
                       checkpoint_every=0, resume=False)
    return train_rnn(params, progress, is_cancelled)
