"""Choosing the torch device: ``auto`` takes CUDA when it works, else the CPU."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import MapRefinerError

log = logging.getLogger(__name__)
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES:
        raise MapRefinerError(f"Unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}.")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise MapRefinerError(
            "CUDA was asked for but no usable NVIDIA GPU was found by torch "
            f"(torch {torch.__version__}); choose 'auto' or 'cpu', or install a CUDA build of torch.")
    return torch.device("cpu")


def describe_devices() -> str:
    """One line a user can read: what the engine can run on."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return f"CPU only ({os.cpu_count()} cores; torch {torch.__version__})"


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """Flush denormal floats to zero inside the block (training loops).

    Gradients of a freshly initialised RNN are full of denormals; x86 cores take
    ~100x longer on those, which made a training step on ``austin_enh`` 3.3x
    slower (342 ms against 116 ms of backward pass per step). The flag is the
    thread's FPU mode, which numpy shares (a denormal nodata value would compare
    equal to 0), so it is switched off again on the way out.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


def configure_threads() -> None:
    """Use all cores for intra-op parallelism unless the user set a limit."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
