"""A throwaway QGIS profile with Map Refiner installed and enabled.

Used by the qgis_process test and the desktop screenshot script; the same
steps, by hand, are in docs/qgis.md. Point QGIS at it with
``QGIS_CUSTOM_CONFIG_PATH=<base>`` (qgis, qgis_process) or ``qgis --profiles-path <base>``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

from ..package_zip import ROOT

# First-run dialogs and news feeds that would cover the window in screenshots.
QUIET_DESKTOP = {
    "qgis": {"checkVersion": "false", "showTips": "false", "allowVersionCheck": "false"},
    "core": {"NewsFeed\\httpsfeedqgisorg\\disabled": "true"},
    "UI": {"UI\\hidebrowser": "false"},
}


def plugins_dir(base: Path) -> Path:
    return base / "profiles" / "default" / "python" / "plugins"


def install_plugin(base: Path, zip_path: Path | None = None) -> Path:
    """Extract ``zip_path`` into the profile, or link the working tree when None."""
    target = plugins_dir(base) / "map_refiner"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    if zip_path is None:
        target.symlink_to(ROOT, target_is_directory=True)
    else:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(target.parent)
    return target


def enable_plugin(base: Path, extra: dict[str, dict[str, str]] | None = None) -> Path:
    """What ``qgis_process plugins enable map_refiner`` writes, plus ``extra`` sections."""
    ini = base / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    sections = {"PythonPlugins": {"map_refiner": "true"}, **(extra or {})}
    ini.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
            for name, values in sections.items()
        )
    )
    return ini


def torch_site_packages() -> Path | None:
    """The folder holding torch for this interpreter (QGIS's own Python may lack it)."""
    spec = importlib.util.find_spec("torch")
    return Path(spec.origin).parent.parent if spec and spec.origin else None


def qgis_env(base: Path) -> dict[str, str]:
    """Environment for qgis / qgis_process using ``base`` and this venv's torch."""
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(base))
    site = torch_site_packages()
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def qgis_process_command() -> str | None:
    """Debian's ``qgis_process`` wrapper passes --noversioncheck, which the binary
    rejects; call ``qgis_process.bin`` directly when it is there."""
    for name in ("qgis_process.bin", "qgis_process"):
        found = shutil.which(name)
        if found:
            return found
    return None
