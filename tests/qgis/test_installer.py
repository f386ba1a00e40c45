"""The engine installer's parts: build choice, pip discovery, failure messages, the
verification's checks, the private folder on sys.path, the dialog and the offer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.ui.installer import deps
from map_refiner.ui.installer.builds import build, choose_build, nvidia_driver
from map_refiner.ui.installer.check import EXPECTED_CONV, check_verify_output, classify_pip_failure
from map_refiner.ui.installer.dialog import InstallerDialog, engine_status
from map_refiner.ui.installer.flow import OFFER_TEXT
from map_refiner.ui.installer.pip import pip_command, run_logged
from map_refiner.ui.installer.run import InstallPlan, _swap, uninstall
from map_refiner.ui.installer.site import (
    MANIFEST,
    SITE,
    activate,
    deactivate,
    deps_folder,
    loaded_from,
    protected_in,
)
from map_refiner.ui.settings import load_install_build, save_install_build

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.parametrize(
    "driver, key",
    [
        (None, "cpu"),
        ("470.256.02", "cpu"),
        ("535.183.01", "cu126"),
        ("570.86.10", "cu128"),
        ("580.65.06", "cu130"),
    ],
)
def test_automatic_build_follows_the_nvidia_driver(driver, key) -> None:  # noqa: ANN001
    choice = choose_build("auto", driver)
    assert choice.key == key
    assert choice.index_url == f"https://download.pytorch.org/whl/{key}"
    assert (driver or "no NVIDIA driver") in choice.reason


def test_a_chosen_build_overrides_and_pins_the_local_label() -> None:
    cuda = choose_build("cu128", "470.1")
    assert cuda.key == "cu128" and cuda.reason == "chosen by you"
    assert cuda.torch_spec("torch==2.13.0") == "torch==2.13.0+cu128"
    assert build("cpu").torch_spec("torch==2.13.0") == "torch==2.13.0+cpu"
    with pytest.raises(ValueError):
        build("rocm")


def test_this_machine_has_no_nvidia_driver() -> None:
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("an NVIDIA driver is installed here")
    assert nvidia_driver() is None
    assert choose_build().key == "cpu"


def test_pip_is_found_or_run_from_a_wheel(tmp_path: Path) -> None:
    if subprocess.run([SYSTEM_PYTHON, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("QGIS's Python has no pip here")
    assert pip_command(SYSTEM_PYTHON) == [SYSTEM_PYTHON, "-m", "pip"]
    bare = tmp_path / "bare"  # a Python that cannot import pip at all
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = str(bare / "bin" / "python")
    command = pip_command(python)
    assert command[0] == python and command[1].endswith(".whl/pip")
    out = subprocess.run(command + ["--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("pip ")


def test_run_logged_streams_lines_and_kills_on_cancel() -> None:
    lines: list = []
    code, out = run_logged(
        [sys.executable, "-c", "print('one'); print('two')"], lines.append, lambda: False
    )
    assert code == 0 and out == lines == ["one", "two"]
    started = time.monotonic()
    with pytest.raises(CancelledError, match="nothing was changed"):
        run_logged(
            [sys.executable, "-c", "import time; print('go', flush=True); time.sleep(60)"],
            lambda _line: None,
            lambda: time.monotonic() - started > 1.0,
        )
    assert time.monotonic() - started < 10


def test_pip_failures_become_one_message_each() -> None:
    cpu = build("cpu")
    specs = ["torch==0.0.1+cpu", "safetensors==0.7.0"]
    version = classify_pip_failure(
        1,
        [
            "ERROR: Could not find a version that satisfies the requirement torch==0.0.1+cpu "
            "(from versions: 2.13.0+cpu)",
            "ERROR: No matching distribution found for torch",
        ],
        specs,
        cpu,
        online=True,
    )
    assert "No torch==0.0.1+cpu" in version.message and "found: 2.13.0+cpu" in version.message
    offline = classify_pip_failure(
        1,
        [
            "ERROR: Could not find a version that satisfies the requirement torch==2.13.0+cpu "
            "(from versions: none)",
            "ERROR: No matching distribution found for torch",
        ],
        specs,
        cpu,
        online=False,
    )
    assert "Could not reach the package index" in offline.message
    assert "Nothing was changed" in offline.message and "from versions" in offline.details
    conflict = classify_pip_failure(
        1,
        [
            "The conflict is caused by:",
            "    The user requested torch==0.0.1+cpu",
            "    The user requested (constraint) torch<=2.14.1",
            "ERROR: ResolutionImpossible: ...",
        ],
        specs,
        cpu,
    )
    assert "pip cannot install torch==0.0.1+cpu" in conflict.message
    assert "The user requested (constraint) torch<=2.14.1" in conflict.message
    disk = classify_pip_failure(1, ["OSError: [Errno 28] No space left on device"], specs, cpu)
    assert "disk is full" in disk.message
    other = classify_pip_failure(2, ["Traceback ..."], specs, cpu)
    assert "exit code 2" in other.message


def _report(site: Path, **changes) -> list:  # noqa: ANN003
    report = {
        "torch": "2.13.0+cpu",
        "torch_file": str(site / "torch" / "__init__.py"),
        "safetensors": "0.7.0",
        "conv": EXPECTED_CONV,
        "cuda": False,
        "cuda_conv": None,
        "numpy": "1.24.2",
        "numpy_file": "/usr/lib/python3/dist-packages/numpy/__init__.py",
        "gdal_file": None,
        "python": "3.11.2",
    }
    report.update(changes)
    return ["some output", "VERIFY " + json.dumps(report)]


def test_verification_accepts_only_torch_from_the_new_folder(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    assert check_verify_output(0, _report(site), site)["torch"] == "2.13.0+cpu"
    with pytest.raises(MapRefinerError, match="not from the new folder"):
        check_verify_output(0, _report(site, torch_file="/usr/lib/torch/__init__.py"), site)
    with pytest.raises(MapRefinerError, match="replace QGIS's numpy"):
        check_verify_output(0, _report(site, numpy_file=str(site / "numpy" / "__init__.py")), site)
    with pytest.raises(MapRefinerError, match="wrong convolution"):
        check_verify_output(0, _report(site, conv=[0.0, 0.0, 0.0, 0.0]), site)
    with pytest.raises(MapRefinerError, match="does not work in QGIS's Python"):
        check_verify_output(1, ["ImportError: libtorch_cpu.so: cannot open shared object"], site)


def _fake_install(folder: Path, extra: str = "") -> Path:
    site = folder / SITE
    (site / "fake_engine_pkg").mkdir(parents=True)
    (site / "fake_engine_pkg" / "__init__.py").write_text("VALUE = 7\n")
    if extra:
        (site / extra).mkdir()
    (folder / MANIFEST).write_text(
        json.dumps(
            {
                "packages": {"torch": "2.13.0+cpu", "safetensors": "0.7.0"},
                "build": "cpu",
                "installed": "today",
            }
        )
    )
    return site


def test_the_private_folder_goes_first_on_sys_path(tmp_path: Path) -> None:
    folder = deps_folder(tmp_path)
    assert activate(folder) is None  # nothing installed: nothing added
    site = _fake_install(folder)
    try:
        assert activate(folder) == site and sys.path[0] == str(site)
        assert activate(folder) == site and sys.path.count(str(site)) == 1
        import fake_engine_pkg

        assert fake_engine_pkg.VALUE == 7 and loaded_from(folder, "fake_engine_pkg")
        assert not loaded_from(folder, "json")
    finally:
        deactivate(folder)
        sys.modules.pop("fake_engine_pkg", None)
    assert str(site) not in sys.path


def test_a_folder_holding_numpy_is_never_activated(tmp_path: Path) -> None:
    folder = deps_folder(tmp_path)
    site = _fake_install(folder, extra="numpy")
    assert protected_in(site) == ["numpy"]
    assert activate(folder) is None and str(site) not in sys.path


def test_swap_and_uninstall_replace_the_folder_whole(tmp_path: Path) -> None:
    folder = deps_folder(tmp_path)
    _fake_install(folder)
    staging = folder.with_name(".new")
    (staging / SITE).mkdir(parents=True)
    (staging / MANIFEST).write_text("{}")
    _swap(staging, folder)
    assert not staging.exists() and (folder / MANIFEST).read_text() == "{}"
    assert not (folder / SITE / "fake_engine_pkg").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["map_refiner_deps"]
    with pytest.raises(MapRefinerError, match="previous install is unchanged"):
        _swap(tmp_path / "missing-staging", folder)
    assert (folder / MANIFEST).exists()
    assert uninstall(folder) and not folder.exists()
    assert not uninstall(folder)


def test_install_plan_reads_the_pins_from_requirements(tmp_path: Path) -> None:
    plan = InstallPlan(SYSTEM_PYTHON, tmp_path / "deps", build("cpu"))
    pins = deps.pinned_requirements()
    assert plan.specs() == [pins["torch"] + "+cpu", pins["safetensors"]]
    req = tmp_path / "requirements.txt"
    req.write_text("safetensors==0.7.0\n")
    with pytest.raises(MapRefinerError, match="pins no version of torch"):
        InstallPlan(SYSTEM_PYTHON, tmp_path, build("cpu"), requirements=req).specs()


def test_installer_dialog_shows_status_build_and_reason(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(deps, "missing_modules", lambda modules=(): ["torch", "safetensors"])
    monkeypatch.setattr(
        "map_refiner.ui.installer.dialog.missing_modules",
        lambda modules=(): ["torch", "safetensors"],
    )
    folder = deps_folder(tmp_path)
    dialog = InstallerDialog(SYSTEM_PYTHON, folder, "auto", driver=None)
    assert "Not installed" in dialog.status_label.text()
    assert dialog.install_button.text() == "Install" and not dialog.uninstall_button.isEnabled()
    assert dialog.build_combo.currentText() == "Automatic: CPU"
    assert "no NVIDIA driver found" in dialog.reason_label.text()
    assert "torch==2.13.0" in dialog.versions_label.text()
    dialog.build_combo.setCurrentIndex(dialog.build_combo.findData("cu128"))
    assert dialog.reason_label.text().startswith("Your choice: CUDA 12.8")
    plan = dialog.plan()
    assert (plan.python, plan.folder, plan.build.key) == (SYSTEM_PYTHON, folder, "cu128")
    emitted = []
    dialog.install_requested.connect(emitted.append)
    dialog.install_button.click()
    assert emitted and emitted[0].build.key == "cu128"
    _fake_install(folder)
    dialog.refresh()
    assert dialog.install_button.text() == "Repair" and dialog.uninstall_button.isEnabled()
    assert engine_status(folder).startswith("Installed by Map Refiner: torch 2.13.0+cpu")


def test_the_chosen_build_is_remembered() -> None:
    assert load_install_build() == "auto"
    save_install_build("cu126")
    assert load_install_build() == "cu126"
    save_install_build("nonsense")
    assert load_install_build() == "auto"


def test_missing_torch_offers_the_installer(plugin, qgis_iface, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(deps, "missing_modules", lambda modules=(): ["torch"])
    bar = QgsMessageBar()
    monkeypatch.setattr(qgis_iface, "messageBar", lambda: bar)
    plugin.controller.show_dialog()
    item = bar.currentItem()
    assert "needs torch" in item.text() and "Install engine dependencies" in item.text()
    button = item.widget()
    assert isinstance(button, QPushButton) and button.text() == OFFER_TEXT
    button.click()
    dialog = plugin.controller.installer.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.folder.name == "map_refiner_deps"


def test_the_menu_action_opens_the_installer(plugin) -> None:  # noqa: ANN001
    action = [a for a in plugin.actions if a.text() == "Install engine dependencies…"][0]
    action.trigger()
    assert plugin.controller.installer.dialog.isVisible()


def test_a_successful_install_takes_the_needs_torch_message_away(
    plugin, qgis_iface, monkeypatch, tmp_path: Path
) -> None:  # noqa: ANN001
    """It used to come back and stay although torch worked."""
    from map_refiner.ui.installer import flow as flow_module
    from map_refiner.ui.installer.run import InstallResult

    monkeypatch.setattr(deps, "missing_modules", lambda modules=(): ["torch"])
    bar = QgsMessageBar()
    monkeypatch.setattr(qgis_iface, "messageBar", lambda: bar)
    plugin.controller.show_dialog()
    assert any("needs torch" in i.text() for i in bar.items())
    installer = plugin.controller.open_installer()
    monkeypatch.setattr(flow_module, "activate", lambda folder: None)
    monkeypatch.setattr(flow_module, "loaded_from", lambda folder: False)
    result = InstallResult(tmp_path, {"torch": "2.13.0", "safetensors": "0.4"}, "cpu", 3.0, {})
    installer._done(None, result)
    texts = [i.text() for i in bar.items()]
    assert not any("needs torch" in t for t in texts), texts
    assert any("Engine installed" in t for t in texts), texts
