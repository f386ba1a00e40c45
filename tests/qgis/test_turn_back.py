"""*Turn changes back*: a click on a round's changes layer adds the change there to the
correction layer as a polygon of the class it had (ui/turn_back.py); errors say what to
do; the dialog's button holds the map tool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapToolPan

from map_refiner.engine.rasters.write import style_class_band
from map_refiner.engine.scoring.changes import map_changes
from map_refiner.ui.dialog.correction_layer import create_correction_layer
from map_refiner.ui.layers import CHANGES_OF_KEY, PREVIOUS_MAP_KEY, changes_layer

NAMES = ["background", "building"]
COLOURS = [(235, 235, 225), (200, 40, 40)]
GT = (620000.0, 0.6, 0.0, 3350000.0, 0.0, -0.6)  # the rgb fixtures' grid (UTM 14N)


def _class_map(path: Path, array: np.ndarray) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 48, 48, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(array.astype(np.uint8))
    style_class_band(ds.GetRasterBand(1), NAMES, COLOURS)
    ds = None
    return path


@pytest.fixture
def changes(tmp_path, qgis_new_project) -> QgsRasterLayer:  # noqa: ANN001
    """A round's changes layer as a refine adds it: a roof (rows 4-11, columns 4-15) the
    round erased, and a new building (rows 30-35, columns 30-35)."""
    old = np.zeros((48, 48), np.uint8)
    old[4:12, 4:16] = 1
    new = old.copy()
    new[4:12, 4:16] = 0
    new[30:36, 30:36] = 1
    before = _class_map(tmp_path / "parent.tif", old)
    after = _class_map(tmp_path / "round.tif", new)
    found = map_changes(before, after, tmp_path / "round_changes.tif")
    layer = changes_layer(found.out, "scene — changes since round 0", NAMES, COLOURS)
    layer.setCustomProperty(CHANGES_OF_KEY, "scene")
    layer.setCustomProperty(PREVIOUS_MAP_KEY, str(before))
    qgis_new_project.addMapLayer(layer)
    return layer


def _centre(col: float, row: float) -> QgsPointXY:
    return QgsPointXY(GT[0] + (col + 0.5) * GT[1], GT[3] + (row + 0.5) * GT[5])


@pytest.fixture
def flow(plugin, rgb_layer, tiny_model, qgis_iface, changes):  # noqa: ANN001, ANN201
    """The dialog on the tiny model with a new correction layer, the canvas in the
    changes' CRS."""
    from map_refiner.ui.settings import DialogDefaults, save_defaults

    save_defaults(DialogDefaults(model_path=str(tiny_model)))
    dialog = plugin.controller.ensure_dialog()
    dialog.input_combo.setLayer(rgb_layer)
    qgis_iface.mapCanvas().setDestinationCrs(changes.crs())
    return plugin.controller, dialog


def _new_correction_layer(dialog, raster, project):  # noqa: ANN001, ANN202
    """New correction layer… as the dialog makes it, chosen in the dialog."""
    summary = dialog.model.summary
    labels = create_correction_layer(raster, summary.class_names, summary.colours, project)
    dialog.labels.set_layer(labels, "class")
    return labels


def test_a_clicked_change_becomes_a_correction_of_the_class_it_had(
    flow, rgb_layer, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    controller, dialog = flow
    labels = _new_correction_layer(dialog, rgb_layer, qgis_new_project)
    turn_back = controller.turn_back_flow()

    turn_back.pick(_centre(8, 6))  # the erased roof
    turn_back.pick(_centre(33, 33))  # the new building
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    features = sorted(labels.getFeatures(), key=lambda f: f["class"])
    assert [f["class"] for f in features] == ["background", "building"]
    roof = features[1].geometry()
    assert roof.area() == pytest.approx(8 * 12 * 0.36, rel=1e-6)
    assert roof.boundingBox().xMinimum() == pytest.approx(GT[0] + 4 * 0.6)
    success = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
    assert "that became building: drawn as background" in success, success
    labels.undoStack().undo()  # one edit command each: the layer's Undo takes it away
    assert labels.featureCount() == 1


def test_a_correction_layer_in_another_crs_gets_the_polygon_in_its_own(
    flow, changes, qgis_new_project
) -> None:  # noqa: ANN001
    controller, dialog = flow
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    from qgis.core import QgsVectorLayer

    other = QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:string", "lonlat", "memory")
    qgis_new_project.addMapLayer(other)
    dialog.labels.set_layer(other, "class")
    controller.turn_back_flow().pick(_centre(8, 6))
    (feature,) = list(other.getFeatures())
    back = QgsCoordinateTransform(wgs84, changes.crs(), QgsProject.instance())
    centre = back.transform(feature.geometry().centroid().asPoint())
    assert centre.x() == pytest.approx(GT[0] + 10 * 0.6, abs=0.01)
    assert centre.y() == pytest.approx(GT[3] - 8 * 0.6, abs=0.01)


def test_clicks_that_turn_nothing_back_say_why(flow, rgb_layer, qgis_iface, changes) -> None:  # noqa: ANN001
    controller, dialog = flow
    turn_back = controller.turn_back_flow()
    bar = qgis_iface.messageBar()

    def last_error() -> str:
        return bar.get_messages(Qgis.MessageLevel.Critical)[-1]

    dialog.labels.set_layer(None)
    turn_back.pick(_centre(8, 6))
    assert "Choose or create a correction layer first" in last_error()
    from qgis.core import QgsVectorLayer

    labels = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "c", "memory")
    QgsProject.instance().addMapLayer(labels)
    dialog.labels.set_layer(labels, "class")
    turn_back.pick(_centre(40, 4))  # unchanged
    assert "Nothing changed there" in last_error()
    turn_back.pick(QgsPointXY(GT[0] - 500, GT[3]))  # beside the raster
    assert "No changes layer there" in last_error()
    changes.setCustomProperty(PREVIOUS_MAP_KEY, "")  # a changes layer of an older plugin
    turn_back.pick(_centre(8, 6))
    assert "made by an older Map Refiner): refine again" in last_error()
    assert labels.featureCount() == 0


def test_the_button_holds_the_map_tool_until_another_is_chosen(flow, qgis_iface) -> None:  # noqa: ANN001
    controller, dialog = flow
    canvas = qgis_iface.mapCanvas()
    button = dialog.labels.turn_back_button
    button.setChecked(True)
    assert canvas.mapTool() is controller.turn_back.tool
    # how to use it, once it is on (the fixture's dialog has no correction layer: a
    # warning says to choose one)
    assert (
        "Choose or create a correction layer first"
        in (qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning)[-1])
    )
    pan = QgsMapToolPan(canvas)
    canvas.setMapTool(pan)  # the user picks another tool: the button goes up
    assert not button.isChecked()
    button.setChecked(True)
    button.setChecked(False)
    assert canvas.mapTool() is not controller.turn_back.tool


def _rect(col0: float, row0: float, col1: float, row1: float):  # noqa: ANN202
    from qgis.core import QgsRectangle

    return QgsRectangle(
        GT[0] + col0 * GT[1], GT[3] + row1 * GT[5], GT[0] + col1 * GT[1], GT[3] + row0 * GT[5]
    )


def test_a_dragged_rectangle_turns_back_every_change_inside_it(
    flow, rgb_layer, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    """Session 41: one drag over both changes adds one polygon per class they had, as one
    edit command; a rectangle over half the roof adds that half only. The tool says how
    to use it when it is switched on."""
    controller, dialog = flow
    labels = _new_correction_layer(dialog, rgb_layer, qgis_new_project)
    dialog.labels.turn_back_button.setChecked(True)
    info = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)[-1]
    assert "or drag a rectangle over several" in info and labels.name() in info, info
    turn_back = controller.turn_back_flow()
    turn_back.pick_area(_rect(0, 0, 48, 48))
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    features = sorted(labels.getFeatures(), key=lambda f: f["class"])
    assert [f["class"] for f in features] == ["background", "building"]
    assert features[0].geometry().area() == pytest.approx(6 * 6 * 0.36, rel=1e-6)
    assert features[1].geometry().area() == pytest.approx(8 * 12 * 0.36, rel=1e-6)
    success = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
    assert "every change in the rectangle (13 m² back to background, 35 m² back to building)" in (
        success
    ), success
    labels.undoStack().undo()  # the drag was one edit command
    assert labels.featureCount() == 0
    turn_back.pick_area(_rect(0, 0, 10, 48))  # columns 4-9 of the roof's 4-15
    (half,) = list(labels.getFeatures())
    assert half["class"] == "building"
    assert half.geometry().area() == pytest.approx(8 * 6 * 0.36, rel=1e-6)


def test_a_freehand_outline_with_shift_turns_back_only_the_part_inside(
    flow, rgb_layer, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    """Session 42: Shift held, the press, moves and release draw a freehand outline; only
    the changed pixels inside it go back (a triangle over the erased roof's left end), as
    one edit command; an outline over nothing that changed says so; Esc drops one."""
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, QPoint, Qt

    controller, dialog = flow
    labels = _new_correction_layer(dialog, rgb_layer, qgis_new_project)
    dialog.labels.turn_back_button.setChecked(True)
    assert (
        "hold Shift and draw around"
        in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)[-1]
    )
    tool = controller.turn_back.tool
    from qgis.gui import QgsMapTool

    # the canvas would take Shift and a drag as a zoom with QgsMapToolEmitPoint's flags
    assert not tool.flags() & QgsMapTool.Flag.AllowZoomRect
    canvas = qgis_iface.mapCanvas()
    # zoomed in on the roof's left end: a raster pixel spans screen pixels (the headless
    # canvas's map is a few dozen pixels tall)
    canvas.setExtent(_rect(0, 0, 16, 16))
    canvas.refresh()
    outlines = []
    tool.outlined.connect(outlines.append)
    shift = Qt.KeyboardModifier.ShiftModifier

    def screen(col: float, row: float) -> QPoint:
        at = canvas.getCoordinateTransform().transform(GT[0] + col * GT[1], GT[3] + row * GT[5])
        return QPoint(round(at.x()), round(at.y()))

    def draw(points: list[tuple[float, float]], escape: bool = False) -> None:
        left = Qt.MouseButton.LeftButton
        press = QgsMapMouseEvent(
            canvas, QEvent.Type.MouseButtonPress, screen(*points[0]), left, left, shift
        )
        tool.canvasPressEvent(press)
        for point in points[1:]:
            move = QgsMapMouseEvent(
                canvas, QEvent.Type.MouseMove, screen(*point), Qt.MouseButton.NoButton, left, shift
            )
            tool.canvasMoveEvent(move)
        if escape:
            from qgis.PyQt.QtGui import QKeyEvent

            key = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
            tool.keyPressEvent(key)
        release = QgsMapMouseEvent(
            canvas, QEvent.Type.MouseButtonRelease, screen(*points[0]), left, left, shift
        )
        tool.canvasReleaseEvent(release)

    # around the roof's (rows 4-11, columns 4-15) left end: columns 2-8, rows 2-14
    draw([(2, 2), (8, 2), (8, 8), (8, 14), (2, 14)])
    assert len(outlines) == 1 and tool.band is None
    (part,) = list(labels.getFeatures())
    assert part["class"] == "building"
    # the roof's pixels whose centre lies inside the outline drawn (its corners are where
    # the canvas's screen pixels fall): a part of the roof, not all of it
    (outline,) = outlines
    inside = sum(
        outline.contains(QgsPointXY(GT[0] + (c + 0.5) * GT[1], GT[3] + (r + 0.5) * GT[5]))
        for c in range(4, 16)
        for r in range(4, 12)
    )
    assert 0 < inside < 8 * 12
    assert part.geometry().area() == pytest.approx(inside * 0.36, rel=1e-6)
    success = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
    assert "every change in the outline" in success, success
    labels.undoStack().undo()  # one edit command
    assert labels.featureCount() == 0
    draw([(20, 20), (26, 20), (26, 26), (20, 26)])  # unchanged background
    error = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)[-1]
    assert "Nothing changed inside that outline" in error, error
    draw([(2, 2), (8, 2), (8, 14), (2, 14)], escape=True)
    assert len(outlines) == 2 and labels.featureCount() == 0  # dropped: nothing emitted
    dialog.labels.turn_back_button.setChecked(False)


def test_a_rectangle_on_a_single_polygon_layer_adds_each_part(flow, qgis_new_project) -> None:  # noqa: ANN001
    """A user's own layer of single polygons: each class's (multi)polygon goes in as
    single polygons."""
    from qgis.core import QgsVectorLayer

    controller, dialog = flow
    labels = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "single", "memory")
    qgis_new_project.addMapLayer(labels)
    dialog.labels.set_layer(labels, "class")
    controller.turn_back_flow().pick_area(_rect(0, 0, 48, 48))
    classes = sorted(f["class"] for f in labels.getFeatures())
    assert classes == ["background", "building"]
    assert all(not f.geometry().isMultipart() for f in labels.getFeatures())


def test_a_rectangle_where_nothing_changed_says_so(flow, qgis_iface, qgis_new_project) -> None:  # noqa: ANN001
    from qgis.core import QgsVectorLayer

    controller, dialog = flow
    labels = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "c", "memory")
    qgis_new_project.addMapLayer(labels)
    dialog.labels.set_layer(labels, "class")
    controller.turn_back_flow().pick_area(_rect(20, 0, 48, 20))  # unchanged background
    error = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)[-1]
    assert "Nothing changed inside that rectangle" in error, error
    assert labels.featureCount() == 0


def test_the_tool_tells_a_click_from_a_drag(flow, qgis_iface) -> None:  # noqa: ANN001
    """Press, move and release the mouse on the canvas: a short move is a click, a long
    one a rectangle from the press to the release."""
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, QPoint, Qt

    from map_refiner.ui.turn_back import DRAG_PX

    controller, dialog = flow
    dialog.labels.turn_back_button.setChecked(True)
    tool = controller.turn_back.tool
    canvas = qgis_iface.mapCanvas()
    clicks, drags = [], []
    tool.picked.connect(clicks.append)
    tool.dragged.connect(drags.append)

    def event(kind, x: int, y: int, button=Qt.MouseButton.LeftButton) -> QgsMapMouseEvent:  # noqa: ANN001
        return QgsMapMouseEvent(
            canvas, kind, QPoint(x, y), button, button, Qt.KeyboardModifier.NoModifier
        )

    tool.canvasPressEvent(event(QEvent.Type.MouseButtonPress, 10, 10))
    tool.canvasReleaseEvent(event(QEvent.Type.MouseButtonRelease, 10 + DRAG_PX, 10))
    assert len(clicks) == 1 and drags == []
    tool.canvasPressEvent(event(QEvent.Type.MouseButtonPress, 10, 10))
    tool.canvasMoveEvent(event(QEvent.Type.MouseMove, 40, 30))
    assert tool.band is not None  # the rectangle is shown while dragging
    tool.canvasReleaseEvent(event(QEvent.Type.MouseButtonRelease, 60, 50))
    assert len(clicks) == 1 and len(drags) == 1 and tool.band is None
    (rect,) = drags
    start, end = tool.toMapCoordinates(QPoint(10, 10)), tool.toMapCoordinates(QPoint(60, 50))
    assert rect.xMinimum() == pytest.approx(min(start.x(), end.x()))
    assert rect.yMaximum() == pytest.approx(max(start.y(), end.y()))
    # Esc while dragging drops the rectangle: its release does nothing
    from qgis.PyQt.QtGui import QKeyEvent

    tool.canvasPressEvent(event(QEvent.Type.MouseButtonPress, 10, 10))
    tool.canvasMoveEvent(event(QEvent.Type.MouseMove, 40, 30))
    escape = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
    tool.keyPressEvent(escape)
    assert tool.band is None
    tool.canvasReleaseEvent(event(QEvent.Type.MouseButtonRelease, 60, 50))
    assert len(clicks) == 1 and len(drags) == 1
    # the right button is left to QGIS: neither a click nor a drag
    right = Qt.MouseButton.RightButton
    tool.canvasPressEvent(event(QEvent.Type.MouseButtonPress, 10, 10, right))
    tool.canvasReleaseEvent(event(QEvent.Type.MouseButtonRelease, 60, 50, right))
    assert len(clicks) == 1 and len(drags) == 1
    dialog.labels.turn_back_button.setChecked(False)


def test_a_rectangle_drawn_on_a_canvas_in_another_crs(flow, changes, qgis_new_project) -> None:  # noqa: ANN001
    """The canvas in longitude and latitude, the changes in UTM: the dragged rectangle is
    brought into the changes layer's CRS (its bounding box there) and turns back the roof
    inside it."""
    from qgis.core import QgsRectangle, QgsVectorLayer

    controller, dialog = flow
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    controller.iface.mapCanvas().setDestinationCrs(wgs84)
    labels = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "c", "memory")
    qgis_new_project.addMapLayer(labels)
    dialog.labels.set_layer(labels, "class")
    to_canvas = QgsCoordinateTransform(changes.crs(), wgs84, QgsProject.instance())
    box = to_canvas.transformBoundingBox(_rect(2, 2, 18, 14))  # around the roof (4-15, 4-11)
    controller.turn_back_flow().pick_area(QgsRectangle(box))
    (roof,) = list(labels.getFeatures())
    assert roof["class"] == "building"
    assert roof.geometry().area() == pytest.approx(8 * 12 * 0.36, rel=1e-6)
