"""FLOPs of the networks, counted from the architecture (multiply-adds x 2).

Per pixel of the model grid, for K classes; the coarse network's first four
layers run at a quarter of the resolution (stride 4).
"""

from __future__ import annotations


def coarse_flops_per_pixel(bands: int = 3, k: int = 2) -> float:
    quarter = 1.0 / 16.0
    macs = (12 * 12 * bands * 64 + 3 * 3 * 64 * 128 + 3 * 3 * 128 * 128 + 9 * 9 * 128 * k) * quarter
    macs += 8 * 8 * k * k * quarter  # transposed conv: each input pixel feeds an 8x8 patch
    return 2.0 * macs


def rnn_flops_per_pixel(
    bands: int = 3,
    k: int = 2,
    iterations: int = 5,
    filters: int = 32,
    hidden: int = 32,
    size: int = 5,
) -> dict[str, float]:
    """The paper's form: M * u_k (shared), N * I once, per-class 64-32-1 MLP."""
    image = size * size * bands * filters  # N * I, once
    per_it = k * (size * size * filters + (2 * filters) * hidden + hidden)
    return {
        "image": 2.0 * image,
        "per_iteration": 2.0 * per_it,
        "total": 2.0 * (image + iterations * per_it),
    }


def rnn_executed_flops_per_pixel(
    bands: int = 3,
    k: int = 2,
    iterations: int = 5,
    hidden: int = 32,
    size: int = 5,
    groups: int = 0,
) -> dict[str, float]:
    """What the CPU path really computes (engine/networks/rnn_wavefront.py): the image
    filters composed with every MLP's image weights (once), and per iteration
    each class's heat filters composed with its MLP's heat weights, then the
    output layer. ``groups`` is K for class-specific MLPs (default), 1 if shared."""
    g = groups or k
    image = g * hidden * size * size * bands
    per_it = k * (hidden * size * size + hidden)
    return {
        "image": 2.0 * image,
        "per_iteration": 2.0 * per_it,
        "total": 2.0 * (image + iterations * per_it),
    }
