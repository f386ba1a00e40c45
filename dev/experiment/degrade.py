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
4. an irregular misregistration, as in OpenStreetMap: the map is resampled
   through a smooth random displacement field whose x and y components are
   drawn uniformly in ``[-max_shift, max_shift]`` model pixels on a lattice of
   ``warp_cells`` x ``warp_cells`` cells and interpolated bilinearly between
   them (edges repeated). Each object moves by a few pixels in its own
   direction, so a refiner cannot learn one fixed translation;
5. probabilities mixed with ``smoothing`` of the uniform distribution and
   turned into log-probabilities divided by ``temperature``: the heat maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ...engine.labels.classes import IGNORE
from ...engine.refine.resample import axis_weights


@dataclass(frozen=True)
class Degradation:
    factor: int = 4
    blur: float = 1.5  # model pixels (Gaussian sigma)
    max_shift: float = 4.0  # model pixels, per axis
    warp_cells: int = 8  # displacement lattice cells across the tile
    drop: float = 0.25  # chance that each foreground object is omitted
    smoothing: float = 0.1
    temperature: float = 1.0

    def describe(self) -> dict[str, float]:
        return asdict(self)


def drop_objects(
    labels: np.ndarray, num_classes: int, drop: float, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
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


def displacement_field(
    shape: tuple[int, int], max_shift: float, cells: int, rng: np.random.Generator
) -> np.ndarray:
    """``(2, h, w)`` smooth displacements (dy, dx) in pixels.

    Uniform at the knots of a lattice, bilinear between them.
    """
    h, w = shape
    knots = rng.uniform(-max_shift, max_shift, size=(2, cells + 1, cells + 1))
    ys = np.linspace(0, cells, h)
    xs = np.linspace(0, cells, w)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([ndimage.map_coordinates(k, [yy, xx], order=1) for k in knots])


def warp(maps: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``(K, h, w)`` maps moved by ``field``: output pixel p takes the value at p - field(p)."""
    h, w = maps.shape[-2:]
    yy, xx = np.meshgrid(
        np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij"
    )
    coords = [yy - field[0], xx - field[1]]
    return np.stack([ndimage.map_coordinates(m, coords, order=1, mode="nearest") for m in maps])


def degrade_reference(
    labels: np.ndarray, num_classes: int, model_shape: tuple[int, int], spec: Degradation, seed: int
) -> tuple[np.ndarray, dict[str, object]]:
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
    field = displacement_field((mh, mw), spec.max_shift, spec.warp_cells, rng)
    probs = warp(probs, field)
    probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-12)
    probs = (1 - spec.smoothing) * probs + spec.smoothing / num_classes
    heat = (np.log(probs) / spec.temperature).astype(np.float32)
    shift = np.hypot(field[0], field[1])
    record = {
        "objects": total,
        "dropped": dropped,
        "mean_shift_px": round(float(shift.mean()), 2),
        "max_shift_px": round(float(shift.max()), 2),
        **spec.describe(),
    }
    return heat, record
