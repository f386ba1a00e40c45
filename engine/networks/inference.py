"""The networks for inference: the path each runs on, chosen here, and the class
map of their scores. Torch only (no GDAL), so the GPU box, which has no GDAL, runs
the same calls as a refine (dev/benchmarks/cuda_check.py), and training can use them.

The models' ``forward`` is the paper's computation with autograd. Without
gradients the same numbers come faster: on the CPU in float32 the CNN runs
channels-last with its last layer as one GEMM (coarse_cpu.py) and the RNN as a
wavefront over strips that stays in the cache (rnn_wavefront.py); elsewhere (a
GPU, or autocast) the RNN runs channels-last (``RefinementRNN.iterate_channels_last``)
and the CNN its plain layers. Tests compare each path with ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .coarse_cpu import coarse_forward_cpu, coarse_head_cpu, coarse_trunk_cpu
from .models import CoarseFCN, MapRefinerNet, RefinementRNN, pad_to_stride
from .rnn_wavefront import iterate_wavefront


def coarse_scores(
    coarse: CoarseFCN, x: torch.Tensor, memo: dict | None = None, key: object = None
) -> torch.Tensor:
    """The coarse CNN's scores on ``(B, C, H, W)`` images, without autograd. With ``memo``
    and ``key`` (one tile's networks, gate.py) the first three layers' features are kept
    there under ``key`` + the layers, and reused by a network that shares those layers."""
    with torch.no_grad():
        fast = cpu_fast_path(x)
        if memo is None or key is None:
            return coarse_forward_cpu(coarse, x) if fast else coarse(x)
        slot = (key, id(coarse.conv1), id(coarse.conv2), id(coarse.conv3), fast)
        if slot not in memo:
            memo[slot] = coarse_trunk_cpu(coarse, x) if fast else _trunk(coarse, x)
        feats = memo[slot]
        return coarse_head_cpu(coarse, feats) if fast else _head(coarse, feats)


def _trunk(coarse: CoarseFCN, x: torch.Tensor) -> torch.Tensor:
    """CoarseFCN.forward's first three layers."""
    x = F.relu(coarse.conv1(x))
    x = F.relu(coarse.conv2(x))
    return F.relu(coarse.conv3(x))


def _head(coarse: CoarseFCN, feats: torch.Tensor) -> torch.Tensor:
    """CoarseFCN.forward's last layer and upsampling."""
    return coarse.upsample(coarse.conv4(feats))


def rnn_steps(
    rnn: RefinementRNN, x: torch.Tensor, heat: torch.Tensor, iterations: int, keep_all: bool
) -> list[torch.Tensor]:
    """The heat maps after ``iterations`` RNN steps (``[u_T]``), or at every step
    (``[u_0, ..., u_T]``) with ``keep_all``, without autograd."""
    with torch.no_grad():
        if heat.device.type == "cpu" and heat.dtype == torch.float32:
            return iterate_wavefront(rnn, x, heat, iterations, keep_all)
        feats = rnn.image_features(x, channels_last=True)
        if rnn.class_specific:
            return rnn.iterate_channels_last(feats, heat, iterations, keep_all)
        out = [heat]
        for _ in range(iterations):
            heat = rnn.step(heat, feats)
            out.append(heat)
        return out if keep_all else out[-1:]


def refine_heat(
    rnn: RefinementRNN, x: torch.Tensor, heat: torch.Tensor, iterations: int
) -> torch.Tensor:
    """``rnn(x, heat, iterations)`` without autograd, on the fastest path."""
    return rnn_steps(rnn, x, heat, iterations, keep_all=False)[-1]


def run_networks(
    model: MapRefinerNet,
    image: torch.Tensor,
    iterations: int,
    trajectory: bool = False,
    keep: Sequence[int] | None = None,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
    memo: dict | None = None,
) -> torch.Tensor:
    """Coarse CNN then ``iterations`` RNN steps on a ``(C, h, w)`` window, without
    autograd (``memo``: coarse_scores'). With ``start`` (``(K, h, w)`` heat maps, e.g. a
    prior map's, and the ``(h, w)`` pixels they cover) the RNN starts from them instead of
    the CNN's there.

    Returns ``(K, h, w)`` logits, or ``(iterations + 1, K, h, w)`` when
    ``trajectory`` is set (iteration 0 is the coarse map), or only the
    iterations listed in ``keep``, ``(len(keep), K, h, w)``.
    """
    h, w = image.shape[-2:]
    x = pad_to_stride(image.unsqueeze(0))
    heat = coarse_scores(model.coarse, x, memo, ("image", id(image)))
    if start is not None:
        first, covered = start
        heat = heat.clone()
        heat[0, :, :h, :w] = torch.where(covered, first.to(heat.dtype), heat[0, :, :h, :w])
    if not trajectory and keep is not None and set(keep) <= {0, iterations}:
        # The coarse map and the last iteration: no trajectory kept in between.
        ends = {0: heat, iterations: refine_heat(model.rnn, x, heat, iterations)}
        return torch.stack([ends[i][0, :, :h, :w] for i in keep])
    if trajectory or keep is not None:
        steps = rnn_steps(model.rnn, x, heat, iterations, keep_all=True)
        picked = steps if keep is None else [steps[i] for i in keep]
        return torch.stack([s[0, :, :h, :w] for s in picked])
    return refine_heat(model.rnn, x, heat, iterations)[0, :, :h, :w]


def infer(
    model: MapRefinerNet,
    image: torch.Tensor,
    iterations: int,
    trajectory: bool = False,
    keep: Sequence[int] | None = None,
    autocast: torch.dtype | None = None,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
    memo: dict | None = None,
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
        logits = run_networks(model, image, iterations, trajectory, keep, start, memo)
    return logits.float()


def refine_more(
    model: MapRefinerNet,
    image: torch.Tensor,
    heat: torch.Tensor,
    iterations: int,
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """``iterations`` steps of the model's fine-grid RNN (its detail RNN, else its RNN)
    from ``(K, h, w)`` heat maps on a ``(C, h, w)`` image (no CNN), as :func:`infer`
    runs them: a refine's last steps on a finer grid."""
    with (
        torch.inference_mode(),
        torch.autocast(
            image.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None
        ),
    ):
        # As the CNN's scores under autocast: in its dtype (and so off the fp32 CPU path).
        start = heat[None] if autocast is None else heat[None].to(autocast)
        out = refine_heat(model.fine_rnn, image[None], start, iterations)
    return out[0].float()


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


def cpu_fast_path(x: torch.Tensor) -> bool:
    """Whether the CNN's inference on ``x`` takes its CPU path (coarse_cpu.py): float32 on
    the CPU outside autocast (under autocast the plain layers run, as on CUDA: the shifted
    sums would accumulate in bf16)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not _autocast_on_cpu()


def _autocast_on_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()
