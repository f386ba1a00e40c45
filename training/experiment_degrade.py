"""A seeded, documented stand-in for a coarse classifier: the reference degraded.

No coarse road classifier exists for the three-class run, so its coarse heat
maps are made from the reference the way a CNN trained on imprecise labels
errs (section I of the paper): objects omitted, outlines coarse and fuzzy,
the whole map misregistered by a few pixels. Steps, in order:

1. unlabelled pixels become background; each connected object of a
   foreground class is dropped (made background) with probability ``drop``;
2. one-hot class maps, averaged over ``factor`` x ``factor`` blocks (the
   reference grid downsampled by ``factor``);
3. bilinear resampling of those to the model grid, then a Gaussian blur of
   ``blur`` model pixels;
4. a shift of the whole map by an integer number of model pixels in each
   axis, drawn from ``[-max_shift, max_shift]`` (never 0 in both), edges repeated;
5. probabilities mixed with ``smoothing`` of the uniform distribution and
   turned into log-probabilities divided by ``temperature``: the heat maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np
from scipy import ndimage

from ..engine.label_classes import IGNORE
from ..engine.resample import axis_weights


@dataclass(frozen=True)
class Degradation:
    factor: int = 4
    blur: float = 1.5          # model pixels (Gaussian sigma)
    max_shift: int = 3         # model pixels
    drop: float = 0.25         # chance that each foreground object is omitted
    smoothing: float = 0.1
    temperature: float = 1.0

    def describe(self) -> Dict[str, float]:
        return asdict(self)


def drop_objects(labels: np.ndarray, num_classes: int, drop: float,
                 rng: np.random.Generator) -> Tuple[np.ndarray, int, int]:
    """Labels with whole connected objects of classes 1..K-1 turned into background.

    Returns the new labels, the number of objects and how many were dropped.
    """
    out = np.where(labels == IGNORE, 0, labels).astype(np.uint8)
    total = dropped = 0
    for c in range(1, num_classes):
        comp, n = ndimage.label(out == c)
        if n == 0:
            continue
        gone = np.flatnonzero(rng.random(n) < drop) + 1
        total, dropped = total + n, dropped + len(gone)
        out[np.isin(comp, gone)] = 0
    return out, total, dropped


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks of ``(..., H, W)`` (edges cropped)."""
    h, w = a.shape[-2] // factor * factor, a.shape[-1] // factor * factor
    a = a[..., :h, :w]
    return a.reshape(a.shape[:-2] + (h // factor, factor, w // factor, factor)).mean(axis=(-3, -1))


def shift_map(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``(..., H, W)`` moved by ``(dy, dx)`` pixels; uncovered pixels repeat the edge."""
    h, w = a.shape[-2:]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return a[..., rows[:, None], cols[None, :]]


def draw_shift(rng: np.random.Generator, max_shift: int) -> Tuple[int, int]:
    if max_shift <= 0:
        return 0, 0
    while True:
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
        if dy or dx:
            return dy, dx


def degrade_reference(labels: np.ndarray, num_classes: int, model_shape: Tuple[int, int],
                      spec: Degradation, seed: int) -> Tuple[np.ndarray, Dict[str, object]]:
    """Coarse heat maps ``(K, h, w)`` on the model grid from reference ``labels`` (H, W).

    Deterministic for a given ``seed``; the second value records what was done.
    """
    rng = np.random.default_rng(seed)
    kept, total, dropped = drop_objects(labels, num_classes, spec.drop, rng)
    onehot = (kept[None] == np.arange(num_classes)[:, None, None]).astype(np.float32)
    coarse = block_mean(onehot, spec.factor)
    ch, cw = coarse.shape[-2:]
    mh, mw = model_shape
    rows = axis_weights(0, mh, mh / ch, 0, ch, ch)
    cols = axis_weights(0, mw, mw / cw, 0, cw, cw)
    probs = rows @ coarse @ cols.T
    probs = ndimage.gaussian_filter(probs, sigma=(0, spec.blur, spec.blur), mode="nearest")
    dy, dx = draw_shift(rng, spec.max_shift)
    probs = shift_map(probs, dy, dx)
    probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-12)
    probs = (1 - spec.smoothing) * probs + spec.smoothing / num_classes
    heat = (np.log(probs) / spec.temperature).astype(np.float32)
    record = {"objects": total, "dropped": dropped, "shift_px": (dy, dx), **spec.describe()}
    return heat, record
