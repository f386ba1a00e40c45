"""What the image looked like under each drawn correction, to burn a polygon only into
the image it was drawn on, not into another one on the same grid.

A fine-tuned model keeps its drawn polygons and burns them into every refine of the
image they were drawn on (kept.py), recognised by its grid. Orthophoto programmes
deliver each year's tiles on the same grid, often under the same file names: a model
fine-tuned on one year's tile would burn its polygons into the next year's, a
demolished roof kept as drawn, and a fine-tune there would learn them again. So the
fine-tune also keeps, for each drawn polygon, a thumbnail of the image under its box
(LOOK_SIDE x LOOK_SIDE block means of the bands the model reads, from at most READ_SIDE
x READ_SIDE pixels of it), and a polygon is
burned, or learnt again, only where the image still shows it: every band's thumbnail
correlated at least SAME_LOOK_R with the kept one, or its values within CLOSE of the
kept ones on average (a box with little texture, or a lossy copy of a small one).

Measured on austin_dev (session 51, `python -m map_refiner.dev.corrections.drawn_look_probe`:
30 polygons, its 25 largest buildings and five background squares of 8-30 px): copies
compressed as JPEG (quality 30 or 75) or given a gamma of 0.6 keep all 30; a gain of 1.3
with noise (sigma 8) 29; the ground shifted by 1, 2 or 4 px 26, 18 and 1 (a polygon
burned metres off its object is no use either); austin_enh's pixels on austin_dev's grid,
or the tile turned half round, none (their mean differences at least 0.109 of the values'
scale, correlations at most 0.46).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from osgeo import gdal

LOOK_SIDE = 8  # block means a side: 64 a band for each polygon
READ_SIDE = 64  # pixels read a side at most (nearest samples of a larger box)
SAME_LOOK_R = 0.8  # the least correlation of every band's block means
CLOSE = 0.05  # block means this near the kept ones on average (of their scale) are alike

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 on the image's grid


def thumbnail(ds: gdal.Dataset, box: Box, bands: Sequence[int]) -> list[list[float | None]]:
    """The block means of ``bands`` (1-based) over the pixel ``box``, band by band (four
    significant digits, about 1 KB of configuration a polygon; None: no data there)."""
    return [
        [float(f"{v:.4g}") if np.isfinite(v) else None for v in _samples(ds, box, b)] for b in bands
    ]


def looks_alike(
    kept: Sequence[Sequence[float | None]], ds: gdal.Dataset, box: Box, bands: Sequence[int]
) -> bool:
    """True when ``ds``'s ``bands`` show over ``box`` what the ``kept`` thumbnail shows."""
    if len(kept) != len(bands):
        return False
    for b, old in zip(bands, kept):
        new = _samples(ds, box, b)
        old_a = np.array([np.nan if v is None else v for v in old], dtype=np.float64)
        if new.shape != old_a.shape or not _alike(old_a, new):
            return False
    return True


def _samples(ds: gdal.Dataset, box: Box, band: int) -> np.ndarray:
    """Means of up to LOOK_SIDE x LOOK_SIDE blocks of the box, from at most READ_SIDE x
    READ_SIDE pixels of it (nearest samples: a polygon over a whole county is not read
    whole); NaN where a block holds no data (NaN)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    bw, bh = min(w, READ_SIDE), min(h, READ_SIDE)
    arr = ds.GetRasterBand(band).ReadAsArray(
        x0, y0, w, h, buf_xsize=bw, buf_ysize=bh, resample_alg=gdal.GRIORA_NearestNeighbour
    )
    arr = np.asarray(arr, dtype=np.float64)
    rows = np.array_split(np.arange(bh), min(bh, LOOK_SIDE))
    cols = np.array_split(np.arange(bw), min(bw, LOOK_SIDE))
    return np.array([arr[np.ix_(r, c)].mean() for r in rows for c in cols])


def _alike(old: np.ndarray, new: np.ndarray) -> bool:
    ok = np.isfinite(old)
    if not np.array_equal(ok, np.isfinite(new)):  # no data appeared or went
        return False
    a, b = old[ok], new[ok]
    if not a.size:
        return True
    scale = max(1.0, float(np.abs(a).max()))
    if float(np.abs(a - b).mean()) <= CLOSE * scale:  # the same values, near enough
        return True
    sa, sb = float(a.std()), float(b.std())
    if a.size < 4 or sa <= 0.01 * scale or sb <= 0.01 * scale:  # flat, and other values
        return False
    r = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
    return r >= SAME_LOOK_R


def to_config(bands: Sequence[int], looks: dict[int, list[list[float | None]]]) -> dict[str, Any]:
    return {
        "bands": [int(b) for b in bands],
        "side": LOOK_SIDE,
        "features": {str(f): v for f, v in sorted(looks.items())},
    }


def from_config(d: Any) -> tuple[list[int], dict[int, list[list[float | None]]]] | None:
    """The bands and each feature's thumbnail kept in a model's configuration; None when
    it has none (a model fine-tuned before session 51) or another sampling."""
    if not isinstance(d, dict) or d.get("side") != LOOK_SIDE:
        return None
    try:
        bands = [int(b) for b in d["bands"]]
        looks = {
            int(f): [[None if x is None else float(x) for x in band] for band in v]
            for f, v in d["features"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return bands, looks
