"""Two more ways a coarse map is wrong (session 45; issue 16's "buildings dropped or
merged, outlines simplified or dilated"): neighbouring buildings merged into one block,
and outlines simplified. Raster in, raster out, on any grid (distances in its pixels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..corrections.users import redrawn_mask


def disc(radius_px: int) -> np.ndarray:
    """A disc structuring element of this radius (at least one pixel)."""
    r = max(1, int(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= r * r


def merged(mask: np.ndarray, gap_px: float) -> np.ndarray:
    """Buildings less than ``gap_px`` apart joined into one block, as a generalised map
    draws a row of houses: a morphological closing by half the gap (the image's border
    padded first, so that a building there keeps its edge)."""
    r = max(1, int(round(gap_px / 2)))
    padded = np.pad(mask, r + 1)
    closed = ndimage.binary_closing(padded, structure=disc(r))
    return closed[r + 1 : -(r + 1), r + 1 : -(r + 1)] | mask


def simplified(mask: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Each building's outline simplified by ``tolerance_px`` (Douglas-Peucker, keeping
    every polygon valid: OGR's SimplifyPreserveTopology) and burned again, as a map traced
    at a coarse zoom draws it: the study users' redrawing (users.redrawn_mask) with no
    offset."""
    return redrawn_mask(mask, tolerance_px, 0.0) if mask.any() else mask.copy()
