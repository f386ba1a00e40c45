"""Before/after of each CPU speed lever, measured in the same process on the
same input (a square of the 2.25 km² crop on the model grid).

"Before" is the plain PyTorch formulation the paper describes (and the
training path still uses); "after" is what inference runs now.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch.nn import functional as F

from ...engine.device import denormals_flushed
from ...engine.networks.coarse_cpu import coarse_forward_cpu
from ...engine.networks.inference import class_argmax
from ...engine.networks.rnn_wavefront import iterate_wavefront
from ...engine.refine.resample import axis_band, axis_weights, resample_window


def best_time(fn: Callable[[], object], repeat: int = 2) -> float:
    """Best of ``repeat`` timed calls after one warm-up call (seconds)."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def _resample_both_ways(data: torch.Tensor, heat: torch.Tensor, scale: float, dense: bool) -> None:
    """The image window to the model grid and the scores back, as a refine's
    tile does (``scale``: model pixels per input pixel; ``data`` on the input grid)."""
    for x, s, n_out in ((data, scale, heat.shape[-1]), (heat, 1.0 / scale, data.shape[-1])):
        h, w = x.shape[-2:]
        if dense:  # the earlier resampler: (n_out, n_window) matrices, two products
            rows, cols = (torch.from_numpy(axis_weights(0, n_out, s, 0, n, n)) for n in (h, w))
            rows @ x @ cols.T
        else:
            resample_window(x, axis_band(0, n_out, s, 0, h, h), axis_band(0, n_out, s, 0, w, w))


def levers(net, image: torch.Tensor, iterations: int, scale: float) -> list[dict[str, object]]:
    """``image``: (C, h, w) normalised, on the model grid, sides multiples of 4;
    ``scale``: model pixels per input pixel of the raster it came from."""
    x = image.unsqueeze(0).contiguous()
    rows = []
    with torch.no_grad():
        heat = coarse_forward_cpu(net.coarse, x)
        rows.append(
            {
                "part": "coarse CNN",
                "before": best_time(lambda: net.coarse(x)),
                "after": best_time(lambda: coarse_forward_cpu(net.coarse, x)),
                "how": "channels-last; 9x9 K-output layer as one GEMM + shifted sums; "
                "even-sided transposed convolution",
            }
        )
        rows.append(
            {
                "part": f"RNN, {iterations} iterations",
                "before": best_time(lambda: net.rnn(x, heat, iterations), repeat=1),
                "after": best_time(lambda: iterate_wavefront(net.rnn, x, heat, iterations, False)),
                "how": "strips + wavefront over the iterations, im2col + batched GEMM; "
                "hidden layer stays in cache",
            }
        )
        scores = heat[0]
        n_in = int(round(image.shape[-1] / scale))
        src = torch.nn.functional.interpolate(x, size=(n_in, n_in), mode="bilinear")[0]
        rows.append(
            {
                "part": "resampling to the model grid and back",
                "before": best_time(lambda: _resample_both_ways(src, scores, scale, True)),
                "after": best_time(lambda: _resample_both_ways(src, scores, scale, False)),
                "how": "banded weights (3-4 taps per pixel, row gathers) instead of "
                "dense matrix products",
            }
        )
        rows.append(
            {
                "part": "arg-max over classes",
                "before": best_time(lambda: scores.argmax(0).to(torch.uint8)),
                "after": best_time(lambda: class_argmax(scores)),
                "how": "K elementwise passes instead of torch.argmax over a leading dim",
            }
        )
    return rows


def training_step(net, config, data, iterations: int, steps: int = 60) -> dict[str, object]:
    """A fresh RNN trained on real ``austin_enh`` patches (batch 8 of 64 px) for
    ``steps`` steps, timing the last third: denormals computed, then flushed
    (``denormals_flushed``, as around every training loop)."""
    from ...engine.networks.models import RefinementRNN
    from ...training.data import load_training_tile
    from ...training.rnn_fit import coarse_heat
    from ...training.sampler import PatchSampler
    from ...training.tile import IGNORE
    from .bench_train import austin_enh

    tile = load_training_tile(*austin_enh(data), config, None, None)
    heat = coarse_heat(net, tile.image, torch.device("cpu"))
    ctx, patch = 2 * (iterations + 1), 64
    sampler = PatchSampler(tile, patch, ctx, 0, heat=heat)

    def run(flush: bool) -> float:
        torch.manual_seed(0)
        rnn = RefinementRNN(config.in_channels, config.num_classes)
        opt = torch.optim.Adagrad(rnn.parameters(), lr=0.01)
        times = []
        with denormals_flushed() if flush else nullcontext():
            for step in range(steps):
                img, lab, h = sampler.batch(8, step)
                t0 = time.perf_counter()
                opt.zero_grad()
                out = rnn(img, h, iterations)[:, :, ctx : ctx + patch, ctx : ctx + patch]
                F.cross_entropy(out, lab, ignore_index=IGNORE).backward()
                opt.step()
                times.append(time.perf_counter() - t0)
        tail = times[-(steps // 3) :]
        return sum(tail) / len(tail)

    return {
        "part": (
            f"RNN training step (fresh RNN, austin_enh, batch 8, steps {steps * 2 // 3}-{steps})"
        ),
        "before": run(False),
        "after": run(True),
        "how": "denormals flushed to zero",
    }
