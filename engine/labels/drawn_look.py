"""What the image looked like under each drawn correction, to burn a polygon only into
the image it was drawn on, not into another one on the same grid.

A fine-tuned model keeps its drawn polygons and burns them into every refine of the
image they were drawn on (kept.py), recognised by its grid. Orthophoto programmes
deliver each year's tiles on the same grid, often under the same file names: a model
fine-tuned on one year's tile would burn its polygons into the next year's, a
demolished roof kept as drawn, and a fine-tune there would learn them again. So the
fine-tune also keeps, for each drawn polygon, a thumbnail of the image under its box
(LOOK_SIDE x LOOK_SIDE block means of the bands the model reads), and a polygon is
burned, or learnt again, only where the image still shows it: every band's thumbnail
correlated at least SAME_LOOK_R with the kept one (a thumbnail with no spread: the
same mean values within FLAT_TOLERANCE of their scale).

Measured on austin_dev (session 51, boxes of 40 x 40 px to 460 x 440 px, 24 samples a
side): a JPEG-compressed copy (quality 30-75), a gamma or gain change with noise, or
the ground shifted by a pixel correlate at 0.93 or more; another image on the grid
(austin_enh) at most 0.28; the ground shifted by 10 px at most 0.72.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from osgeo import gdal

LOOK_SIDE = 8  # block means a side: 64 a band for each polygon
SAME_LOOK_R = 0.8  # the least correlation of every band's block means
FLAT_TOLERANCE = 0.03  # block means with no spread: the most mean difference, of their scale

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 on the image's grid


def thumbnail(ds: gdal.Dataset, box: Box, bands: Sequence[int]) -> list[list[float]]:
    """The block means of ``bands`` (1-based) over the pixel ``box``, band by band (four
    significant digits: about 1 KB of configuration a polygon)."""
    return [[float(f"{v:.4g}") for v in _samples(ds, box, b)] for b in bands]


def looks_alike(
    kept: Sequence[Sequence[float]], ds: gdal.Dataset, box: Box, bands: Sequence[int]
) -> bool:
    """True when ``ds``'s ``bands`` show over ``box`` what the ``kept`` thumbnail shows."""
    if len(kept) != len(bands):
        return False
    for b, old in zip(bands, kept):
        new = _samples(ds, box, b)
        old_a = np.asarray(old, dtype=np.float64)
        if new.shape != old_a.shape or not _alike(old_a, new):
            return False
    return True


def _samples(ds: gdal.Dataset, box: Box, band: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    arr = ds.GetRasterBand(band).ReadAsArray(
        x0,
        y0,
        w,
        h,
        buf_xsize=min(w, LOOK_SIDE),
        buf_ysize=min(h, LOOK_SIDE),
        resample_alg=gdal.GRIORA_Average,
    )
    return np.asarray(arr, dtype=np.float64).ravel()


def _alike(old: np.ndarray, new: np.ndarray) -> bool:
    ok = np.isfinite(old) & np.isfinite(new)
    a, b = old[ok], new[ok]
    if a.size != old.size:  # a value became no data (NaN) or came back
        return False
    scale = max(1.0, float(np.abs(a).max()) if a.size else 1.0)
    sa, sb = float(a.std()), float(b.std())
    if a.size < 4 or sa <= 0.01 * scale or sb <= 0.01 * scale:  # flat: the values themselves
        return float(np.abs(a - b).mean()) <= FLAT_TOLERANCE * scale
    r = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
    return r >= SAME_LOOK_R


def to_config(bands: Sequence[int], looks: dict[int, list[list[float]]]) -> dict[str, Any]:
    return {
        "bands": [int(b) for b in bands],
        "side": LOOK_SIDE,
        "features": {str(f): v for f, v in sorted(looks.items())},
    }


def from_config(d: Any) -> tuple[list[int], dict[int, list[list[float]]]] | None:
    """The bands and each feature's thumbnail kept in a model's configuration; None when
    it has none (a model fine-tuned before session 51) or another sampling."""
    if not isinstance(d, dict) or d.get("side") != LOOK_SIDE:
        return None
    try:
        bands = [int(b) for b in d["bands"]]
        looks = {int(f): [[float(x) for x in band] for band in v] for f, v in d["features"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return bands, looks
