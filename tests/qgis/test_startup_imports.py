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
def spy(name, *args, **kwargs):  # the thread that first imports torch, and when it is done
    first = name.split(".")[0] == "torch" and "torch_thread" not in report
    if first:
        report["torch_thread"] = threading.current_thread().name
    module = real_import(name, *args, **kwargs)
    if first:
        report["torch_done"] = time.perf_counter()
    return module
builtins.__import__ = spy
# what the main thread itself did at a time (its CPU time, ms), and the wall time from the
# end of one event-loop pass to the end of the next (ms, at the end): the main thread's
# work plus its waits for the GIL, which the worker's import holds in stretches
cpu, gaps = [], []
last = time.perf_counter()
def timed(call):
    global last
    start_cpu = time.thread_time()
    call()
    cpu.append(1000 * (time.thread_time() - start_cpu))
    now = time.perf_counter()
    gaps.append((1000 * (now - last), now))
    last = now
def open_and_refine():
    plugin.actions[0].trigger()  # "Map Refiner…"
    if layer is not None:  # Refine clicked at once, while the tasks import torch
        dialog = plugin.controller.dialog
        dialog.input_combo.setLayer(layer)
        dialog.output_widget.setFilePath(sys.argv[2] + "/refined.tif")
        dialog.refine_button.click()
layer = None
if sys.argv[1] == "refine":
    import numpy as np
    from osgeo import gdal, osr
    from qgis.core import QgsProject, QgsRasterLayer
    ds = gdal.GetDriverByName("GTiff").Create(sys.argv[2] + "/scene.tif", 64, 64, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((620000.0, 0.6, 0.0, 3350000.0, 0.0, -0.6))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds.SetProjection(srs.ExportToWkt())
    for band in range(1, 4):
        ds.GetRasterBand(band).WriteArray(np.random.default_rng(band).integers(0, 255, (64, 64)))
    ds = None
    layer = QgsRasterLayer(sys.argv[2] + "/scene.tif", "scene")
    QgsProject.instance().addMapLayer(layer)
last = time.perf_counter()
timed(open_and_refine)
open_ms = gaps[0][0]
report["torch_on_open"] = sys.modules.get("torch") is not None
report["errors"] = iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
deadline = time.monotonic() + 90
while QgsApplication.taskManager().countActiveTasks() and time.monotonic() < deadline:
    time.sleep(0.005)  # the GIL is free for the worker meanwhile, as in QGIS's idle loop
    timed(app.processEvents)  # the task's signals and finished() run here
timed(app.processEvents)
done = report.get("torch_done", 0.0)
during = [g for g, t in gaps if t - g / 1000 <= done]  # the passes begun before torch was in
report["longest_wait_during_import_ms"] = max(during, default=0.0)
if layer is not None:
    report["layers"] = [lyr.name() for lyr in QgsProject.instance().mapLayers().values()]
report.update(open_ms=open_ms, longest_cpu_ms=max(cpu))
dialog = plugin.controller.dialog
report["device_label"] = dialog.device_label.text() if dialog is not None else None
import gc
report.update(frozen=gc.get_freeze_count(), collecting=gc.isenabled())
plugin.unload()
print("REPORT " + json.dumps(report))
"""


def _run(mode: str, home: Path) -> dict:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(home), XDG_DATA_HOME=str(home)
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(home)],
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
    # nor does the main thread wait long for the GIL while the task imports torch: it
    # waited 0.3-0.9 s while the import's dlopen of libtorch_cpu held the GIL, then
    # 143-210 ms while full garbage collections over QGIS's and torch's objects did
    # (40-51 ms since the import pauses them, 5 runs)
    assert report["longest_wait_during_import_ms"] < 150, report
    # the import ran with collection paused, which is on again, and torch's objects are
    # out of every later collection
    assert report["collecting"] is True and report["frozen"] > 100_000, report


def test_refine_clicked_while_torch_loads_never_holds_the_main_thread(tmp_path: Path) -> None:
    """Refine clicked as soon as the dialog opens: the click builds the job without torch,
    the tasks import it, and no event-loop pass until torch is imported takes 300 ms."""
    report = _run("refine", tmp_path)
    assert report["errors"] == []
    assert report["torch_thread"] != "MainThread", report
    # the dialog's first choice lets the image pick the bundled model: this synthetic
    # scene looks like none of the default's training areas, so the general one runs
    assert "scene — refined by general (buildings, new sensors) (5 it.)" in report["layers"], report
    # the open and the click take 71-113 ms of wall time (idle machine, 8 runs), and that
    # first pass is the longest until torch is in (97-140 ms); the bound keeps twice that
    # (a CI run is slower), far under the 1.4-1.6 s of a click that imported torch itself
    assert report["open_ms"] < 300, report
    assert report["longest_wait_during_import_ms"] < 300, report


def test_plugin_loads_without_torch_and_says_how_to_install_it(tmp_path: Path) -> None:
    report = _run("block", tmp_path)
    assert report["provider"], "the Processing provider must still register"
    assert len(report["errors"]) == 1
    message = report["errors"][0]
    assert "needs torch" in message
    assert "-m pip install" in message and "torch==" in message
