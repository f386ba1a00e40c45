"""What the installer concludes from its processes: the verification's report and,
when pip fails, one message that says why and what to do."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ...engine.errors import MapRefinerError
from .builds import BuildChoice

# Run by QGIS's Python with the new folder as its only addition to sys.path.
VERIFY_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy, safetensors, torch
x = torch.arange(16.0).reshape(1, 1, 4, 4)
conv = torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3)).flatten().tolist()
cuda = torch.cuda.is_available()
if cuda:
    ones = torch.ones(1, 1, 3, 3).cuda()
    conv_cuda = torch.nn.functional.conv2d(x.cuda(), ones).flatten().tolist()
try:
    from osgeo import gdal
    gdal_file = gdal.__file__
except ImportError:
    gdal_file = None
print("VERIFY " + json.dumps({
    "torch": torch.__version__, "torch_file": torch.__file__,
    "safetensors": safetensors.__version__, "conv": conv, "cuda": cuda,
    "cuda_conv": conv_cuda if cuda else None, "cuda_version": torch.version.cuda,
    "numpy": numpy.__version__, "numpy_file": numpy.__file__, "gdal_file": gdal_file,
    "python": sys.version.split()[0]}))
"""
EXPECTED_CONV = [45.0, 54.0, 81.0, 90.0]
NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ProxyError",
    "Max retries exceeded",
    "ConnectTimeoutError",
    "Could not fetch URL",
    "getaddrinfo failed",
    "No route to host",
    "Connection refused",
)


def _inside(path: str, folder: Path) -> bool:
    return bool(path) and Path(path).resolve().is_relative_to(folder.resolve())


def check_verify_output(code: int, lines: Sequence[str], site: Path) -> dict:
    """The verification's report, or a MapRefinerError saying what went wrong."""
    found = [ln for ln in lines if ln.startswith("VERIFY ")]
    if code != 0 or not found:
        tail = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        raise MapRefinerError(
            f"The installed torch does not work in QGIS's Python ({tail}); "
            "nothing was changed. See the log.",
            details="\n".join(lines),
        )
    report = json.loads(found[-1][len("VERIFY ") :])
    if not _inside(report["torch_file"], site):
        raise MapRefinerError(
            f"The check imported torch from {report['torch_file']}, not from the "
            "new folder; nothing was changed.",
            details="\n".join(lines),
        )
    for name in ("numpy_file", "gdal_file"):
        if report.get(name) and _inside(report[name], site):
            raise MapRefinerError(
                f"The new folder would replace QGIS's {name[:-5]}; refused, nothing was changed.",
                details="\n".join(lines),
            )
    if report["conv"] != EXPECTED_CONV or (report["cuda"] and report["cuda_conv"] != EXPECTED_CONV):
        raise MapRefinerError(
            "torch imported but computed a wrong convolution; nothing was "
            "changed. Try the CPU build.",
            details="\n".join(lines),
        )
    return report


def classify_pip_failure(
    code: int, lines: list[str], specs: Sequence[str], build: BuildChoice, online: bool = True
) -> MapRefinerError:
    """One message for a failed ``pip install``: network, no such version, conflict, disk.

    ``online``: whether any package index answered when the installer asked.
    """
    text = "\n".join(lines)
    wanted = " and ".join(specs)
    not_found = "No matching distribution" in text or "Could not find a version" in text
    listed = [
        m.group(1).strip()
        for m in re.finditer(r"\(from versions: ([^)]*)\)", text)
        if m.group(1).strip() not in ("", "none")
    ]
    if "No space left on device" in text:
        message = "The disk is full; free some space (torch needs about 1 GB) and try again."
    elif not_found and not listed and (not online or any(s in text for s in NETWORK_SIGNS)):
        message = (
            "Could not reach the package index (no network, or a proxy pip does not know "
            "about). Connect, or set pip's proxy/index (pip config), and try again."
        )
    elif not_found:
        found = f" (found: {listed[-1][:120]})" if listed else ""
        message = (
            f"No {wanted} for this Python and system on the package index{found}, "
            f"{build.label} build; choose another build, or check the versions in "
            "requirements.txt."
        )
    elif "ResolutionImpossible" in text or "conflict" in text.lower():
        causes = [
            ln.strip()
            for ln in lines
            if ln.strip().startswith("The user requested") or " depends on " in ln
        ]
        message = (
            f"pip cannot install {wanted} together with what it must keep (QGIS's numpy "
            "and GDAL, pip's constraints)"
            + (f": {'; '.join(causes[:3])}." if causes else "; see the log.")
        )
    else:
        message = f"pip failed (exit code {code}); see the log for its last lines."
    return MapRefinerError(
        f"Installing the engine failed: {message} Nothing was changed.", details=text[-6000:]
    )
