"""Where a prior map sits on the image: the shift that best lays it over the model's
own map (numpy only; refine_pass.register_prior runs the model on a few windows).

A coarse map the user already has (an OSM or cadastre layer, an older survey) is
often right in shape but shifted as a whole: the imagery it was traced on was
registered differently (OSM keeps databases of such imagery offsets). The model's own
refined map of the image is noisy but unbiased, so the shift that makes the prior
agree best with it, summed over windows across the image, is the prior's offset: on
the shared scenes' references shifted by 1, 2 and 4 m, it came back within one image
pixel (docs/results_prior_snap.md). The prior is then moved by that offset before the
RNN starts from it, and its own outlines, now in place, keep their detail
(prior.keep_prior).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: How far a prior is searched for, in ground metres around where it says it is.
SEARCH_M = 5.0
#: A shift shorter than this (ground metres) is left alone: the RNN snaps what is
#: left within about a model pixel (0.6 m), and the estimate for a right prior was
#: 0.3 m on austin_dev and 0.55 m on rio_wv2 (whose reference or model may itself be
#: off by that much); 0.75 m keeps a margin above both. Set on those scenes.
MIN_SHIFT_M = 0.75
#: A shift must fit the model's map better than none by this share of its agreement,
#: or the prior stays where it is (a guard against noise, not tuned on data).
CLEAR_PEAK = 0.02


@dataclass(frozen=True)
class Offset:
    """A shift of ``(dy, dx)`` image pixels (sub-pixel), its ground length, and
    whether it is applied (long enough, and a real peak inside the search)."""

    dy: float
    dx: float
    metres: float
    applied: bool
    why: str


def agreement(prior: np.ndarray, probs: np.ndarray, valid: np.ndarray, radius: int) -> np.ndarray:
    """``c[dy, dx]`` for ``|dy|, |dx| <= radius`` (index ``radius + d``): how well the
    prior moved by ``(dy, dx)`` pixels agrees with the model's probabilities ``(K, h, w)``:
    the sum over classes of the correlation of the prior's class indicator with the
    class probability, both centred on their mean over valid pixels (zero outside)."""
    h, w = prior.shape
    size = (h + 2 * radius, w + 2 * radius)
    out = np.zeros((2 * radius + 1, 2 * radius + 1))
    covered = valid & (prior >= 0)
    if covered.sum() < 2:  # (covered pixels are valid ones)
        return out
    idx = np.r_[0 : radius + 1, -radius:0]
    for k in range(probs.shape[0]):
        a = np.where(covered, (prior == k).astype(np.float64), 0.0)
        a[covered] -= a[covered].mean()
        b = np.where(valid, probs[k].astype(np.float64), 0.0)
        b[valid] -= b[valid].mean()
        c = np.fft.irfft2(np.conj(np.fft.rfft2(a, s=size)) * np.fft.rfft2(b, s=size), s=size)
        # c[dy, dx] = sum a[y, x] b[y + dy, x + dx]: the prior at (y, x) belongs at (y+dy, x+dx)
        out += np.roll(c[np.ix_(idx, idx)], radius, axis=(0, 1))
    return out


def best_offset(
    surfaces: Sequence[np.ndarray], pixel_m: float, min_shift_m: float = MIN_SHIFT_M
) -> Offset:
    """The peak of the summed agreement surfaces, refined to a fraction of a pixel by a
    parabola through its neighbours; applied only when it lies inside the search and
    is at least ``min_shift_m`` long."""
    if not surfaces:
        return Offset(
            0.0, 0.0, 0.0, False, "left in place: it covers none of the windows looked at"
        )
    c = np.sum(surfaces, axis=0)
    r = (c.shape[0] - 1) // 2
    if not np.isfinite(c).all() or np.ptp(c) <= 0:
        return Offset(
            0.0, 0.0, 0.0, False, "left in place: the model's map gives no evidence of a shift"
        )
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    if iy in (0, 2 * r) or ix in (0, 2 * r):
        return Offset(
            0.0, 0.0, 0.0, False, "left in place: the best fit lies at the edge of the search"
        )

    def vertex(lo: float, mid: float, hi: float) -> float:
        den = lo - 2 * mid + hi
        return 0.0 if den >= 0 else float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))

    if c[iy, ix] - c[r, r] < CLEAR_PEAK * abs(c[iy, ix]):
        return Offset(
            0.0, 0.0, 0.0, False, "left in place: no shift fits the image clearly better than none"
        )
    dy = iy - r + vertex(c[iy - 1, ix], c[iy, ix], c[iy + 1, ix])
    dx = ix - r + vertex(c[iy, ix - 1], c[iy, ix], c[iy, ix + 1])
    metres = float(np.hypot(dy, dx) * pixel_m)
    if metres < min_shift_m:
        return Offset(
            dy,
            dx,
            metres,
            False,
            f"left in place: its {metres:.1f} m offset is within a model pixel",
        )
    return Offset(dy, dx, metres, True, f"moved by {metres:.1f} m to fit the image")
