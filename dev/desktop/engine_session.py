"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/engine_shots.py.

QGIS's Python has no torch: the Map Refiner action offers the installer; this
script clicks through it (CPU build), then refines the image with the bundled
model, moves the iteration slider and shows the uncertainty layer, taking
screenshots of the whole X screen with ImageMagick. Steps run from QTimer
callbacks so QGIS paints between them. Writes status.json when done.
"""

import sys

import qgis.utils
from qgis.core import QgsProject

from map_refiner.dev.desktop.steps import (
    SCREEN,
    controller,
    finish,
    open_image,
    shoot,
    status,
    step,
)

status["torch_at_start"] = "torch" in sys.modules
iface = qgis.utils.iface


def ask_for_dialog():
    controller().show_dialog()  # no torch: a message with an install button
    item = iface.messageBar().currentItem()
    status["offer"] = item.text() if item else None
    step("offer screenshot", 1200, offer_shot)


def offer_shot():
    shoot("installer_offer")
    iface.messageBar().currentItem().widget().click()
    dialog = controller().installer.dialog
    dialog.resize(880, 640)
    dialog.move(SCREEN[0] // 2 - 440, 120)
    status["build"] = dialog.reason_label.text()
    step("installer screenshot", 1200, installer_shot)


def installer_shot():
    shoot("installer_dialog")
    controller().installer.dialog.install_button.click()
    step("progress screenshot", 12000, progress_shot)


def progress_shot():
    shoot("installer_progress")
    step("wait for install", 1000, wait_for_install)


def wait_for_install():
    if controller().installer.task is not None:
        step("wait for install", 1000, wait_for_install)
        return
    dialog = controller().installer.dialog
    item = dialog.message_bar.currentItem()
    status["install_message"] = item.text() if item else None
    dialog.log_view.verticalScrollBar().setValue(dialog.log_view.verticalScrollBar().maximum())
    step("installed screenshot", 1500, installed_shot)


def installed_shot():
    shoot("installer_done")
    controller().installer.dialog.hide()
    iface.messageBar().clearWidgets()
    controller().show_dialog()  # the same session: no restart
    dialog = controller().dialog
    dialog.move(SCREEN[0] - dialog.width() - 40, 90)
    dialog.refine_button.click()
    step("wait for refine", 1000, wait_for_refine)


def wait_for_refine():
    flow = controller().iterations
    if controller().tasks or flow is None or flow.task is not None or flow.result is None:
        step("wait for refine", 1000, wait_for_refine)
        return
    controller().dialog.hide()
    status["torch_file"] = getattr(sys.modules.get("torch"), "__file__", None)
    status["layers"] = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    flow.dock.setFloating(False)
    iface.mapCanvas().refreshAllLayers()
    step("slider at 5", 3000, lambda: slider_shot(5, "slider_iteration5"))


def slider_shot(t, name, then=None):
    controller().iterations.dock.set_iteration(t)
    iface.mapCanvas().refreshAllLayers()

    def take():
        shoot(name)
        then() if then else step(
            "slider at 0", 500, lambda: slider_shot(0, "slider_iteration0", show_uncertainty)
        )

    step(f"screenshot {name}", 2500, take)


def show_uncertainty():
    flow = controller().iterations
    flow.dock.set_iteration(5)
    flow.dock.uncertainty_check.setChecked(True)
    root = QgsProject.instance().layerTreeRoot()
    root.findLayer(flow.layer_ids["classes"]).setItemVisibilityChecked(False)
    for layer in QgsProject.instance().mapLayers().values():  # the image under the uncertainty
        if "refined" in layer.name():
            root.findLayer(layer.id()).setItemVisibilityChecked(False)
    iface.mapCanvas().refreshAllLayers()
    step("uncertainty screenshot", 3000, uncertainty_shot)


def uncertainty_shot():
    shoot("uncertainty")
    flow = controller().iterations
    dock = flow.dock
    dock.regions_list.setCurrentRow(1)  # #1 is often a sliver at the raster's edge
    dock.regions_list.itemClicked.emit(dock.regions_list.item(1))
    status["regions"] = [dock.regions_list.item(i).text() for i in range(dock.regions_list.count())]
    step("zoom screenshot", 3000, zoom_shot)


def zoom_shot():
    shoot("uncertainty_zoom")
    finish()


step("open image", 3000, lambda: open_image("ask for the dialog", ask_for_dialog))
