"""The networks on one window already on the model grid, and the class map
of their scores: torch only (no GDAL), so the GPU box, which has no GDAL, runs
the same calls as a refine (dev/benchmarks/cuda_check.py), and training can use them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .models import MapRefinerNet, pad_to_stride


def run_networks(
    model: MapRefinerNet,
    image: torch.Tensor,
    iterations: int,
    trajectory: bool = False,
    keep: Sequence[int] | None = None,
) -> torch.Tensor:
    """Coarse CNN then ``iterations`` RNN steps on a ``(C, h, w)`` window.

    Returns ``(K, h, w)`` logits, or ``(iterations + 1, K, h, w)`` when
    ``trajectory`` is set (iteration 0 is the coarse map), or only the
    iterations listed in ``keep``, ``(len(keep), K, h, w)``.
    """
    h, w = image.shape[-2:]
    x = pad_to_stride(image.unsqueeze(0))
    heat = model.coarse(x)
    if not trajectory and keep is not None and set(keep) <= {0, iterations}:
        # The coarse map and the last iteration: no trajectory kept in between.
        ends = {0: heat, iterations: model.rnn(x, heat, iterations)}
        return torch.stack([ends[i][0, :, :h, :w] for i in keep])
    if trajectory or keep is not None:
        steps = model.rnn.trajectory(x, heat, iterations)
        picked = steps if keep is None else [steps[i] for i in keep]
        return torch.stack([s[0, :, :h, :w] for s in picked])
    return model.rnn(x, heat, iterations)[0, :, :h, :w]


def infer(
    model: MapRefinerNet,
    image: torch.Tensor,
    iterations: int,
    trajectory: bool = False,
    keep: Sequence[int] | None = None,
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """:func:`run_networks` without autograd, under ``autocast`` (e.g. bfloat16,
    see device.inference_autocast) when given; the scores come back in float32.
    The one inference call of refines, trajectories and dev/benchmarks/cuda_check.py."""
    with (
        torch.inference_mode(),
        torch.autocast(
            image.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None
        ),
    ):
        logits = run_networks(model, image, iterations, trajectory, keep)
    return logits.float()


def class_argmax(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(0)`` as uint8 for (K, h, w) scores, first class on ties.

    torch's arg-max over a leading dimension of a few classes runs orders of
    magnitude slower on the CPU than these K elementwise passes
    (docs/benchmarks.md).
    """
    best = scores[0]
    cls = torch.zeros(best.shape, dtype=torch.uint8, device=scores.device)
    for k in range(1, scores.shape[0]):
        better = scores[k] > best
        cls.masked_fill_(better, k)
        best = torch.where(better, scores[k], best)
    return cls
