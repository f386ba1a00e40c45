"""The drawn labels a fit trusts: each polygon's interior, without a band along its outline.

A cartographer clicks a polygon's corners at a working zoom; its outline lies within a
metre or so of the object's edge, on either side. The pixels near the outline are the
ones the hand may have got wrong, so the fit can leave them out (FitParams.edge_band_m);
what is kept in the refined map is still the whole polygon (engine/labels/kept.py).
"""

from __future__ import annotations

import numpy as np

from ..tile import IGNORE


def interior(labels: np.ndarray, band_px: int, features: np.ndarray) -> np.ndarray:
    """``labels`` (IGNORE where nothing is drawn) without the pixels within ``band_px`` of a
    pixel of another label (another class, or nothing drawn); outside the array counts as
    the edge's own label. A polygon (``features``: its number per pixel, -1 none) with no
    pixel that far inside keeps all of its pixels."""
    if band_px <= 0:
        return labels
    out = labels.copy()
    for c in np.unique(labels):
        if c == IGNORE:
            continue
        m = labels == c
        out[m & ~_all_within(m, band_px)] = IGNORE
    drawn = features >= 0
    ids = features[drawn]
    if not ids.size:
        return out
    n = int(ids.max()) + 1
    had = np.bincount(features[drawn & (labels != IGNORE)], minlength=n)
    left = np.bincount(features[drawn & (out != IGNORE)], minlength=n)
    gone = np.flatnonzero((had > 0) & (left == 0))
    if gone.size:
        back = np.isin(features, gone)
        out[back] = labels[back]
    return out


def _all_within(m: np.ndarray, r: int) -> np.ndarray:
    """True where every pixel of the (2r+1)-square around is in ``m`` (separable: rows,
    then columns)."""
    return _all_along(_all_along(m, r, 0), r, 1)


def _all_along(m: np.ndarray, r: int, axis: int) -> np.ndarray:
    k = 2 * r + 1
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r + 1, r)
    s = np.pad(m, pad, mode="edge").astype(np.int32)
    s[(slice(None),) * axis + (0,)] = 0  # the cumulative sum starts from nothing
    s = s.cumsum(axis=axis)
    hi = np.take(s, np.arange(k, s.shape[axis]), axis=axis)
    lo = np.take(s, np.arange(0, s.shape[axis] - k), axis=axis)
    return (hi - lo) == k
