"""The installer for real: pip into a fresh QGIS profile for QGIS's own Python (which
has no torch here), then the real ``qgis_process`` refines a raster with it; failed
and cancelled installs leave the profile and QGIS's Python as they were.

Installing needs the pinned torch wheel without downloading 200 MB: a local file
in pip's find-links (this machine has /opt/wheels), or MAP_REFINER_TEST_DOWNLOAD=1.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from qgis.core import Qgis

from map_refiner.dev.desktop.qgis_profile import (
    enable_plugin,
    install_plugin,
    qgis_env,
    qgis_process_command,
)
from map_refiner.dev.package_zip import build_zip
from map_refiner.ui.installer.deps import REQUIREMENTS, pinned_requirements
from map_refiner.ui.installer.flow import InstallerFlow
from map_refiner.ui.installer.site import MANIFEST, SITE, deps_folder

QGIS_PYTHON = "/usr/bin/python3"  # the interpreter Debian's QGIS embeds
QGIS_PROCESS = qgis_process_command()


def _pip_find_links() -> list[Path]:
    found = [os.environ.get("PIP_FIND_LINKS", "")]
    proc = subprocess.run(
        [QGIS_PYTHON, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    found += [
        line.split("=", 1)[1].strip("'\" ")
        for line in proc.stdout.splitlines()
        if "find-links" in line
    ]
    return [Path(p) for entry in found for p in entry.split() if p]


def _local_torch() -> bool:
    version = pinned_requirements()["torch"].split("==")[1]
    return any(
        folder.is_dir() and any(folder.glob(f"torch-{version}*.whl"))
        for folder in _pip_find_links()
    )


pytestmark = [
    pytest.mark.skipif(not Path(QGIS_PYTHON).exists(), reason=f"no {QGIS_PYTHON}"),
    pytest.mark.skipif(
        not (_local_torch() or os.environ.get("MAP_REFINER_TEST_DOWNLOAD")),
        reason="no local torch wheel in pip's find-links; set "
        "MAP_REFINER_TEST_DOWNLOAD=1 to download it",
    ),
]


def _system_has_torch() -> bool:
    env = dict(os.environ, PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    return (
        subprocess.run([QGIS_PYTHON, "-c", "import torch"], env=env, capture_output=True).returncode
        == 0
    )


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh QGIS profile base with the plugin's zip installed and enabled."""
    base = tmp_path_factory.mktemp("fresh_profile")
    zip_path = tmp_path_factory.mktemp("zip") / "map_refiner.zip"
    build_zip(zip_path)
    install_plugin(base, zip_path)
    enable_plugin(base)
    return base


def _deps(profile: Path) -> Path:
    return deps_folder(profile / "profiles" / "default")


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and modification time, every folder's presence (a staging folder
    made and removed inside a folder changes only that folder's own time)."""
    files = {}
    for folder in folders:
        if folder.exists():
            for path in folder.rglob("*"):
                stat = path.lstat()
                files[str(path)] = (0, 0) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return files


def _user_site() -> Path:
    out = subprocess.run([QGIS_PYTHON, "-m", "site", "--user-site"], capture_output=True, text=True)
    return Path(out.stdout.strip())


def _flow(profile: Path, qgis_iface, build: str = "cpu") -> InstallerFlow:  # noqa: ANN001
    flow = InstallerFlow(qgis_iface.messageBar(), None, _deps(profile), QGIS_PYTHON)
    dialog = flow.show()
    dialog.build_combo.setCurrentIndex(dialog.build_combo.findData(build))
    return flow


def _run(
    flow: InstallerFlow,
    wait: Callable[..., None],
    timeout: float = 900.0,
    cancel_when: Callable[[str], bool] = lambda _text: False,
) -> str:
    """Click Install, wait for the task (cancelling when asked); the dialog's last message."""
    flow.dialog.install_button.click()

    def done() -> bool:
        if flow.task is not None and cancel_when(flow.dialog.log_view.toPlainText()):
            flow.cancel()
        return flow.task is None

    wait(done, timeout)
    item = flow.dialog.message_bar.currentItem()
    return item.text() if item else ""


def _qgis_process(profile: Path, args: list[str]) -> subprocess.CompletedProcess:
    """qgis_process on the profile, QGIS's Python seeing no torch but the profile's."""
    env = qgis_env(profile)
    env.pop("PYTHONPATH", None)
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONNOUSERSITE="1")
    return subprocess.run(
        [QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_failed_installs_leave_everything_as_it_was(
    profile,
    qgis_iface,
    wait_until,  # noqa: ANN001
    tmp_path,
) -> None:
    before = _snapshot(profile, _user_site())
    flow = _flow(profile, qgis_iface)
    wrong = tmp_path / "requirements.txt"
    wrong.write_text("torch==0.0.1\nsafetensors==0.7.0\n")
    flow.dialog.requirements = wrong
    text = _run(flow, wait_until, 300)
    assert text.startswith("Installing the engine failed:") and "torch==0.0.1+cpu" in text
    assert "Nothing was changed" in text
    assert "ERROR: " in flow.dialog.log_view.toPlainText()
    assert _snapshot(profile, _user_site()) == before

    # No network: pip's own configuration (local wheels) off, every proxy unreachable.
    flow.dialog.requirements = REQUIREMENTS
    flow.dialog.pip_env = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "5",
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    text = _run(flow, wait_until, 300)
    assert "Could not reach the package index" in text and "Nothing was changed" in text
    assert _snapshot(profile, _user_site()) == before
    assert any(
        "Could not reach" in m
        for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    )


def test_cancel_mid_install_changes_nothing(profile, qgis_iface, wait_until) -> None:  # noqa: ANN001
    before = _snapshot(profile, _user_site())
    flow = _flow(profile, qgis_iface)
    text = _run(
        flow, wait_until, 600, cancel_when=lambda log: "Processing" in log or "Collecting" in log
    )
    assert text == "Installation cancelled; nothing was changed."
    assert _snapshot(profile, _user_site()) == before
    assert not _deps(profile).exists()
    assert not list(_deps(profile).parent.glob(".map_refiner_deps*"))


@pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed")
def test_fresh_profile_installs_then_refines(
    profile,
    qgis_iface,
    wait_until,  # noqa: ANN001
    austin_rgb,
    tiny_model,
) -> None:
    if _system_has_torch():
        pytest.skip("QGIS's Python has torch already; the fresh-profile claim needs it absent")
    out = profile / "refined.tif"
    args = [
        "--json",
        "run",
        "map_refiner:refine",
        "--",
        f"INPUT={austin_rgb}",
        f"MODEL={tiny_model}",
        "ITERATIONS=2",
        f"OUTPUT={out}",
    ]
    before = _qgis_process(profile, args)
    assert before.returncode != 0 and "needs torch" in before.stdout + before.stderr

    flow = _flow(profile, qgis_iface)
    text = _run(flow, wait_until)
    assert text.startswith(
        "Engine installed: torch 2.13.0+cpu, safetensors 0.7.0 (cpu build, checked)"
    ), text
    folder = _deps(profile)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["packages"] == {"torch": "2.13.0+cpu", "safetensors": "0.7.0"}
    assert manifest["verify"]["conv"] == [45.0, 54.0, 81.0, 90.0]
    assert manifest["verify"]["numpy_file"].startswith("/usr/lib/python3/dist-packages/")
    site = folder / SITE
    assert (site / "torch").is_dir() and (site / "safetensors").is_dir()
    assert not [p for p in site.iterdir() if p.name.lower().startswith(("numpy", "osgeo", "gdal"))]
    assert flow.dialog.install_button.text() == "Repair"
    assert "Successfully installed" in flow.dialog.log_view.toPlainText()

    after = _qgis_process(profile, args)
    assert after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]
    assert json.loads(after.stdout[after.stdout.index("{") :])["results"]["OUTPUT"] == str(out)
    assert out.exists()

    flow.remove()
    assert not folder.exists() and flow.dialog.install_button.text() == "Install"
