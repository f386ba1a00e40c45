"""Training flushes denormals (speed) and leaves the thread's FPU mode as it was."""

from __future__ import annotations

import numpy as np
import torch

from map_refiner.engine.device import denormals_flushed


def test_denormals_flushed_only_inside_the_block():
    tiny = np.array([1e-40], dtype=np.float32)  # a denormal float32
    assert (tiny * np.float32(1.0))[0] != 0
    with denormals_flushed():
        if torch.set_flush_denormal(True):  # the CPU supports FTZ/DAZ
            assert float(torch.from_numpy(tiny) * 1.0) == 0.0
    assert (tiny * np.float32(1.0))[0] != 0  # numpy sees denormals again
    assert float(torch.from_numpy(tiny) * 1.0) != 0.0


def test_training_loop_restores_the_mode(tmp_path):
    from map_refiner.engine.progress import make_reporter
    from map_refiner.training.loop import run_loop

    layer = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.ones(4, 2)
    res = run_loop(
        layer,
        opt,
        lambda step: layer(x).pow(2).mean(),
        3,
        make_reporter(),
        None,
        0,
        False,
        {},
        log_every=1,
    )
    assert res.steps == 3
    tiny = np.array([1e-40], dtype=np.float32)
    assert (tiny * np.float32(1.0))[0] != 0
