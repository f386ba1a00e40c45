"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session prior``: a map the user already has (a polygon layer, MAP_REFINER_PRIOR:
e.g. OSM buildings) chosen as the dialog's *Start from* and refined onto the image,
then Processing's ``map_refiner:compare`` flags each of its buildings against the
refined map (loaded styled by status). Screenshots of the dialog, the refined map
under the prior's outlines, and the flags; status.json says what happened. A raster
MAP_REFINER_PRIOR (a .tif class mask, session 48) is chosen the same way, its value map as
the dialog fills it in; no flags then (compare takes polygons).
"""

import os
from pathlib import Path

import processing
import qgis.utils
from qgis.core import QgsProject, QgsRasterLayer, QgsRasterTransparency, QgsVectorLayer
from qgis.PyQt.QtGui import QColor

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

PRIOR = os.environ["MAP_REFINER_PRIOR"]
RASTER = PRIOR.lower().endswith((".tif", ".tiff"))
NAME = "buildings mask" if RASTER else "OSM buildings"
iface = qgis.utils.iface


def add_prior():
    if RASTER:  # its background transparent, its buildings half seen through
        layer = QgsRasterLayer(PRIOR, NAME)
        clear = QgsRasterTransparency.TransparentSingleValuePixel()
        clear.min, clear.max, clear.percentTransparent = 0.0, 0.0, 100.0
        layer.renderer().rasterTransparency().setTransparentSingleValuePixelList([clear])
        layer.setOpacity(0.5)
    else:
        layer = QgsVectorLayer(PRIOR, NAME, "ogr")
        outline = layer.renderer().symbol().symbolLayer(0)  # outlines only, in blue
        outline.setFillColor(QColor(0, 0, 0, 0))
        outline.setStrokeColor(QColor(0, 170, 255))
        outline.setStrokeWidth(0.5)
    QgsProject.instance().addMapLayer(layer)
    status["prior_features"] = None if RASTER else layer.featureCount()
    iface.setActiveLayer(QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0])
    controller().show_dialog()
    d = controller().dialog
    d.prior_combo.setLayer(layer)
    d.adjustSize()
    d.move(SCREEN[0] - d.width() - 30, 60)
    status["output"] = d.output_widget.filePath()
    status["value_map"] = d.prior_values.text() if RASTER else None
    status["model_line"] = d.model.summary.name if d.model.summary is not None else None
    after_device_line(dialog_shot)


def dialog_shot():
    shoot("prior_1_dialog")
    controller().dialog.refine_button.click()
    step("wait for refine", 500, wait_for_refine)


def wait_for_refine():
    if controller().tasks:
        step("wait for refine", 500, wait_for_refine)
        return
    status["messages"] = [item.text() for item in iface.messageBar().items()]
    controller().dialog.hide()
    status["layers"] = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    prior = QgsProject.instance().mapLayersByName(NAME)[0]
    root = QgsProject.instance().layerTreeRoot()
    root.findLayer(prior).setItemVisibilityChecked(True)
    layer_node = root.findLayer(prior)
    layer_node.parent().insertChildNode(0, layer_node.clone())  # on top of the result
    layer_node.parent().removeChildNode(layer_node)
    step("refined screenshot", 2500, refined_shot)


def refined_shot():
    shoot("prior_2_refined")
    refined = [
        layer
        for layer in QgsProject.instance().mapLayers().values()
        if layer.name().endswith("refined") or "refined" in layer.name()
    ]
    status["refined_layer"] = refined[0].name() if refined else None
    if RASTER:  # compare flags polygons only
        finish()
        return
    out = Path(status["output"]).with_name("osm_flags.gpkg")
    result = processing.runAndLoadResults(
        "map_refiner:compare",
        {
            "PRIOR": QgsProject.instance().mapLayersByName("OSM buildings")[0],
            "REFINED": refined[0],
            "OUTPUT": str(out),
        },
    )
    status["compare"] = {k: str(v) for k, v in result.items()}
    step("flags layer", 3000, flags_shot)


def flags_shot():
    flags = [
        layer
        for layer in QgsProject.instance().mapLayers().values()
        if isinstance(layer, QgsVectorLayer) and "group_size" in layer.fields().names()
    ]
    if flags:
        counts = {}
        for f in flags[0].getFeatures():
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        status["flags"] = counts
        status["flags_layer"] = flags[0].name()
        project = QgsProject.instance()
        root = project.layerTreeRoot()
        root.findLayer(project.mapLayersByName("OSM buildings")[0]).setItemVisibilityChecked(False)
        node = root.findLayer(flags[0])  # on top, its statuses shown in the legend
        root.insertChildNode(0, node.clone())
        node.parent().removeChildNode(node)
        root.findLayer(flags[0]).setExpanded(True)
        for layer in project.mapLayers().values():  # the refined map seen through
            if "refined" in layer.name():
                layer.setOpacity(0.45)
                layer.triggerRepaint()
        iface.setActiveLayer(flags[0])
    shoot("prior_3_flags")
    finish()


step("open image", 3000, lambda: open_image("add prior", add_prior))
