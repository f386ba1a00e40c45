"""Non-learned refinements the RNN is compared with (numpy/scipy; pydensecrf2 for the CRF).

* :func:`guided_filter`: He et al.'s colour guided filter, applied to each
  class's probability map with the image as guide (edge-aware smoothing).
* :func:`dense_crf`: DeepLab's fully connected CRF (Krahenbuhl & Koltun):
  unaries from the coarse probabilities, Gaussian + bilateral pairwise terms,
  a fixed number of mean-field iterations.
* :func:`best_offsets`: per-class offsets on scores, tuned for mean IoU (the
  cheapest "calibration" a user could do with an accurate tile).
* :func:`grid_search`: try every combination, keep the best on a tuning tile.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from ...engine.scoring.metrics import Scores

Params = dict[str, float]


def box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the ``(2r+1)^2`` window of each pixel (mirrored edges), per 2-D plane."""
    size = [1] * (a.ndim - 2) + [2 * radius + 1, 2 * radius + 1]
    return ndimage.uniform_filter(a.astype(np.float64), size=size, mode="reflect")


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour guided filter: ``guide`` (H, W, 3) in [0, 1], ``src`` (K, H, W) -> (K, H, W).

    Locally the output is an affine function of the guide's colours, so it
    follows the image's edges; ``eps`` (on the guide's variance) sets how
    strong an edge must be to be kept.
    """
    g = np.moveaxis(guide.astype(np.float64), -1, 0)  # (3, H, W)
    mean_g = box_mean(g, radius)
    var = {
        (i, j): box_mean(g[i] * g[j], radius) - mean_g[i] * mean_g[j] + (eps if i == j else 0.0)
        for i in range(3)
        for j in range(i, 3)
    }
    inv, det = _inverse_sym3(var)
    out = np.empty(src.shape, dtype=np.float64)
    for k in range(src.shape[0]):
        p = src[k].astype(np.float64)
        mean_p = box_mean(p, radius)
        cov_gp = box_mean(g * p, radius) - mean_g * mean_p  # (3, H, W)
        a = (
            np.stack(
                [sum(inv[min(i, j), max(i, j)] * cov_gp[j] for j in range(3)) for i in range(3)]
            )
            / det
        )
        b = mean_p - (a * mean_g).sum(axis=0)
        out[k] = (box_mean(a, radius) * g).sum(axis=0) + box_mean(b, radius)
    return out.astype(np.float32)


def _inverse_sym3(
    s: dict[tuple[int, int], np.ndarray],
) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray]:
    """Adjugate (upper triangle) and determinant of per-pixel symmetric 3x3 matrices."""
    a, b, c, d, e, f = s[0, 0], s[0, 1], s[0, 2], s[1, 1], s[1, 2], s[2, 2]
    adj = {
        (0, 0): d * f - e * e,
        (0, 1): c * e - b * f,
        (0, 2): b * e - c * d,
        (1, 1): a * f - c * c,
        (1, 2): b * c - a * e,
        (2, 2): a * d - b * b,
    }
    det = a * adj[0, 0] + b * adj[0, 1] + c * adj[0, 2]
    return adj, det


@dataclass(frozen=True)
class CrfParams:
    """DeepLab's CRF energy.

    ``w_app * exp(-|dp|^2/2a^2 - |dI|^2/2b^2) + w_smooth * exp(-|dp|^2/2g^2)``
    """

    w_app: float
    theta_alpha: float  # pixels
    theta_beta: float  # colour levels (0-255)
    w_smooth: float = 3.0
    theta_gamma: float = 3.0


def dense_crf(
    rgb: np.ndarray, probs: np.ndarray, params: CrfParams, iterations: int = 5
) -> np.ndarray:
    """Mean-field marginals ``(K, H, W)`` of the fully connected CRF over ``rgb``.

    ``rgb`` is (H, W, 3) uint8.
    """
    import pydensecrf.densecrf as dcrf

    k, h, w = probs.shape
    crf = dcrf.DenseCRF2D(w, h, k)
    unary = -np.log(np.clip(probs, 1e-6, 1.0)).reshape(k, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w_smooth)
    crf.addPairwiseBilateral(
        sxy=params.theta_alpha,
        srgb=params.theta_beta,
        rgbim=np.ascontiguousarray(rgb, dtype=np.uint8),
        compat=params.w_app,
    )
    q = crf.inference(iterations)
    return np.asarray(q, dtype=np.float32).reshape(k, h, w)


def offset_grid(num_classes: int, values: Sequence[float]) -> list[np.ndarray]:
    """Offset vectors with class 0 fixed at 0 (only differences matter for the arg-max)."""
    return [
        np.array((0.0,) + combo, dtype=np.float32)
        for combo in itertools.product(values, repeat=num_classes - 1)
    ]


def best_offsets(
    scores: np.ndarray, evaluate: Callable[[np.ndarray], Scores], values: Sequence[float]
) -> tuple[np.ndarray, Scores]:
    """The per-class offset added to ``scores`` (K, H, W) that maximises mean IoU."""
    best, best_s = None, None
    for off in offset_grid(scores.shape[0], values):
        s = evaluate((scores + off[:, None, None]).argmax(axis=0).astype(np.uint8))
        if best_s is None or s.mean_iou > best_s.mean_iou + 1e-12:
            best, best_s = off, s
    return best, best_s


def grid_search(
    grid: Mapping[str, Iterable[object]], evaluate: Callable[[Params], Scores]
) -> tuple[Params, Scores, list[tuple[Params, float]]]:
    """Every combination of ``grid``; the one with the best mean IoU (first on ties)."""
    names = list(grid)
    tried: list[tuple[Params, float]] = []
    best, best_s = None, None
    for combo in itertools.product(*(list(grid[n]) for n in names)):
        params = dict(zip(names, combo))
        s = evaluate(params)
        tried.append((params, s.mean_iou))
        if best_s is None or s.mean_iou > best_s.mean_iou + 1e-12:
            best, best_s = params, s
    return best, best_s, tried
