"""Random training patches from a tile, deterministic per (seed, step).

The batch drawn at step ``s`` depends only on the seed and ``s``, so a run
resumed from a checkpoint draws exactly the batches it would have drawn.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F

from .tile import IGNORE, TrainingTile

Batch = tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


class PatchSampler:
    """Patches whose ``out_size`` centre holds labels, with ``context`` pixels around."""

    def __init__(
        self,
        tile: TrainingTile,
        out_size: int,
        context: int,
        seed: int,
        heat: torch.Tensor | None = None,
        min_labelled: float = 0.05,
        augment: bool = True,
    ) -> None:
        self.out, self.ctx, self.seed, self.augment = out_size, context, seed, augment
        pad = context
        self.image = F.pad(tile.image, (pad, pad, pad, pad))
        self.labels = F.pad(tile.labels, (pad, pad, pad, pad), value=IGNORE)
        self.heat = (
            F.pad(heat, (pad, pad, pad, pad), mode="replicate") if heat is not None else None
        )
        h, w = tile.labels.shape
        # Label patches may hang over the tile edge when the tile is small.
        self.span_y = max(1, h - out_size + 1)
        self.span_x = max(1, w - out_size + 1)
        if h < out_size or w < out_size:
            extra_y, extra_x = max(0, out_size - h), max(0, out_size - w)
            self.image = F.pad(self.image, (0, extra_x, 0, extra_y))
            self.labels = F.pad(self.labels, (0, extra_x, 0, extra_y), value=IGNORE)
            if self.heat is not None:
                self.heat = F.pad(self.heat, (0, extra_x, 0, extra_y), mode="replicate")
        lab = (tile.labels != IGNORE).numpy().astype(np.int64)
        lab = np.pad(lab, ((0, max(0, out_size - h)), (0, max(0, out_size - w))))
        self.integral = np.pad(lab.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        self.min_count = max(1, int(min_labelled * out_size * out_size))
        if self.integral[-1, -1] == 0:
            raise ValueError("the tile has no labelled pixels")

    def _labelled(self, y: int, x: int) -> int:
        s, i = self.out, self.integral
        return int(i[y + s, x + s] - i[y, x + s] - i[y + s, x] + i[y, x])

    def _corner(self, rng: np.random.Generator) -> tuple[int, int]:
        best, best_count = (0, 0), -1
        for _ in range(200):
            y, x = int(rng.integers(self.span_y)), int(rng.integers(self.span_x))
            c = self._labelled(y, x)
            if c >= self.min_count:
                return y, x
            if c > best_count:
                best, best_count = (y, x), c
        return best

    def batch(self, size: int, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        imgs, labs, heats = [], [], []
        full = self.out + 2 * self.ctx
        for _ in range(size):
            y, x = self._corner(rng)
            img = self.image[:, y : y + full, x : x + full]
            lab = self.labels[
                y + self.ctx : y + self.ctx + self.out, x + self.ctx : x + self.ctx + self.out
            ]
            heat = self.heat[:, y : y + full, x : x + full] if self.heat is not None else None
            if self.augment:
                k, flip = int(rng.integers(4)), bool(rng.integers(2))
                img, lab = torch.rot90(img, k, (1, 2)), torch.rot90(lab, k, (0, 1))
                heat = torch.rot90(heat, k, (1, 2)) if heat is not None else None
                if flip:
                    img, lab = img.flip(2), lab.flip(1)
                    heat = heat.flip(2) if heat is not None else None
            imgs.append(img)
            labs.append(lab)
            if heat is not None:
                heats.append(heat)
        return (torch.stack(imgs), torch.stack(labs).long(), torch.stack(heats) if heats else None)
