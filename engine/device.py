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

    x86 cores take ~100x longer on denormal floats. When a fit drives its
    outputs to saturation (a degenerate run whose labels were all one class:
    loss -> 0) the backward pass was 3x slower from them; on real ``austin_enh``
    patches it gained nothing measurable (1.0x and 1.1x in two `make bench`
    runs), so this is insurance, not a
    speed-up. The flag is the thread's FPU mode, which numpy shares (a denormal
    nodata value would compare equal to 0), so it is switched off again on the
    way out.
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
