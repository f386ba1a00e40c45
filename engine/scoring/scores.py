"""Scores of class maps held in memory: confusion matrix, accuracy, IoU.

numpy only (no GDAL), so the GPU box's checks (dev/benchmarks/cuda_check.py)
score with the same code as ``map-refiner evaluate`` (engine/scoring/metrics.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MapRefinerError
from ..labels.classes import IGNORE

_CHUNK = 1 << 22  # pixels per bincount pass, to bound memory on large rasters


def confusion_matrix(
    pred: np.ndarray, ref: np.ndarray, num_classes: int, ignore: Sequence[int] = (IGNORE,)
) -> np.ndarray:
    """``(K, K)`` pixel counts, rows = reference class, columns = predicted class.

    Pixels where either array holds an ``ignore`` value are left out; any other
    value outside ``0..K-1`` is an error.
    """
    if pred.shape != ref.shape:
        raise MapRefinerError(
            f"The prediction ({pred.shape}) and the reference ({ref.shape}) "
            "differ in size; bring them onto one grid first."
        )
    k = int(num_classes)
    cm = np.zeros(k * k, dtype=np.int64)
    p_all, r_all = pred.ravel(), ref.ravel()
    for i in range(0, p_all.size, _CHUNK):
        p, r = p_all[i : i + _CHUNK], r_all[i : i + _CHUNK]
        keep = ~(np.isin(p, ignore) | np.isin(r, ignore))
        p, r = p[keep].astype(np.int64), r[keep].astype(np.int64)
        bad = np.concatenate([p[(p < 0) | (p >= k)], r[(r < 0) | (r >= k)]])
        if bad.size:
            value = int(bad[0])
            raise MapRefinerError(
                f"Found class value {value} but there are only {k} classes; "
                "give a value map or the full list of class names."
            )
        cm += np.bincount(r * k + p, minlength=k * k)
    return cm.reshape(k, k)


@dataclass
class Scores:
    """Overall accuracy, per-class and mean IoU, and the confusion matrix behind them."""

    class_names: list[str]
    confusion: np.ndarray
    overall_accuracy: float
    iou: list[float]
    mean_iou: float
    pixel_count: int

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, class_names: Sequence[str]) -> Scores:
        """IoU is NaN for a class absent from both maps; the mean skips those."""
        cm = np.asarray(confusion, dtype=np.int64)
        total = int(cm.sum())
        hits = np.diag(cm).astype(np.float64)
        union = cm.sum(axis=0) + cm.sum(axis=1) - hits
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, hits / union, np.nan)
        seen = iou[~np.isnan(iou)]
        return cls(
            list(class_names),
            cm,
            float(hits.sum() / total) if total else math.nan,
            [float(v) for v in iou],
            float(seen.mean()) if seen.size else math.nan,
            total,
        )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON types; NaN becomes None."""
        return {
            "class_names": list(self.class_names),
            "overall_accuracy": _json_float(self.overall_accuracy),
            "iou": {n: _json_float(v) for n, v in zip(self.class_names, self.iou)},
            "mean_iou": _json_float(self.mean_iou),
            "pixel_count": self.pixel_count,
            "confusion_matrix": self.confusion.tolist(),
        }

    def format_table(self) -> str:
        """A short text table: IoU per class, mean IoU and overall accuracy in percent."""
        width = max([len("overall accuracy")] + [len(n) for n in self.class_names])
        lines = [f"{'class':<{width}}  {'IoU':>7}"]
        lines += [f"{n:<{width}}  {_pct(v)}" for n, v in zip(self.class_names, self.iou)]
        lines.append(f"{'mean IoU':<{width}}  {_pct(self.mean_iou)}")
        lines.append(f"{'overall accuracy':<{width}}  {_pct(self.overall_accuracy)}")
        lines.append(f"({self.pixel_count} pixels scored)")
        return "\n".join(lines)


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _pct(v: float) -> str:
    return f"{'n/a':>7}" if math.isnan(v) else f"{100 * v:6.2f}%"
