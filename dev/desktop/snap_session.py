"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session snap``: a correction layer (MAP_REFINER_CORRECTIONS, e.g. outlines drawn a
metre to one side by dev/desktop/snap_corrections.py) over the image, then Processing's
``map_refiner:snap_outlines`` (what *Raster ▸ Map Refiner ▸ Snap correction outlines…*
opens) writes and loads the snapped layer. Screenshots of the drawn outlines (yellow)
and of both with the snapped ones (cyan), zoomed on the first polygon; status.json
says what happened.
"""

import os
from pathlib import Path

import processing
import qgis.utils
from qgis.core import QgsProject, QgsRectangle, QgsVectorLayer
from qgis.PyQt.QtGui import QColor

from map_refiner.dev.desktop.steps import finish, open_image, shoot, status, step

CORRECTIONS = os.environ["MAP_REFINER_CORRECTIONS"]
iface = qgis.utils.iface


def outlines(layer, colour, width):
    symbol = layer.renderer().symbol().symbolLayer(0)
    symbol.setFillColor(QColor(0, 0, 0, 0))
    symbol.setStrokeColor(QColor(*colour))
    symbol.setStrokeWidth(width)
    layer.triggerRepaint()


def add_corrections():
    layer = QgsVectorLayer(CORRECTIONS, "corrections (drawn)", "ogr")
    outlines(layer, (255, 230, 0), 0.6)
    QgsProject.instance().addMapLayer(layer)
    status["drawn_features"] = layer.featureCount()
    extent = QgsRectangle()
    for i, f in enumerate(layer.getFeatures()):
        if i >= 1:
            break
        extent.combineExtentWith(f.geometry().boundingBox())
    extent.scale(2.2)
    iface.mapCanvas().setExtent(extent)
    iface.mapCanvas().refresh()
    step("drawn screenshot", 3000, drawn_shot)


def drawn_shot():
    shoot("snap_1_drawn")
    drawn = QgsProject.instance().mapLayersByName("corrections (drawn)")[0]
    image = [
        lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.type() == lyr.RasterLayer
    ][0]
    out = Path(CORRECTIONS).with_name("corrections_snapped.gpkg")
    result = processing.runAndLoadResults(
        "map_refiner:snap_outlines",
        {"INPUT": image, "CORRECTIONS": drawn, "CLASS_FIELD": "class", "OUTPUT": str(out)},
    )
    status["snap"] = {k: str(v) for k, v in result.items()}
    step("snapped screenshot", 3000, snapped_shot)


def snapped_shot():
    snapped = [
        lyr
        for lyr in QgsProject.instance().mapLayers().values()
        if isinstance(lyr, QgsVectorLayer) and "snapped" in lyr.fields().names()
    ]
    if snapped:
        layer = snapped[0]
        outlines(layer, (0, 230, 255), 0.6)
        status["snapped_layer"] = layer.name()
        status["snapped"] = sum(1 for f in layer.getFeatures() if f["snapped"] == 1)
        status["features"] = layer.featureCount()
        iface.setActiveLayer(layer)
    iface.mapCanvas().refresh()
    step("final", 2500, lambda: (shoot("snap_2_snapped"), finish()))


step("open image", 3000, lambda: open_image("add corrections", add_corrections))
