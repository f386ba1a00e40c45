"""Runs *inside* the QGIS desktop (``qgis --code``) for
``dev/benchmarks/event_loop_probe.py --desktop``: opens the Map Refiner dialog on the
Austin tile and records when the device task's torch import starts and ends; no
Python of this script runs meanwhile (the next step comes 20 s later), so what the
probe sees on QGIS's main thread is QGIS, its plugins and the dialog.
MAP_REFINER_OLD=1 turns the plugin's load_torch_library off, as before it existed.
"""

import os
import time

from map_refiner.dev.desktop.steps import SCREEN, controller, finish, open_image, status, step
from map_refiner.ui.dialog import device_info, dialog


def open_dialog():
    if os.environ.get("MAP_REFINER_OLD") == "1":
        device_info.load_torch_library = lambda: None
    summary = dialog.device_summary

    def timed_summary():
        status["import_start"] = time.time()
        text = summary()
        status["import_end"] = time.time()
        return text

    dialog.device_summary = timed_summary
    status["open"] = time.time()
    controller().show_dialog()
    box = controller().dialog
    box.move(SCREEN[0] - box.width() - 40, 90)
    step("done", 20000, done)


def done():
    status["device_line"] = controller().dialog.device_label.text()
    finish()


step("open image", 3000, lambda: open_image("open dialog", open_dialog))
