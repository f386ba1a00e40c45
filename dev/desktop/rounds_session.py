"""Runs *inside* the QGIS desktop (``qgis --code``) for dev/desktop/screenshots.py
``--session rounds``: the correction loop as a cartographer drives it through the
dialog's widgets.

Refine the image; New correction layer; draw the reference buildings nearest the image's
centre (most of which the map already has) and background squares clear of every
reference building (copied from the shared reference polygons, as a user would trace
them); Fine-tune (round 1); Refine; the dock's list of round 1's largest changes, its
first row clicked (session 42); Turn changes back on round 1's largest change
(session 40: the button, then a click on the canvas) and on every change in a rectangle
around the next largest (session 41: a drag on the canvas); draw more; Fine-tune (round 2);
Refine; Undo round; Export to shapefile. A screenshot after each step; status.json says
what happened.

For the pictures only (a 1920 x 1080 screen): the Browser panel is closed and the Layers
panel widened, the dialog is widened and placed under the message bar, the map is zoomed
before each shot so the image lies left of the dialog, and each shot waits for the canvas
to finish drawing; two shots show a tooltip as a hover would (the round-1 line's in the
Rounds list, the round-2 map's in the Layers panel: QGIS shows a layer's title there);
the export shot hides the class maps so the exported polygons show over the image.
status.json also records the export's smallest-polygon default and the iterations dock's
kept earlier views against their memory cap after each refine and the undo.
"""

import os
from pathlib import Path

import qgis.utils
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from map_refiner.dev.desktop.dialog_shots import (
    arrange_panels,
    dialog,
    fit_map,
    layer_tip,
    message,
    names,
    place_dialog,
    rounds_tip,
    shot,
    tree,
    wait,
)
from map_refiner.dev.desktop.steps import (
    IMAGE,
    controller,
    finish,
    open_image,
    shoot,
    status,
    step,
)
from map_refiner.ui.iterations.flow import KEPT_VIEWS, KEPT_VIEWS_BYTES

REFERENCE = os.environ.get("MAP_REFINER_REFERENCE", "")
iface = qgis.utils.iface


def record(key):
    """The dialog's model note and export default, and the dock's kept earlier views."""
    flow = controller().iterations
    status[key] = {
        "layers_panel_width": iface.layerTreeView().width(),
        "model_note": dialog().model_note.text() if dialog().model_note.isVisible() else "",
        "smallest_polygon_m2": dialog().min_area_spin.value(),
        "kept_views": len(flow.earlier) if flow else 0,
        "kept_views_mib": round(flow.earlier_nbytes() / 2**20, 2) if flow else 0,
        "kept_views_cap": [KEPT_VIEWS, KEPT_VIEWS_BYTES / 2**20],
    }


def start():
    arrange_panels()
    controller().show_dialog()
    place_dialog()
    step("layout", 1000, refine_0)  # once the panels have their new sizes


def refine_0():
    fit_map()
    dialog().refine_button.click()
    wait("refine 0", refined_0)


def refined_0():
    status["layers_0"] = names()
    record("after_refine_0")
    shot("rounds_1_refined")
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
    shot("rounds_2_corrections_on_top")
    dialog().labels.finetune_button.click()
    wait("round 1", tuned_1)


def tuned_1():
    status["round_1"] = message()
    dialog().suggest_output()
    dialog().refine_button.click()
    wait("refine 1", refined_1)


def refined_1():
    record("after_refine_1")
    shot("rounds_3_round1_refined", lambda: rounds_tip(0))
    review_list()
    step("review list", 1500, turned_back_1)


def review_list():
    """The iterations dock's list after round 1 (session 42): the round's largest
    changes; its first row clicked (the canvas zooms there and flashes the change). The
    dialog is hidden for the shot: it would cover the dock."""
    flow = controller().iterations
    dock = flow.dock
    status["review_list"] = {
        "list": dock.list_kind(),
        "rows": [dock.regions_list.item(i).text() for i in range(dock.regions_list.count())],
    }
    dialog().hide()
    if dock.regions_list.count():
        dock.regions_list.setCurrentRow(0)
        flow.zoom_to(0)


def turned_back_1():
    shoot("rounds_3a_review_list")  # as zoomed by the row (shot() would fit the image)
    dialog().show()
    place_dialog()
    turn_back_largest()
    step("turned back", 1500, drawn_2)


def turn_back_largest():
    """Turn changes back (session 40): the button pressed, then a click on the canvas at
    a point inside round 1's largest change, as a user's mouse would."""
    from osgeo import gdal, ogr
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    from map_refiner.ui.layers import CHANGES_OF_KEY

    changes = [
        layer
        for layer in QgsProject.instance().mapLayers().values()
        if layer.customProperty(CHANGES_OF_KEY) is not None
    ]
    status["turn_back_layers"] = [layer.name() for layer in changes]
    if not changes:
        return
    raster = gdal.Open(changes[0].source())  # kept: its band's owner
    band = raster.GetRasterBand(1)
    source = ogr.GetDriverByName("Memory").CreateDataSource("")
    found = source.CreateLayer("changes")
    found.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    gdal.Polygonize(band, band, found, 0, ["8CONNECTED=8"])
    ranked = sorted(found, key=lambda f: -f.GetGeometryRef().GetArea())
    largest = ranked[0]
    gt = raster.GetGeoTransform()
    xs = sorted((gt[0], gt[0] + raster.RasterXSize * gt[1]))
    ys = sorted((gt[3], gt[3] + raster.RasterYSize * gt[5]))

    def clear_of_sides(env, margin=15.0):  # 15 map units inside the image's sides
        return (
            xs[0] + margin < env[0] < env[1] < xs[1] - margin
            and ys[0] + margin < env[2] < env[3] < ys[1] - margin
        )

    # for the rectangle (drag_over_next)
    clear = [e for e in (f.GetGeometryRef().GetEnvelope() for f in ranked[1:]) if clear_of_sides(e)]
    if clear:
        status["turn_back_next_box"] = list(clear[0])
    inside = largest.GetGeometryRef().PointOnSurface()
    dialog().labels.turn_back_button.click()
    canvas = iface.mapCanvas()
    at = canvas.getCoordinateTransform().transform(inside.GetX(), inside.GetY())
    QTest.mouseClick(
        canvas.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(int(at.x()), int(at.y())),
    )
    status["turn_back"] = {
        "clicked_area_map_units": round(largest.GetGeometryRef().GetArea(), 1),
        "message": message(),
        "map_tool_is_turn_back": canvas.mapTool() is controller().turn_back.tool,
    }


def drag_over_next():
    """Turn changes back by rectangle (session 41): a drag on the canvas, with the tool
    still active, over a box 8 map units wider than round 1's largest change after the
    clicked one that lies clear of the image's sides, as a user's mouse would (press,
    move, a shot with the rectangle shown, release)."""
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    box = status.get("turn_back_next_box")
    if not box:
        return
    fit_map()
    canvas = iface.mapCanvas()
    xmin, xmax, ymin, ymax = box
    to_screen = canvas.getCoordinateTransform()
    a = to_screen.transform(xmin - 8, ymax + 8)
    b = to_screen.transform(xmax + 8, ymin - 8)
    start, end = QPoint(int(a.x()), int(a.y())), QPoint(int(b.x()), int(b.y()))
    view = canvas.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(view, left, none, start)
    QTest.mouseMove(view, QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2))
    QTest.mouseMove(view, end)
    shot("rounds_3c_rectangle_drag")
    QTest.mouseRelease(view, left, none, end)
    status["turn_back_rectangle"] = {
        "screen": [start.x(), start.y(), end.x(), end.y()],
        "message": message(),
    }


def outline_part():
    """Turn changes back by outline (session 42): Shift held, a freehand outline around
    the left half of the review list's third change, drawn with the mouse (press with
    Shift, moves, a shot while drawing, release), zoomed in on it; then a shot of what
    went back (the dialog hidden for both: it would cover the canvas)."""
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    flow = controller().iterations
    if len(flow.review.changes) < 3:
        return
    dialog().hide()
    canvas = iface.mapCanvas()
    box = QgsGeometry.fromWkt(flow.review.changes[2].wkt).boundingBox()
    view = QgsRectangle(box)
    view.scale(4.0)
    canvas.setExtent(view)
    canvas.refresh()
    canvas.waitWhileRendering()
    xmid = (box.xMinimum() + box.xMaximum()) / 2
    pad = box.width() / 4
    corners = [
        (box.xMinimum() - pad, box.yMaximum() + pad),
        (xmid, box.yMaximum() + pad),
        (xmid, box.yMinimum() - pad),
        (box.xMinimum() - pad, box.yMinimum() - pad),
    ]
    to_screen = canvas.getCoordinateTransform()
    points = []
    for (xa, ya), (xb, yb) in zip(corners, corners[1:] + corners[:1]):
        for t in (0.0, 0.25, 0.5, 0.75):  # each side in steps, as a hand draws
            at = to_screen.transform(xa + t * (xb - xa), ya + t * (yb - ya))
            points.append(QPoint(int(at.x()), int(at.y())))
    view_widget = canvas.viewport()
    left, shift = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier
    QTest.mousePress(view_widget, left, shift, points[0])
    for point in points[1:] + points[:1]:
        QTest.mouseMove(view_widget, point)
    shoot("rounds_3e_outline_drawn")
    QTest.mouseRelease(view_widget, left, shift, points[0])
    status["turn_back_outline"] = {
        "change": flow.review.changes[2].describe(),
        "screen_points": len(points),
        "message": message(),
    }
    canvas.refresh()
    canvas.waitWhileRendering()
    shoot("rounds_3f_outline_turned_back")
    dialog().show()
    place_dialog()


def drawn_2():
    shot("rounds_3b_turned_back")
    drag_over_next()
    shot("rounds_3d_rectangle_turned_back")
    outline_part()
    dialog().labels.turn_back_button.click()  # up again: the tool released
    status["turn_back"]["released"] = not dialog().labels.turn_back_button.isChecked()
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
    record("after_refine_2")
    shot("rounds_4_two_rounds", lambda: layer_tip("refined by round 2"))
    dialog().labels.undo_button.click()
    step("undo", 1500, undone)


def undone():
    classmap = controller().refined.get(Path(IMAGE))
    status["after_undo"] = {
        "tree": tree(),
        "model": str(dialog().model.model_path()),
        "export_map": str(classmap.path) if classmap else None,
    }
    status["undo_message"] = message()
    record("after_undo")
    shot("rounds_5_undone")
    dialog().export_button.click()
    wait("export", exported)


def exported():
    polygons = QgsProject.instance().mapLayersByName(f"{Path(IMAGE).stem} — polygons")
    status["polygons"] = polygons[0].featureCount() if polygons else None
    status["export_classes"] = (
        sorted({f["class"] for f in polygons[0].getFeatures()}) if polygons else None
    )
    dialog().hide()
    for layer in QgsProject.instance().mapLayers().values():  # the polygons over the image
        if isinstance(layer, QgsRasterLayer) and " — refined " in layer.name():
            QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(
                False
            )
    status["tree_export"] = tree()
    step("export shot", 2000, lambda: (shot("rounds_6_exported"), finish()))


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
