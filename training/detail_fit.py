"""Fitting a detail RNN (torch only): the RNN that runs a refine's last iterations on a
grid finer than the model's (refine --detail-iterations; ModelConfig.detail_iterations).

The model's own RNN was trained on its grid (0.6 m for the bundled model); on a grid
2-4x finer its 5 x 5 filters see a quarter to a sixteenth of the ground they learnt
on, and the iterations there sharpen outlines but barely move building IoU
(docs/results_detail.md). A detail RNN has the same shape, starts from the model's
RNN and learns on the fine grid itself: its inputs are what a refine hands it (the
model grid's refined scores upsampled bilinearly, the image read at the fine grid),
its target the accurate reference resampled to that grid, cross-entropy after the
detail iterations, quarter turns, Adam with gradient clipping. The tiles are built
with GDAL by dev/detail/train.py; nothing here reads a file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..engine.errors import MapRefinerError
from ..engine.networks.models import RNN_RADIUS_PER_ITERATION, RefinementRNN
from ..engine.progress import Reporter
from .adam import Adam


@dataclass
class DetailTile:
    """One training area on the fine grid."""

    name: str
    image: torch.Tensor  # (C, h, w), normalised as the model's input
    start: torch.Tensor  # (K, h, w), the refined model-grid scores upsampled onto it
    labels: torch.Tensor  # (h, w) class indices (long)


@dataclass
class DetailFitParams:
    iterations: int = 2  # detail iterations the RNN is trained (and meant) to run
    steps: int = 600
    lr: float = 3e-4
    batch_size: int = 8
    patch_size: int = 96
    clip: float = 1.0
    seed: int = 0
    start_scale: float = 1.0  # each patch's start scores multiplied by a factor drawn
    # log-uniformly in [1/start_scale, start_scale] (1: as they are)


def context(iterations: int) -> int:
    """Fine pixels of context a patch needs around it for ``iterations`` steps."""
    return RNN_RADIUS_PER_ITERATION * (iterations + 1) + 2


def fit_detail_rnn(
    rnn: RefinementRNN, tiles: list[DetailTile], params: DetailFitParams, rep: Reporter
) -> tuple[RefinementRNN, list[float]]:
    """A copy of ``rnn`` trained on ``tiles``; the per-step losses."""
    c, p = context(params.iterations), params.patch_size
    side = p + 2 * c
    usable = [t for t in tiles if min(t.image.shape[-2:]) > side]
    if not usable:
        raise MapRefinerError(
            f"No training area is larger than {side} fine pixels a side; a detail RNN needs "
            "larger accurately labelled areas."
        )
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    out = copy.deepcopy(rnn).train()
    for q in out.parameters():
        q.requires_grad_(True)
    opt = Adam(out.parameters(), lr=params.lr)
    losses: list[float] = []
    for step in range(1, params.steps + 1):
        rep.check()
        imgs, heats, tgts = [], [], []
        for _ in range(params.batch_size):
            t = usable[int(rng.integers(len(usable)))]  # each area as often
            h, w = t.image.shape[-2:]
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            imgs.append(t.image[:, y : y + side, x : x + side])
            heats.append(t.start[:, y : y + side, x : x + side])
            tgts.append(t.labels[y + c : y + c + p, x + c : x + c + p])
        if params.start_scale != 1.0:
            span = np.log(params.start_scale)
            factors = np.exp(rng.uniform(-span, span, size=len(heats)))
            heats = [h * float(f) for h, f in zip(heats, factors)]
        k = int(rng.integers(4))
        batch = [torch.rot90(torch.stack(v), k, (-2, -1)) for v in (imgs, heats, tgts)]
        scores = out(batch[0], batch[1], params.iterations)[:, :, c : c + p, c : c + p]
        loss = F.cross_entropy(scores, batch[2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(out.parameters(), params.clip)
        opt.step()
        losses.append(float(loss.detach()))
        rep.report(step / params.steps)
    out.eval()
    for q in out.parameters():
        q.requires_grad_(False)
    return out, losses
