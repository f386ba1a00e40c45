"""The image's own edges as a second opinion on a prior's move (no network involved).

Registration (registration.py) moves a prior onto the model's refined map. Where the
model misreads the imagery (false-colour infrared, where vegetation is red and the
model calls it roof), that map is wrong in a consistent direction and a right prior is
dragged off its roofs. A building's outline sits on an edge of the image whatever the
bands show, so the mean edge strength under the prior's outlines, moved and as drawn,
tells whether the move lays the outlines on the image's edges or off them.

Measured on the shared scenes (dev/prior/edge_probe.py, docs/results_prior.md "The
image's edges as a second opinion"): on the georeferenced scenes the move that undoes a
known 1-4 m shift lays the outlines on 1.06-1.95 times stronger edges than where they
were; the moves the model made on ISPRS Potsdam's 25 m crop were 0.95-1.06 (edges say
little there); the moves that dragged Vaihingen's false-colour priors off their roofs
were 0.43-0.78.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

#: A move is undone when the prior's outlines lie on edges weaker than this share of
#: their strength where the prior was drawn. Between the moves measured right (>= 0.95)
#: and those measured wrong (<= 0.78); set on those scenes (Vaihingen the only wrong
#: case), so a single-scene choice, not a validated one.
EDGE_AGREEMENT = 0.85
#: Gaussian smoothing before the gradient, in model pixels.
SMOOTH_PX = 0.7


def _gaussian(sigma: float) -> torch.Tensor:
    r = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def edge_strength(image: torch.Tensor) -> np.ndarray:
    """Gradient magnitude of the bands' mean, lightly smoothed: ``(C, h, w)`` ->
    ``(h, w)``; zero within two pixels of where the image has no data (all bands 0)."""
    img = image.detach().float().cpu()
    valid = (img != 0).any(0)
    lum = img.mean(0)[None, None]
    g = _gaussian(SMOOTH_PX)
    r = (len(g) - 1) // 2
    lum = F.conv2d(F.pad(lum, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    lum = F.conv2d(F.pad(lum, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None]
    grad = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), kernels)[0]
    strength = torch.sqrt((grad**2).sum(0))
    near_gap = F.max_pool2d((~valid).float()[None, None], 5, stride=1, padding=2)[0, 0] > 0
    strength[near_gap] = 0.0
    return strength.numpy()


def outline(classes: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour holds another class (both with a class;
    -1 is none)."""
    out = np.zeros(classes.shape, dtype=bool)
    right = (classes[:, :-1] >= 0) & (classes[:, 1:] >= 0) & (classes[:, :-1] != classes[:, 1:])
    below = (classes[:-1] >= 0) & (classes[1:] >= 0) & (classes[:-1] != classes[1:])
    out[:, :-1] |= right
    out[:-1] |= below
    return out


def edge_sum(strength: np.ndarray, classes: np.ndarray) -> tuple[float, int]:
    """Summed edge strength under the outlines of ``classes``, and their pixel count."""
    line = outline(classes) & (strength > 0)
    return float(strength[line].sum()), int(line.sum())


def edge_ratio(placed: tuple[float, int], drawn: tuple[float, int]) -> float | None:
    """Mean edge strength under the placed prior's outlines over that under the prior
    as drawn (None when either has no outline on the image)."""
    (sp, n_p), (sd, n_d) = placed, drawn
    if not n_p or not n_d or sd <= 0:
        return None
    return (sp / n_p) / (sd / n_d)
