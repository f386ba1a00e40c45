"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session dropped``: a round whose fit the flip check drops, taken anyway.

Refine the image with the chosen model; add the correction polygons
(MAP_REFINER_CORRECTIONS: a GeoPackage with a ``class`` field, e.g. the study's
largest-errors polygons from ``study --keep-corrections``) and choose them in the dialog;
Fine-tune; *Use dropped fit* when the round offers it; Refine. Shots: dropped_1_round (the
round's line, its tooltip and message), dropped_2_taken (the dropped fit's map).
status.json says what happened.
"""

import os
from pathlib import Path

from qgis.core import QgsProject, QgsVectorLayer

from map_refiner.dev.desktop.dialog_shots import (
    arrange_panels,
    dialog,
    fit_map,
    message,
    names,
    place_dialog,
    rounds_tip,
    shot,
    wait,
)
from map_refiner.dev.desktop.steps import IMAGE, controller, finish, open_image, status, step

CORRECTIONS = os.environ.get("MAP_REFINER_CORRECTIONS", "")
MODEL = os.environ.get("MAP_REFINER_MODEL", "")  # --model (empty: the bundled one)


def rounds():
    lines = dialog().labels.rounds_list
    return [lines.item(i).text() for i in range(lines.count())]


def start():
    if not CORRECTIONS:
        finish("--corrections is needed for the dropped session")
        return
    arrange_panels()
    controller().show_dialog()
    if MODEL:
        dialog().model.set_model_path(MODEL)
    place_dialog()
    step("layout", 1000, refine_0)


def refine_0():
    fit_map()
    dialog().refine_button.click()
    wait("refine 0", refined_0)


def refined_0():
    layer = QgsVectorLayer(CORRECTIONS, f"{Path(IMAGE).stem} — corrections", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dialog().labels.set_layer(layer, "class")
    dialog().labels.set_mode("sparse")
    dialog().labels.finetune_button.click()
    wait("round 1", tuned_1)


def tuned_1():
    status["round_1"] = message()
    status["rounds"] = rounds()
    offered = dialog().labels.dropped_fit_button.isEnabled()
    status["dropped_fit_offered"] = offered
    shot("dropped_1_round", lambda: rounds_tip(0))
    if not offered:
        finish("the round's fit was not dropped by the flip check: nothing to take")
        return
    dialog().labels.dropped_fit_button.click()
    step("take the dropped fit", 1500, taken)


def taken():
    status["taken_message"] = message()
    status["model"] = str(dialog().model.model_path())
    dialog().suggest_output()
    dialog().refine_button.click()
    wait("refine with the dropped fit", refined_1)


def refined_1():
    status["rounds_after"] = rounds()
    status["layers"] = names()
    shot("dropped_2_taken", lambda: rounds_tip(0))
    finish()


step("open image", 3000, lambda: open_image("start", start))
