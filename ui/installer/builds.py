"""Which torch build to install: CPU unless an NVIDIA driver can run a CUDA build.

PyTorch publishes one package index per build (download.pytorch.org/whl/<build>);
the build is also the version's local label (``torch==2.13.0+cpu``), so pinning
it means pip can only take that build, whatever else its configuration lists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TORCH_INDEX = "https://download.pytorch.org/whl/"
#: CUDA builds offered for the pinned torch, newest first, with the oldest driver
#: (major version) each needs; CUDA 12 builds run on any 12.x driver (minor-version
#: compatibility), CUDA 13 needs a 580 driver.
CUDA_BUILDS: tuple[tuple[str, str, int], ...] = (
    ("cu130", "CUDA 13.0", 580),
    ("cu128", "CUDA 12.8", 570),
    ("cu126", "CUDA 12.6", 525),
)
BUILD_KEYS = ("auto", "cpu") + tuple(key for key, _, _ in CUDA_BUILDS)


@dataclass(frozen=True)
class BuildChoice:
    """A torch build: its key (``cpu``, ``cu128``…), a label, its pip index and why."""

    key: str
    label: str
    index_url: str | None
    reason: str

    def torch_spec(self, pin: str) -> str:
        """``torch==2.13.0`` -> ``torch==2.13.0+cpu``; plain on macOS (no labelled wheels)."""
        if self.index_url is None or "+" in pin:
            return pin
        return f"{pin}+{self.key}"


def nvidia_driver(timeout: float = 10.0) -> str | None:
    """The NVIDIA driver version (``"550.54.14"``), or None when there is none."""
    proc_file = Path("/proc/driver/nvidia/version")
    if proc_file.exists():
        found = re.search(
            r"Kernel Module\s+(?:for \S+\s+)?([0-9]+(?:\.[0-9]+)+)",
            proc_file.read_text(errors="replace"),
        )
        if found:
            return found.group(1)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()[0].strip() if out.stdout.strip() else ""
    return first if out.returncode == 0 and re.match(r"^[0-9]+(\.[0-9]+)+$", first) else None


def build(key: str, reason: str = "") -> BuildChoice:
    """The build called ``key`` (``cpu`` or one of :data:`CUDA_BUILDS`)."""
    if key == "cpu":
        if sys.platform == "darwin":
            return BuildChoice(
                "cpu",
                "CPU (Apple: the default build, uses the GPU via MPS)",
                None,
                reason or "macOS has one torch build.",
            )
        return BuildChoice("cpu", "CPU", TORCH_INDEX + "cpu", reason or "chosen by you")
    for cuda_key, label, _ in CUDA_BUILDS:
        if cuda_key == key:
            return BuildChoice(key, label, TORCH_INDEX + key, reason or "chosen by you")
    raise ValueError(f"unknown torch build {key!r}; use one of {', '.join(BUILD_KEYS)}")


def choose_build(key: str = "auto", driver: str | None = "detect") -> BuildChoice:
    """``auto``: the newest CUDA build the NVIDIA driver supports, else CPU; any
    other key is the user's override."""
    if key != "auto":
        return build(key)
    if sys.platform == "darwin":
        return build("cpu")
    if driver == "detect":
        driver = nvidia_driver()
    if not driver:
        return build("cpu", "no NVIDIA driver found (nvidia-smi and /proc/driver/nvidia absent)")
    major = int(driver.split(".")[0])
    for cuda_key, label, min_major in CUDA_BUILDS:
        if major >= min_major:
            return build(
                cuda_key,
                f"NVIDIA driver {driver} found; {label} is the newest build "
                f"it runs (needs driver {min_major} or later)",
            )
    return build(
        "cpu",
        f"NVIDIA driver {driver} is older than any CUDA build of this torch "
        f"needs ({CUDA_BUILDS[-1][2]}); update the driver for GPU use",
    )
