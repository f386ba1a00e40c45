"""The shared optimisation loop: steps, loss tracking, checkpoints, progress, cancel."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from ..engine.device import denormals_flushed
from ..engine.progress import Reporter
from .checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
T = TypeVar("T")
_INIT_LOCK = threading.Lock()


def seeded_build(seed: int, build: Callable[[], T]) -> T:
    """``build()`` (random initial weights) right after seeding torch's global generator.

    Under a lock: QGIS runs jobs in threads, and another job drawing from the
    global generator between the seed and the draws would change the weights.
    """
    with _INIT_LOCK:
        torch.manual_seed(seed)
        return build()


@dataclass
class LoopResult:
    steps: int
    final_loss: float
    seconds: float
    history: list[float]
    resumed_from: int = 0


def run_loop(
    module: nn.Module,
    opt: torch.optim.Optimizer,
    loss_at: Callable[[int], torch.Tensor],
    steps: int,
    rep: Reporter,
    ckpt: Path | None,
    checkpoint_every: int,
    resume: bool,
    meta: dict[str, Any],
    log_every: int = 50,
    max_seconds: float | None = None,
) -> LoopResult:
    """Run ``steps`` optimiser steps of ``loss_at(step)``, resuming from ``ckpt``.

    With ``max_seconds``, stop early once that much time has passed; the
    result says how many steps were really made.
    """
    start = 0
    if ckpt is not None and resume:
        info = load_checkpoint(ckpt, module, opt, meta.get("fingerprint"))
        if info is not None:
            start = int(info["step"])
            log.info("resuming from step %d of %s", start, ckpt.name)
    t0 = time.perf_counter()
    history: list[float] = []
    ema = None
    module.train()
    done = start
    with denormals_flushed():  # see engine/device.py: insurance against saturated fits
        for step in range(start, steps):
            rep.check()
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                log.info("time budget of %.0f s reached after %d steps", max_seconds, step)
                break
            loss = loss_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if (step + 1) % log_every == 0 or step + 1 == steps:
                history.append(ema)
                log.info("step %d/%d  loss %.4f (avg %.4f)", step + 1, steps, value, ema)
            if (
                ckpt is not None
                and checkpoint_every
                and (step + 1) % checkpoint_every == 0
                and step + 1 < steps
            ):
                save_checkpoint(ckpt, module, opt, step + 1, meta)
            rep.report((step + 1 - start) / max(1, steps - start))
            done = step + 1
    module.eval()
    if history == [] and ema is not None:
        history.append(ema)
    return LoopResult(
        done,
        float(ema if ema is not None else float("nan")),
        time.perf_counter() - t0,
        history,
        start,
    )
