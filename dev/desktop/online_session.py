"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session online``: an XYZ layer (a local tile server, MAP_REFINER_XYZ_URL) chosen
in the dialog and refined: the view is fetched into a GeoTIFF beside the project,
added and refined. A screenshot before and after; status.json says what happened.
"""

import os

import qgis.utils
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from map_refiner.dev.desktop.steps import (
    PROJECT,
    SCREEN,
    after_device_line,
    controller,
    finish,
    shoot,
    status,
    step,
)

URL = os.environ["MAP_REFINER_XYZ_URL"]
VIEW = [float(v) for v in os.environ["MAP_REFINER_VIEW"].split(",")]
iface = qgis.utils.iface


def names():
    return [layer.name() for layer in QgsProject.instance().mapLayers().values()]


def start():
    iface.mainWindow().setGeometry(0, 0, *SCREEN)
    uri = QgsDataSourceUri()
    for key, value in (("type", "xyz"), ("url", URL), ("zmin", "0"), ("zmax", "18")):
        uri.setParam(key, value)
    layer = QgsRasterLayer(bytes(uri.encodedUri()).decode(), "Xiamen imagery (XYZ)", "wms")
    QgsProject.instance().addMapLayer(layer)
    PROJECT.parent.mkdir(parents=True, exist_ok=True)
    QgsProject.instance().write(str(PROJECT))
    iface.setActiveLayer(layer)
    step("zoom", 2000, zoom)


def zoom():
    """After QGIS zoomed to the first layer's extent (the world), the view to refine."""
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(*VIEW))
    canvas.refresh()
    step("dialog", 4000, open_dialog)


def open_dialog():
    status["view"] = iface.mapCanvas().extent().toString(1)
    controller().show_dialog()
    d = controller().dialog
    d.input_combo.setLayer(iface.activeLayer())
    d.adjustSize()
    d.move(SCREEN[0] - d.width() - 30, 60)
    status["output"] = d.output_widget.filePath()
    after_device_line(dialog_shot)


def dialog_shot():
    shoot("online_1_dialog")
    controller().dialog.refine_button.click()
    step("fetch and refine", 500, wait)


def wait():
    if controller().tasks:
        step("fetch and refine", 500, wait)
        return
    step("refined", 2000, refined)


def refined():
    status["layers"] = names()
    status["messages"] = [item.text() for item in iface.messageBar().items()]
    d = controller().dialog
    status["dialog_input"] = d.input_combo.currentLayer().name()
    d.hide()  # the map, the layers and the message bar
    shoot("online_2_refined")
    finish()


step("start", 3000, start)
