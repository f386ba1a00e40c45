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
plugin.actions[0].trigger()  # "Map Refiner…"
report["errors"] = iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
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


def test_plugin_loads_without_torch_and_says_how_to_install_it(tmp_path: Path) -> None:
    report = _run("block", tmp_path)
    assert report["provider"], "the Processing provider must still register"
    assert len(report["errors"]) == 1
    message = report["errors"][0]
    assert "needs torch" in message
    assert "-m pip install" in message and "torch==" in message
