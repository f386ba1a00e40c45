"""Fitting a refinement module on given heat maps (torch only, no GDAL).

The same procedure as :func:`training.rnn_fit.fit_rnn` (random patches with
context, cross-entropy after T unrolled iterations, AdaGrad, deterministic
batches per (seed, step)), but the coarse heat maps are given instead of
computed by a CNN: the experiment precomputes the frozen CNN's scores once,
and the three-class run feeds degraded reference maps. Training runs in
segments so that a callback can score the module between them (learning
curves, the overfitting check of the non-recurrent variant).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ...engine.progress import make_reporter
from ...training.loop import run_loop
from ...training.sampler import PatchSampler
from ...training.tile import IGNORE, TrainingTile

log = logging.getLogger(__name__)
SegmentFn = Callable[[int], None]


@dataclass
class FitSpec:
    """How every learned row of the table is trained (same for all, so rows compare)."""

    steps: int = 1500
    batch_size: int = 16
    patch_size: int = 64
    iterations: int = 5
    lr: float = 0.01
    seed: int = 0
    eval_every: int = 0  # 0: no learning-curve points


@dataclass
class FitOutcome:
    steps: int
    seconds: float
    final_loss: float
    loss_history: list[float]


def fit_refiner(
    refiner: nn.Module,
    image: torch.Tensor,
    heat: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor,
    spec: FitSpec,
    device: torch.device,
    on_segment: SegmentFn | None = None,
) -> FitOutcome:
    """AdaGrad on random (image, heat, labels) patches; ``refiner(img, heat, T)`` gives logits.

    ``heat`` may be several coarse maps of the same tile: step ``s`` then draws
    its whole batch from map ``s mod len(heat)``.
    ``on_segment(step)`` is called after every ``spec.eval_every`` steps (and at
    the end) with the module in eval mode.
    """
    torch.manual_seed(spec.seed)
    refiner.to(device)
    context = 2 * (spec.iterations + 1)
    tile = TrainingTile(image, labels)
    heats = [heat] if isinstance(heat, torch.Tensor) else list(heat)
    samplers = [PatchSampler(tile, spec.patch_size, context, spec.seed, heat=h) for h in heats]
    opt = torch.optim.Adagrad(refiner.parameters(), lr=spec.lr)
    s = spec.patch_size

    def loss_at(step: int) -> torch.Tensor:
        img, lab, h = samplers[step % len(samplers)].batch(spec.batch_size, step)
        out = refiner(img.to(device), h.to(device), spec.iterations)
        out = out[:, :, context : context + s, context : context + s]
        return F.cross_entropy(out, lab.to(device), ignore_index=IGNORE)

    segment = spec.eval_every or spec.steps
    done, history, final, seconds = 0, [], float("nan"), 0.0
    while done < spec.steps:
        n = min(segment, spec.steps - done)
        t0 = time.perf_counter()
        res = run_loop(
            refiner,
            opt,
            lambda k, off=done: loss_at(k + off),
            n,
            make_reporter(),
            None,
            0,
            False,
            {},
            log_every=50,
        )
        seconds += time.perf_counter() - t0
        done += n
        history += res.history
        final = res.final_loss
        if on_segment is not None:
            refiner.eval()
            on_segment(done)
    return FitOutcome(done, seconds, final, history)
