"""What the desktop sessions share (dev/desktop/session.py and
dev/desktop/engine_session.py, run *inside* QGIS by ``qgis --code``).

The launcher passes everything through the environment: where screenshots go,
the image to open, the project file and the screen size. Steps run from QTimer
callbacks so QGIS paints between them; an exception in a step ends the session
with its traceback in status.json.
"""

import json
import os
import subprocess
import time
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer

SHOTS = Path(os.environ["MAP_REFINER_SHOTS"])
IMAGE = os.environ["MAP_REFINER_IMAGE"]
PROJECT = Path(os.environ["MAP_REFINER_PROJECT"])
SCREEN = [int(v) for v in os.environ.get("MAP_REFINER_SCREEN", "1440x900").split("x")]
status = {"steps": [], "shots": []}


def finish(error=None):
    if error:
        status["error"] = error
    (SHOTS / "status.json").write_text(json.dumps(status, indent=2))
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(500, QgsApplication.instance().quit)


def step(name, delay_ms, func):
    def run():
        try:
            status["steps"].append(name)
            func()
        except Exception:  # noqa: BLE001 - reported in status.json, then QGIS quits
            finish(traceback.format_exc())

    QTimer.singleShot(delay_ms, run)


def settle_canvas(timeout_s=20.0):
    """Redraw the map canvas and wait until it is drawn: a shot right after layers are
    added or removed would otherwise show the canvas's previous picture."""
    canvas = qgis.utils.iface.mapCanvas()
    canvas.refresh()
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        QgsApplication.processEvents()
        if time.monotonic() - start > 0.5 and not canvas.isDrawing():
            break
        time.sleep(0.05)
    QgsApplication.processEvents()


def shoot(name):
    settle_canvas()
    path = SHOTS / f"{name}.png"
    subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=60)
    status["shots"].append(path.name)


def controller():
    return qgis.utils.plugins["map_refiner"].controller


def after_device_line(then, tries=60):
    """``then`` once the dialog's device task has filled in its line (a shot then shows
    the devices, not "Looking for devices…"), or after 30 s."""
    if "Looking" in controller().dialog.device_label.text() and tries > 0:
        step("wait for devices", 500, lambda: after_device_line(then, tries - 1))
        return
    status["device_line"] = controller().dialog.device_label.text()
    then()


def open_image(then_name, then):
    """Full-screen window, the image as the active layer, the project saved
    (outputs go beside it); then ``then`` as the next step."""
    iface = qgis.utils.iface
    iface.mainWindow().setGeometry(0, 0, *SCREEN)
    layer = QgsRasterLayer(IMAGE, Path(IMAGE).stem)
    QgsProject.instance().addMapLayer(layer)
    PROJECT.parent.mkdir(parents=True, exist_ok=True)
    QgsProject.instance().write(str(PROJECT))
    iface.setActiveLayer(layer)
    iface.zoomToActiveLayer()
    step(then_name, 2500, then)
