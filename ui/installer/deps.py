"""Checking for the engine's pip dependencies without importing them.

QGIS ships GDAL and numpy but not torch; the plugin must load without it, offer
its installer (ui/installer/) and tell the user the exact manual command too.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ...engine.errors import MapRefinerError

REQUIRED_MODULES = ("torch", "safetensors")
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def missing_modules(modules: Sequence[str] = REQUIRED_MODULES) -> list[str]:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def pinned_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{name: "name==version"}`` from the plugin's requirements.txt."""
    pins: dict[str, str] = {}
    if not path.exists():
        return pins
    for line in path.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec and not spec.startswith("-"):
            name = spec.split("==")[0].split(">=")[0].strip().lower()
            pins[name] = spec
    return pins


def python_command() -> str:
    """The interpreter QGIS embeds, found from its prefix: inside QGIS, sys.executable
    is the QGIS binary or whatever python3 comes first on PATH."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.prefix)
    for candidate in (
        prefix / "bin" / f"python{version}",
        prefix / "bin" / "python3",
        prefix / "python.exe",
        prefix / "python3.exe",
    ):
        if candidate.exists():
            return str(candidate)
    return "python" if os.name == "nt" else "python3"


def install_command(missing: Sequence[str]) -> str:
    pins = pinned_requirements()
    specs = " ".join(pins.get(name, name) for name in missing)
    if sys.prefix != sys.base_prefix:  # a virtual environment: no --user there
        return f"{python_command()} -m pip install {specs}"
    flags = "--user"
    if (Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED").exists():
        flags += " --break-system-packages"  # Debian 12+/Ubuntu 23.04+ (PEP 668)
    return f"{python_command()} -m pip install {flags} {specs}"


class MissingDependencies(MapRefinerError):
    """torch or safetensors cannot be imported; the plugin offers its installer."""


def check_dependencies() -> None:
    """Raise one actionable MissingDependencies when torch or safetensors is missing."""
    missing = missing_modules()
    if not missing:
        return
    command = install_command(missing)
    raise MissingDependencies(
        f"Map Refiner needs {' and '.join(missing)}, which QGIS's Python cannot import. "
        "Use Raster ▸ Map Refiner ▸ Install engine dependencies… (no restart needed), or "
        f"install with: {command} — then restart QGIS.",
        details=f"QGIS's Python {sys.version.split()[0]} in {sys.prefix}",
    )
