"""Choosing the torch device: ``auto`` takes CUDA when it works, else the CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import MapRefinerError
from .vocabulary import DEVICES, PRECISIONS, choice

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device that ``name`` (one of vocabulary.DEVICES) stands for here."""
    name = choice(name, DEVICES, "device")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise MapRefinerError(
            "CUDA was asked for but no usable NVIDIA GPU was found by torch "
            f"(torch {torch.__version__}); choose 'auto' "
            "or 'cpu', or install a CUDA build of torch."
        )
    return torch.device("cpu")


def inference_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference on ``device``, or None for plain fp32.

    ``auto`` is bfloat16 mixed precision on CUDA GPUs that support it, fp32
    elsewhere: on a GPU bf16 is faster with nearly the same class maps, within
    the accuracy budget that tests/test_default_model.py keeps; on this
    project's CPUs it is slower than fp32, so the CPU stays fp32 (figures:
    docs/benchmarks.md).
    """
    name = choice(precision, PRECISIONS, "precision")
    if name == "bf16":
        return torch.bfloat16
    if name == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def device_label(device: torch.device, autocast: torch.dtype | None) -> str:
    """``cuda`` or ``cuda (bf16 mixed precision)``: what the messages show."""
    if autocast is None:
        return str(device)
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(autocast, str(autocast))
    return f"{device} ({name} mixed precision)"


def describe_devices() -> str:
    """One line a user can read: what the engine can run on."""
    if torch.cuda.is_available():
        amp = inference_autocast("auto", torch.device("cuda")) is not None
        return f"CUDA: {torch.cuda.get_device_name(0)}{', bf16 mixed precision' if amp else ''}"
    return f"CPU only ({os.cpu_count()} cores; torch {torch.__version__})"


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """Flush denormal floats to zero inside the block (training loops).

    x86 cores are far slower on denormal floats. When a fit drives its outputs
    to saturation (a degenerate run whose labels were all one class: loss -> 0)
    they slow the backward pass down; on real ``austin_enh`` patches flushing
    them gains nothing measurable (docs/benchmarks.md), so this is insurance,
    not a speed-up. The flag is the thread's FPU mode, which numpy shares (a
    denormal nodata value would compare equal to 0), so it is switched off again
    on the way out.
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
