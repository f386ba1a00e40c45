"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session survey`` (session 47): four tiles of the image as layers, Processing's
*Survey model: read every tile alike* opened on them and run (its log shot), then every
tile refined with the survey model by Processing's refine and loaded (the maps shot).
"""

import processing
import qgis.utils
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer

from map_refiner.dev.desktop.steps import IMAGE, PROJECT, SCREEN, finish, shoot, status, step

iface = qgis.utils.iface
SIDE = 1000  # px: four tiles of the image's window at its TILE_AT corner
TILE_AT = (4000, 1000)


def tiles():
    iface.mainWindow().setGeometry(0, 0, *SCREEN)
    PROJECT.parent.mkdir(parents=True, exist_ok=True)
    folder = PROJECT.parent / "tiles"
    folder.mkdir(exist_ok=True)
    src = gdal.Open(IMAGE)
    x0, y0 = TILE_AT
    layers = []
    for i, (dx, dy) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        path = folder / f"tile_{i + 1}.tif"
        gdal.Translate(str(path), src, srcWin=[x0 + dx * SIDE, y0 + dy * SIDE, SIDE, SIDE])
        layer = QgsRasterLayer(str(path), path.stem)
        QgsProject.instance().addMapLayer(layer)
        layers.append(layer)
    QgsProject.instance().write(str(PROJECT))
    iface.setActiveLayer(layers[0])
    canvas = iface.mapCanvas()
    extent = layers[0].extent()
    for layer in layers[1:]:
        extent.combineExtentWith(layer.extent())
    canvas.setExtent(extent)
    status["tiles"] = [layer.name() for layer in layers]
    step("survey dialog", 2000, lambda: survey_dialog(layers))


def survey_dialog(layers):
    out = PROJECT.parent / "survey.safetensors"
    dialog = processing.createAlgorithmDialog(
        "map_refiner:survey_model", {"INPUTS": layers, "OUTPUT": str(out)}
    )
    dialog.show()
    dialog.move(SCREEN[0] - dialog.width() - 40, 90)
    status["survey_model"] = str(out)
    step("survey form", 1500, lambda: survey_run(dialog, layers, out))


def survey_run(dialog, layers, out):
    shoot("survey_1_form")
    dialog.runAlgorithm()  # in a background task: wait for the file, then the log
    step("survey log", 1000, lambda: survey_log(dialog, layers, out))


def survey_log(dialog, layers, out, tries=120):
    if not out.exists() and tries > 0:
        step("survey log", 500, lambda: survey_log(dialog, layers, out, tries - 1))
        return
    if tries:  # once: the log's last lines after the file is written
        step("survey log", 1500, lambda: survey_log(dialog, layers, out, 0))
        return
    shoot("survey_2_log")
    status["survey_written"] = out.exists()
    dialog.close()
    maps = []
    for layer in layers:
        path = PROJECT.parent / f"{layer.name()}_refined.tif"
        processing.runAndLoadResults(
            "map_refiner:refine",
            {"INPUT": layer, "MODEL": str(out), "OUTPUT": str(path)},
        )
        maps.append(path.name)
    status["maps"] = maps
    step("maps", 3000, maps_shot)


def maps_shot():
    shoot("survey_3_maps")  # each map right above its own tile (styling.place_above)
    root = QgsProject.instance().layerTreeRoot()
    status["layers"] = [node.name() for node in root.children()]
    finish()


step("tiles", 2500, tiles)
