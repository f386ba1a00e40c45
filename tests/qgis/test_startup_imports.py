"""QGIS start-up never imports torch, and the plugin loads without torch at all.

Both run in a fresh interpreter: in this test process torch is already imported
by other tests, so checking sys.modules here would prove nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
if sys.argv[1] == "block":
    sys.modules["torch"] = None  # as if torch were not installed
from qgis.core import Qgis, QgsApplication
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow
from pytest_qgis.mock_qgis_classes import MockMessageBar
from pytest_qgis.qgis_interface import QgisInterface
app = QgsApplication([], True)
app.initQgis()
window = QMainWindow()
iface = QgisInterface(QgsMapCanvas(window), MockMessageBar(), window)
from map_refiner import classFactory
plugin = classFactory(iface)
plugin.initGui()
report = {"torch_after_start": sys.modules.get("torch") is not None,
          "provider": app.processingRegistry().providerById("map_refiner") is not None}
import builtins, threading, time
real_import = builtins.__import__
def spy(name, *args, **kwargs):  # records the thread that first imports torch
    if name.split(".")[0] == "torch" and "torch_thread" not in report:
        report["torch_thread"] = threading.current_thread().name
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
# what the main thread itself did at a time (its CPU time, ms) and how long it waited
# for it (wall time: also the GIL, which the worker's import holds while the dynamic
# loader maps libtorch)
cpu, wall = [], []
def timed(call):
    start, start_cpu = time.perf_counter(), time.thread_time()
    call()
    cpu.append(1000 * (time.thread_time() - start_cpu))
    wall.append(1000 * (time.perf_counter() - start))
timed(plugin.actions[0].trigger)  # "Map Refiner…"
report["torch_on_open"] = sys.modules.get("torch") is not None
report["errors"] = iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
deadline = time.monotonic() + 90
while QgsApplication.taskManager().countActiveTasks() and time.monotonic() < deadline:
    timed(app.processEvents)  # the task's signals and finished() run here
    time.sleep(0.01)
timed(app.processEvents)
report.update(open_ms=wall[0], longest_cpu_ms=max(cpu), longest_wall_ms=max(wall))
dialog = plugin.controller.dialog
report["device_label"] = dialog.device_label.text() if dialog is not None else None
plugin.unload()
print("REPORT " + json.dumps(report))
"""


def _run(mode: str, home: Path) -> dict:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(home), XDG_DATA_HOME=str(home)
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).parent,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("REPORT ") :])


def test_initgui_does_not_import_torch(tmp_path: Path) -> None:
    report = _run("normal", tmp_path)
    assert report["provider"]
    assert report["torch_after_start"] is False


def test_opening_the_dialog_imports_torch_off_the_main_thread(tmp_path: Path) -> None:
    """The first open used to block QGIS for 2.6-6.8 s importing torch for the device
    line; now a task finds the devices and fills the line in."""
    report = _run("normal", tmp_path)
    assert report["errors"] == []
    assert report["torch_thread"] != "MainThread", report
    assert report["device_label"] and "Looking" not in report["device_label"], report
    # nothing the first open does on the main thread keeps it busy for 200 ms
    assert report["open_ms"] < 200 and report["longest_cpu_ms"] < 200, report


def test_plugin_loads_without_torch_and_says_how_to_install_it(tmp_path: Path) -> None:
    report = _run("block", tmp_path)
    assert report["provider"], "the Processing provider must still register"
    assert len(report["errors"]) == 1
    message = report["errors"][0]
    assert "needs torch" in message
    assert "-m pip install" in message and "torch==" in message
