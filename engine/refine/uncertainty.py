"""Where the model is unsure: per-pixel uncertainty from class probabilities and a
short ranked list of the most uncertain regions, so corrections go where they help.

Uncertainty is in ``[0, 1]``: 0 when one class has probability 1, 1 when the
classes are tied. Regions are built on a grid of square cells (a size a person
can draw in): each cell scores the mean uncertainty of its valid pixels, and
the best cells grow into small groups of neighbouring cells that are nearly as
uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MapRefinerError

KINDS = ("entropy", "margin")


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def entropy(probs: np.ndarray, axis: int = 0) -> np.ndarray:
    """Shannon entropy divided by ``log K``."""
    k = probs.shape[axis]
    if k < 2:
        return np.zeros(np.delete(probs.shape, axis), dtype=np.float32)
    p = np.clip(probs, 1e-12, 1.0)
    h = -(probs * np.log(p)).sum(axis=axis)
    return np.clip(h / np.log(k), 0.0, 1.0).astype(np.float32)


def margin(probs: np.ndarray, axis: int = 0) -> np.ndarray:
    """One minus the gap between the two most probable classes."""
    k = probs.shape[axis]
    if k < 2:
        return np.zeros(np.delete(probs.shape, axis), dtype=np.float32)
    top2 = np.take(np.partition(probs, k - 2, axis=axis), [k - 2, k - 1], axis=axis)
    gap = np.take(top2, 1, axis=axis) - np.take(top2, 0, axis=axis)
    return np.clip(1.0 - gap, 0.0, 1.0).astype(np.float32)


def uncertainty(probs: np.ndarray, kind: str = "entropy", axis: int = 0) -> np.ndarray:
    """``kind`` is ``"entropy"`` or ``"margin"``; ``probs`` sum to 1 along ``axis``."""
    if kind == "entropy":
        return entropy(probs, axis)
    if kind == "margin":
        return margin(probs, axis)
    raise MapRefinerError(f"Unknown uncertainty {kind!r}; use one of {', '.join(KINDS)}.")


@dataclass
class Region:
    """A ranked uncertain region: pixel box ``[x0, x1) x [y0, y1)`` of the array scored."""

    rank: int
    score: float
    x0: int
    y0: int
    x1: int
    y1: int
    cells: int

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0


def cell_scores(unc: np.ndarray, valid: np.ndarray | None, cell: int) -> np.ndarray:
    """Mean uncertainty per ``cell`` x ``cell`` block; NaN where under half is valid."""
    if cell < 1:
        raise MapRefinerError("The region cell size must be at least one pixel.")
    h, w = unc.shape
    gh, gw = -(-h // cell), -(-w // cell)
    vals = np.zeros((gh * cell, gw * cell), dtype=np.float64)
    mask = np.zeros((gh * cell, gw * cell), dtype=np.float64)
    ok = np.isfinite(unc) if valid is None else (valid & np.isfinite(unc))
    vals[:h, :w] = np.where(ok, unc, 0.0)
    mask[:h, :w] = ok
    sums = vals.reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    counts = mask.reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    full = np.zeros((gh * cell, gw * cell))
    full[:h, :w] = 1.0
    areas = full.reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[counts < 0.5 * areas] = np.nan
    return means


def rank_regions(
    unc: np.ndarray,
    valid: np.ndarray | None = None,
    cell: int = 32,
    top: int | None = 10,
    grow: float = 0.8,
    max_cells: int = 4,
    min_score: float = 0.02,
) -> list[Region]:
    """The ``top`` most uncertain regions (all of them with ``top=None``), best first.

    The most uncertain unused cell seeds a region, which takes up to
    ``max_cells - 1`` unused neighbours (8-connected, best first) scoring at
    least ``grow`` times the seed. A region scores the mean of its cells. Regions'
    rectangles never overlap: the cells of a region's rectangle are used up, and a
    region whose rectangle would cross an earlier one is dropped.
    """
    scores = cell_scores(unc, valid, cell)
    h, w = unc.shape
    used = ~np.isfinite(scores)
    order = np.argsort(np.where(used, -np.inf, scores), axis=None)[::-1]
    regions: list[Region] = []
    boxes: list[tuple[int, int, int, int]] = []  # cell rows/columns of each region's rectangle
    for flat in order:
        gy, gx = divmod(int(flat), scores.shape[1])
        if used[gy, gx] or scores[gy, gx] < min_score:
            continue
        members = _grow(scores, used, gy, gx, grow * scores[gy, gx], max_cells)
        ys, xs = zip(*members)
        box = (min(ys), max(ys) + 1, min(xs), max(xs) + 1)
        crosses = any(
            box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in boxes
        )
        used[box[0] : box[1], box[2] : box[3]] = True
        if crosses:
            continue
        boxes.append(box)
        regions.append(
            Region(
                rank=len(regions) + 1,
                score=float(np.mean([scores[m] for m in members])),
                x0=min(xs) * cell,
                y0=min(ys) * cell,
                x1=min(w, (max(xs) + 1) * cell),
                y1=min(h, (max(ys) + 1) * cell),
                cells=len(members),
            )
        )
        if top is not None and len(regions) >= top:
            break
    regions.sort(key=lambda r: -r.score)
    for i, region in enumerate(regions, start=1):
        region.rank = i
    return regions


def _grow(
    scores: np.ndarray, used: np.ndarray, gy: int, gx: int, floor: float, max_cells: int
) -> list[tuple[int, int]]:
    members = [(gy, gx)]
    used[gy, gx] = True
    while len(members) < max_cells:
        best = None
        for my, mx in members:
            for ny in range(max(0, my - 1), min(scores.shape[0], my + 2)):
                for nx in range(max(0, mx - 1), min(scores.shape[1], mx + 2)):
                    if (
                        not used[ny, nx]
                        and scores[ny, nx] >= floor
                        and (best is None or scores[ny, nx] > scores[best])
                    ):
                        best = (ny, nx)
        if best is None:
            break
        used[best] = True
        members.append(best)
    return members
