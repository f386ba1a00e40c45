"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py.

Opens the image, saves a project beside which outputs go, opens the Map Refiner
dialog through the plugin QGIS loaded, refines, and takes screenshots of the
whole X screen with ImageMagick's ``import -window root``. Steps run from
QTimer callbacks so QGIS paints between them. Writes status.json when done.
"""

import os
from pathlib import Path

import qgis.utils
from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QComboBox

from map_refiner.dev.desktop.steps import (
    IMAGE,
    SCREEN,
    after_device_line,
    controller,
    finish,
    open_image,
    shoot,
    status,
    step,
)

MODEL = os.environ.get("MAP_REFINER_MODEL", "")
iface = qgis.utils.iface


def open_dialog():
    controller().show_dialog()
    dialog = controller().dialog
    if MODEL:
        dialog.model.set_model_path(MODEL)
    dialog.scores_check.setChecked(True)
    dialog.coarse_check.setChecked(True)
    dialog.adjustSize()
    dialog.move(SCREEN[0] - dialog.width() - 40, 90)
    step("wait for devices", 1500, lambda: after_device_line(dialog_shot))


def dialog_shot():
    shoot("dialog")
    dialog = controller().dialog
    status["output"] = dialog.output_widget.filePath()
    dialog.refine_button.click()
    step("wait for refine", 500, wait_for_refine)


def wait_for_refine():
    if controller().tasks:
        step("wait for refine", 500, wait_for_refine)
        return
    bar = iface.messageBar().currentItem()
    status["message"] = bar.text() if bar else ""
    controller().dialog.hide()
    layers = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    status["layers"] = layers
    root = QgsProject.instance().layerTreeRoot()
    status["expanded"] = [(n.name(), n.isExpanded()) for n in root.findLayers()] + [
        (g.name(), g.isExpanded()) for g in root.findGroups()
    ]
    iface.mapCanvas().refreshAllLayers()
    step("map screenshot", 3000, map_shot)


def map_shot():
    shoot("map_refined")
    refined = [
        layer for layer in QgsProject.instance().mapLayers().values() if "refined" in layer.name()
    ][0]
    refined.setOpacity(0.45)
    refined.triggerRepaint()
    step("overlay screenshot", 2500, overlay_shot)


def overlay_shot():
    shoot("map_overlay")
    controller().dialog.export_button.click()  # polygons of the image's refined map
    step("wait for export", 500, wait_for_export)


def wait_for_export():
    if controller().tasks:
        step("wait for export", 500, wait_for_export)
        return
    polygons = QgsProject.instance().mapLayersByName(f"{Path(IMAGE).stem} — polygons")
    status["polygons"] = polygons[0].featureCount() if polygons else None
    if polygons:
        QgsProject.instance().layerTreeRoot().findLayer(polygons[0]).setItemVisibilityChecked(False)
    iface.setActiveLayer(QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0])
    controller().new_correction_layer()
    step("correction layer screenshot", 2000, correction_shot)


def correction_shot():
    layer = iface.activeLayer()
    status["correction_layer"] = layer.source() if layer else None
    controller().show_dialog()
    shoot("correction_layer")
    controller().dialog.hide()
    open_feature_form(layer)
    step("feature form screenshot", 1500, form_shot)


def open_feature_form(layer):
    """A drawn polygon's attribute form, with the class drop-down opened."""
    centre = iface.mapCanvas().extent().center()
    feature = QgsFeature(layer.fields())
    feature.setGeometry(
        QgsGeometry.fromRect(
            QgsRectangle(centre.x() - 12, centre.y() - 8, centre.x() + 12, centre.y() + 8)
        )
    )
    feature.setAttribute("class", "building")
    layer.addFeature(feature)
    layer.triggerRepaint()
    form = iface.getFeatureForm(layer, feature)
    form.setModal(False)
    form.show()
    form.move(SCREEN[0] // 2 - form.width() // 2, 160)
    status["form"] = form
    QTimer.singleShot(700, lambda: form.findChildren(QComboBox)[0].showPopup())


def form_shot():
    shoot("correction_form")
    status.pop("form").close()
    finish()


step("open image", 3000, lambda: open_image("open dialog", open_dialog))
