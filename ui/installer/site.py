"""The plugin-private dependency folder in the QGIS profile, and putting it on sys.path.

``<profile>/python/map_refiner_deps/`` holds ``site-packages/`` (torch,
safetensors and whichever of their pure-Python dependencies QGIS's Python
lacked or had too old) and ``install.json``. When the plugin loads, that one
folder goes first on ``sys.path`` (its ``.pth`` files are not run); it never
holds numpy, GDAL, PyQt or qgis, so it cannot shadow QGIS's own.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)
DEPS_DIRNAME = "map_refiner_deps"
MANIFEST = "install.json"
SITE = "site-packages"
#: Packages QGIS's Python owns; the private folder must never carry them.
PROTECTED = ("numpy", "osgeo", "GDAL", "PyQt5", "PyQt6", "qgis", "sip")


def deps_folder(profile_dir: Path) -> Path:
    return Path(profile_dir) / "python" / DEPS_DIRNAME


def profile_dir() -> Path:
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath())


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def protected_in(site: Path) -> list:
    """Names in ``site`` that would shadow a package QGIS's Python owns."""
    return (
        sorted(p.name for p in site.iterdir() if p.name.split("-")[0].split(".")[0] in PROTECTED)
        if site.is_dir()
        else []
    )


def site_dir(folder: Path) -> Path | None:
    """The usable site-packages of a complete install, else None."""
    site = folder / SITE
    return site if read_manifest(folder) is not None and site.is_dir() else None


def activate(folder: Path) -> Path | None:
    """Put the install's site-packages first on sys.path (once); returns it, or None."""
    site = site_dir(folder)
    if site is None:
        return None
    bad = protected_in(site)
    if bad:
        log.warning(
            "not using %s: it holds %s, which QGIS's own Python provides", site, ", ".join(bad)
        )
        return None
    if str(site) not in sys.path:
        sys.path.insert(0, str(site))
        importlib.invalidate_caches()
    return site


def deactivate(folder: Path) -> None:
    site = str(Path(folder) / SITE)
    while site in sys.path:
        sys.path.remove(site)
    importlib.invalidate_caches()


def loaded_from(folder: Path, module: str = "torch") -> bool:
    """Whether ``module`` is already imported from ``folder`` (then a restart is needed)."""
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None) or ""
    return bool(path) and Path(path).resolve().is_relative_to(Path(folder).resolve())
