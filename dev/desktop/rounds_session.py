"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session rounds``: the correction loop as a cartographer drives it through the
dialog's widgets.

Refine the image; New correction layer; draw reference buildings the map missed and
background squares (copied from the shared reference polygons, as a user would trace
them); Fine-tune (round 1); Refine; draw more; Fine-tune (round 2); Refine; Undo round;
Export to shapefile. A screenshot after each step; status.json says what happened.
"""

import os
from pathlib import Path

import qgis.utils
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from map_refiner.dev.desktop.steps import (
    IMAGE,
    SCREEN,
    controller,
    finish,
    open_image,
    shoot,
    status,
    step,
)

REFERENCE = os.environ.get("MAP_REFINER_REFERENCE", "")
iface = qgis.utils.iface


def dialog():
    return controller().dialog


def place_dialog():
    d = dialog()
    d.adjustSize()
    d.move(SCREEN[0] - d.width() - 30, 60)


def wait(name, then):
    """Poll until the controller's tasks are done, then ``then``."""

    def check():
        if controller().tasks:
            step(name, 500, check)
            return
        then()

    step(name, 500, check)


def start():
    controller().show_dialog()
    place_dialog()
    dialog().refine_button.click()
    wait("refine 0", refined_0)


def refined_0():
    status["layers_0"] = names()
    shoot("rounds_1_refined")
    iface.setActiveLayer(QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0])
    controller().new_correction_layer()
    layer = iface.activeLayer()
    draw(layer, buildings(0, 3), squares(2))
    layer.triggerRepaint()
    controller().show_dialog()
    place_dialog()
    step("corrections drawn", 1500, drawn_1)


def drawn_1():
    status["tree_1"] = tree()
    shoot("rounds_2_corrections_on_top")
    dialog().labels.finetune_button.click()
    wait("round 1", tuned_1)


def tuned_1():
    status["round_1"] = message()
    dialog().suggest_output()
    dialog().refine_button.click()
    wait("refine 1", refined_1)


def refined_1():
    shoot("rounds_3_round1_refined")
    layer = QgsProject.instance().mapLayersByName(f"{Path(IMAGE).stem} — corrections")[0]
    draw(layer, buildings(3, 6), squares(1, offset=2))
    layer.triggerRepaint()
    dialog().labels.finetune_button.click()
    wait("round 2", tuned_2)


def tuned_2():
    status["round_2"] = message()
    dialog().suggest_output()
    dialog().refine_button.click()
    wait("refine 2", refined_2)


def refined_2():
    status["rounds"] = [
        dialog().labels.rounds_list.item(i).text()
        for i in range(dialog().labels.rounds_list.count())
    ]
    status["tree_2"] = tree()
    shoot("rounds_4_two_rounds")
    dialog().labels.undo_button.click()
    step("undo", 1500, undone)


def undone():
    status["after_undo"] = {"tree": tree(), "model": str(dialog().model.model_path())}
    status["undo_message"] = message()
    shoot("rounds_5_undone")
    dialog().export_button.click()
    wait("export", exported)


def exported():
    polygons = QgsProject.instance().mapLayersByName(f"{Path(IMAGE).stem} — polygons")
    status["polygons"] = polygons[0].featureCount() if polygons else None
    status["export_classes"] = (
        sorted({f["class"] for f in polygons[0].getFeatures()}) if polygons else None
    )
    dialog().hide()
    step("export shot", 2000, lambda: (shoot("rounds_6_exported"), finish()))


def names():
    return [layer.name() for layer in QgsProject.instance().mapLayers().values()]


def tree():
    root = QgsProject.instance().layerTreeRoot()
    return [n.name() for n in root.children()]


def message():
    item = iface.messageBar().currentItem()
    return item.text() if item else ""


def buildings(first, last):
    """Reference building outlines ``first..last`` (nearest the image centre first)."""
    ref = QgsVectorLayer(REFERENCE, "reference", "ogr")
    centre = QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0].extent().center()
    feats = sorted(
        ref.getFeatures(),
        key=lambda f: f.geometry().centroid().asPoint().sqrDist(centre),
    )
    return [QgsGeometry(f.geometry()) for f in feats[first:last]]


def squares(count, offset=0):
    """Background squares of 8 m that touch no reference building."""
    ref = [f.geometry() for f in QgsVectorLayer(REFERENCE, "reference", "ogr").getFeatures()]
    e = QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0].extent()  # on the raster
    out, skipped = [], 0
    y = e.yMinimum() + 10
    while y < e.yMaximum() - 10 and len(out) < count:
        x = e.xMinimum() + 10
        while x < e.xMaximum() - 10 and len(out) < count:
            square = QgsGeometry.fromRect(QgsRectangle(x, y, x + 8, y + 8))
            if not any(square.intersects(g) for g in ref):
                if skipped < offset:
                    skipped += 1
                else:
                    out.append(square)
            x += 20
        y += 20
    return out


def draw(layer, building_geoms, background_geoms):
    for geom, cls in [(g, "building") for g in building_geoms] + [
        (g, "background") for g in background_geoms
    ]:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geom)
        feature.setAttribute("class", cls)
        layer.addFeature(feature)


step("open image", 3000, lambda: open_image("start", start))
