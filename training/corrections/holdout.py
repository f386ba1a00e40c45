"""Holding whole polygons out of a fine-tune, and scoring a map on them.

A fine-tune is judged on corrections it did not learn from: the user's own held-out
polygons say whether what it learnt from the others carries over. A polygon is
held out whole (its pixels are alike, so a split inside one would flatter the fit).
"""

from __future__ import annotations

import numpy as np
import torch

from ..tile import IGNORE

#: Share of the polygons held out when there are enough of them.
HOLDOUT_SHARE = 0.34
#: Share of the held-out phase's best step count a fit adopted spends on every polygon
#: afterwards (the model grid's networks, finetune.py, and the detail RNN, detail_stage.py).
REFIT_SHARE = 0.5
#: A fit is adopted only when it gets more than this share of the held-out polygons'
#: pixels right (balanced over classes), and more than the base model does. With
#: two classes held out, 0.5 is what a map of one class scores: no evidence that the
#: fit learnt the user's kind of correction. Fits that scored 0.50 on the shared
#: scenes moved the undrawn half by -10, -3 and +11 points of building IoU, fits
#: that scored a fifth made it worse (docs/results_corrections.md); a fit must clear
#: chance by a margin.
ADOPT_AT_LEAST = 0.55


def held_out_features(
    feature_class: dict[int, int], seed: int, share: float = HOLDOUT_SHARE
) -> list[int]:
    """About ``share`` of the features, drawn per class, never a class's only feature.

    Returns ``[]`` when no class has two features (nothing can be held out without
    removing a class from the training labels).
    """
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for feats, n in _classes(feature_class, share):
        out += [int(f) for f in rng.choice(feats, size=n, replace=False)]
    return sorted(out)


def _classes(feature_class: dict[int, int], share: float) -> list[tuple[list[int], int]]:
    """Per class with at least two features: its features, and how many to hold out
    (about ``share`` of them, at least one, never all)."""
    out = []
    for cls in sorted(set(feature_class.values())):
        feats = sorted(f for f, c in feature_class.items() if c == cls)
        if len(feats) >= 2:
            out.append((feats, min(len(feats) - 1, max(1, int(round(share * len(feats)))))))
    return out


def fold_holdouts(
    feature_class: dict[int, int], seed: int, folds: int, share: float = HOLDOUT_SHARE
) -> list[list[int]]:
    """The held-out features of ``folds`` fits (cross-validation over the polygons).

    The first fold is ``held_out_features(feature_class, seed, share)``; each next one
    holds out as many features of each class, taken first from those no earlier fold
    held out, so that with enough polygons every fold checks the fit on others. Folds
    that would repeat an earlier one are left out (one class of two polygons has two
    folds at most). ``[]`` when nothing can be held out.
    """
    first = held_out_features(feature_class, seed, share)
    if not first:
        return []
    out = [first]
    rng = np.random.default_rng([seed, 1])  # a stream apart from the first fold's
    used = set(first)
    for _ in range(1, folds):
        fold: list[int] = []
        for feats, n in _classes(feature_class, share):
            fresh = [f for f in feats if f not in used]
            take = [int(f) for f in rng.permutation(fresh)[:n]] if fresh else []
            rest = [f for f in feats if f not in take]
            take += [int(f) for f in rng.permutation(rest)[: n - len(take)]]
            fold += take
        fold = sorted(fold)
        if fold not in out:
            out.append(fold)
        used |= set(fold)
    return out


def balanced_accuracy(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over the classes present in ``labels[mask]`` of the share of their pixels
    that ``pred`` gets right; 0 when ``mask`` selects no labelled pixel."""
    mask = mask & (labels != IGNORE)
    accs = [
        float((pred[mask & (labels == c)] == c).float().mean())
        for c in torch.unique(labels[mask]).tolist()
    ]
    return float(np.mean(accs)) if accs else 0.0
