"""*Turn changes back*: click a change on a round's changes layer and it becomes a
correction polygon of the class it had before (engine/scoring/turn_back.py), in the
dialog's correction layer, for the next Fine-tune to learn (and its map to keep); drag a
rectangle and every change inside it does (session 41); hold Shift and draw freehand
around the wrong part of a change and only that part does (session 42; whether that
teaches the next round more than a click was not settled: docs/results_corrections.md).

The iterations dock's review list (the round's largest changes) turns one back with its
button through the same flow (turn_back_listed).

A map tool, active while the dialog's button is down; each click reads a window of the
changes raster around it and a rectangle at most engine AREA_MAX_PX pixels (instant to a
second), so it runs on the main thread. What one click or drag adds is one edit command
of the correction layer: the layer's Undo takes it away again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Union

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import (
    QgisInterface,
    QgsMapCanvas,
    QgsMapMouseEvent,
    QgsMapTool,
    QgsMapToolEmitPoint,
    QgsRubberBand,
)
from qgis.PyQt.QtCore import QPoint, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeyEvent

from ..engine.errors import MapRefinerError
from .dialog.correction_layer import CLASS_FIELD
from .layers import CHANGES_OF_KEY, PREVIOUS_MAP_KEY
from .messages import show_error, show_info, show_success, show_warning

if TYPE_CHECKING:
    from ..engine.scoring.turn_back import ChangeRegion

#: A press and release further apart than this (screen pixels, either way) is a drag:
#: a rectangle (or, with Shift, a freehand outline); closer, a click.
DRAG_PX = 4
#: A freehand outline takes a point each time the mouse has moved this far (screen pixels).
OUTLINE_STEP_PX = 3


class PickTool(QgsMapToolEmitPoint):
    """Emits the clicked point, the rectangle dragged, or the outline drawn freehand with
    Shift held down (in the canvas's CRS)."""

    picked = pyqtSignal(QgsPointXY)
    dragged = pyqtSignal(QgsRectangle)
    outlined = pyqtSignal(QgsGeometry)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.start: QPoint | None = None  # where the left button went down
        self.band: QgsRubberBand | None = None
        self.escaped = False  # Esc during a press: its release does nothing
        self.path: list[QPoint] | None = None  # a freehand outline's points (Shift held)

    def flags(self):  # noqa: ANN201 - QgsMapTool.Flags (see the docstring)
        """None of QgsMapToolEmitPoint's: its AllowZoomRect would let the canvas take a
        Shift and drag as a zoom, which here draws an outline. (Not annotated: the Qt6
        scan, tests/test_qt6_ready.py, reads ``QgsMapTool.Flags`` as an unscoped enum.)"""
        return QgsMapTool.Flags()

    def canvasPressEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt's name
        if e.button() == Qt.MouseButton.LeftButton:
            self.start, self.escaped = e.pos(), False
            shift = bool(e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.path = [e.pos()] if shift else None

    def canvasMoveEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self.start is None or not self._is_drag(e.pos()):
            return
        if self.band is None:
            self.band = QgsRubberBand(self.canvas(), QgsWkbTypes.GeometryType.PolygonGeometry)
            self.band.setColor(QColor(255, 0, 0, 160))
            self.band.setFillColor(QColor(255, 0, 0, 40))
            self.band.setWidth(2)
        if self.path is not None:
            last = self.path[-1]
            if abs(e.pos().x() - last.x()) + abs(e.pos().y() - last.y()) >= OUTLINE_STEP_PX:
                self.path.append(e.pos())
            self.band.setToGeometry(self._outline(self.path + [e.pos()]), None)
            return
        self.band.setToGeometry(QgsGeometry.fromRect(self._rectangle(e.pos())), None)

    def canvasReleaseEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt's name
        if e.button() != Qt.MouseButton.LeftButton:  # the right button is QGIS's (pan menu)
            return
        start, self.start = self.start, None
        path, self.path = self.path, None
        self._clear_band()
        if self.escaped:
            self.escaped = False
            return
        if path is not None and len(path) > 2:  # an outline ends where it began
            outline = self._outline(path + [e.pos()])
            if not outline.isEmpty() and outline.area() > 0:  # a line back on itself: none
                self.outlined.emit(outline)
        elif start is not None and self._is_drag(e.pos(), start):
            self.dragged.emit(self._rectangle(e.pos(), start))
        else:
            self.picked.emit(self.toMapCoordinates(e.pos()))

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        """Esc drops the rectangle or outline being drawn."""
        if e.key() == Qt.Key.Key_Escape and self.start is not None:
            self.start, self.path, self.escaped = None, None, True
            self._clear_band()
            e.accept()

    def deactivate(self) -> None:
        self.start, self.path = None, None
        self._clear_band()
        super().deactivate()

    def _outline(self, points: list[QPoint]) -> QgsGeometry:
        """The freehand path closed into a polygon in map coordinates, made valid (a path
        that crosses itself becomes its loops)."""
        ring = [self.toMapCoordinates(p) for p in points]
        polygon = QgsGeometry.fromPolygonXY([ring + ring[:1]])
        return polygon if polygon.isGeosValid() else polygon.makeValid()

    def _is_drag(self, pos: QPoint, start: QPoint | None = None) -> bool:
        start = start if start is not None else self.start
        assert start is not None
        return abs(pos.x() - start.x()) > DRAG_PX or abs(pos.y() - start.y()) > DRAG_PX

    def _rectangle(self, pos: QPoint, start: QPoint | None = None) -> QgsRectangle:
        start = start if start is not None else self.start
        assert start is not None
        return QgsRectangle(self.toMapCoordinates(start), self.toMapCoordinates(pos))

    def _clear_band(self) -> None:
        if self.band is not None:
            self.canvas().scene().removeItem(self.band)
            self.band = None


Area = Union[QgsPointXY, QgsRectangle, QgsGeometry]  # a click, a rectangle, an outline


def changes_layer_at(
    project: QgsProject, area: Area, crs: QgsCoordinateReferenceSystem
) -> tuple[QgsRasterLayer, Area] | None:
    """The topmost shown changes layer under ``area`` (a point, or a rectangle or outline
    it overlaps), and ``area`` in its CRS, that knows the previous map it was made against;
    raises MapRefinerError when the only ones there do not (made before session 40:
    refine again to make a new one)."""
    older = None
    for node in project.layerTreeRoot().findLayers():  # top to bottom, as drawn
        layer = node.layer()
        if not (
            isinstance(layer, QgsRasterLayer)
            and node.isVisible()
            and layer.customProperty(CHANGES_OF_KEY) is not None
        ):
            continue
        to_layer = QgsCoordinateTransform(crs, layer.crs(), project)
        at: Area
        if isinstance(area, QgsGeometry):
            at = QgsGeometry(area)
            at.transform(to_layer)
            if not layer.extent().intersects(at.boundingBox()):
                continue
        elif isinstance(area, QgsRectangle):
            at = to_layer.transformBoundingBox(area)
            if not layer.extent().intersects(at):
                continue
        else:
            at = to_layer.transform(area)
            if not layer.extent().contains(at):
                continue
        if layer.customProperty(PREVIOUS_MAP_KEY):
            return layer, at
        older = older or layer
    if older is not None:
        raise MapRefinerError(
            f"“{older.name()}” does not say which map it was compared with (made by an "
            "older Map Refiner): refine again with the round's model to make a new one."
        )
    return None


def turn_back(
    changes: QgsRasterLayer, at: QgsPointXY, corrections: QgsVectorLayer, class_field: str
) -> str:
    """Add the change under ``at`` (in ``changes``'s CRS) to ``corrections`` as a polygon
    of the class it had; returns what the message bar says. Raises MapRefinerError."""
    from ..engine.scoring.turn_back import change_region_at

    before = Path(str(changes.customProperty(PREVIOUS_MAP_KEY)))
    region = change_region_at(changes.source(), before, at.x(), at.y())
    if region is None:
        raise MapRefinerError(
            f"Nothing changed there on “{changes.name()}”: click a coloured pixel of it."
        )
    return turn_back_listed(
        region,
        corrections,
        class_field,
        "the change is larger than the part read around your click, so click it again "
        "beyond the new polygon's edge for the rest",
    )


def turn_back_area(
    changes: QgsRasterLayer,
    area: QgsRectangle | QgsGeometry,
    corrections: QgsVectorLayer,
    class_field: str,
) -> str:
    """Add every change inside ``area`` (a rectangle, or an outline drawn freehand; in
    ``changes``'s CRS) to ``corrections``: one polygon for each class the changed pixels
    had, cut at the area's sides (split into parts on a single-polygon layer); returns
    what the message bar says. Raises MapRefinerError."""
    from ..engine.scoring.turn_back import changes_in_area, changes_in_shape

    before = Path(str(changes.customProperty(PREVIOUS_MAP_KEY)))
    if isinstance(area, QgsRectangle):
        shape = "rectangle"
        found = changes_in_area(
            changes.source(),
            before,
            area.xMinimum(),
            area.yMinimum(),
            area.xMaximum(),
            area.yMaximum(),
        )
    else:
        shape = "outline"
        found = changes_in_shape(changes.source(), before, area.asWkt())
    if found is None:
        raise MapRefinerError(
            f"Nothing changed inside that {shape} on “{changes.name()}”: draw it over the "
            "coloured pixels to turn back."
        )
    _add_polygons(
        corrections,
        class_field,
        [(wkt, was) for was, wkt in found.wkt_by_class.items()],
        found.srs_wkt,
        f"the changes in a {shape}",
    )
    return (
        f"Turned back every change in the {shape} ({found.describe()}) in "
        f"“{corrections.name()}”; Fine-tune to learn them (the layer's Undo takes them away)"
    )


def turn_back_listed(
    change: ChangeRegion,
    corrections: QgsVectorLayer,
    class_field: str,
    cut_note: str = "it ran past a tile's side of the list, so turn back the rest with a click",
) -> str:
    """Add a change (clicked, or of the dock's review list: engine largest_changes) to
    ``corrections`` as a polygon of the class it had; returns what the message bar says,
    with ``cut_note`` for a change cut where it was read. Raises MapRefinerError."""
    _add_polygons(corrections, class_field, [(change.wkt, change.was)], change.srs_wkt, "a change")
    text = (
        f"Turned back {change.describe()}: drawn as {change.was} in “{corrections.name()}”; "
        "Fine-tune to learn it (the layer's Undo takes it away)"
    )
    if change.cut:
        text += f"; {cut_note}"
    return text


def _add_polygons(
    corrections: QgsVectorLayer,
    class_field: str,
    polygons: list[tuple[str, str]],
    srs_wkt: str,
    what: str,
) -> None:
    """Add ``polygons`` (WKT in ``srs_wkt``, class name) to ``corrections`` in one edit
    command named after ``what``; a multipolygon goes in as its parts where the layer
    holds single polygons. Raises MapRefinerError."""
    field = class_field or CLASS_FIELD
    index = corrections.fields().indexOf(field)
    if index < 0:
        raise MapRefinerError(
            f"“{corrections.name()}” has no field “{field}” for the class; choose its class "
            "field in the dialog, or make a correction layer with New correction layer…"
        )
    source = QgsCoordinateReferenceSystem.fromWkt(srs_wkt)
    to_layer = None
    if source.isValid() and corrections.crs().isValid() and source != corrections.crs():
        to_layer = QgsCoordinateTransform(source, corrections.crs(), QgsProject.instance())
    single = not QgsWkbTypes.isMultiType(corrections.wkbType())
    features = []
    for wkt, name in polygons:
        geometry = QgsGeometry.fromWkt(wkt)
        if to_layer is not None:
            geometry.transform(to_layer)
        parts = geometry.asGeometryCollection() if single else [geometry]
        for part in parts:
            feature = QgsFeature(corrections.fields())
            feature.setGeometry(part)
            feature.setAttribute(index, name)
            features.append(feature)
    if not corrections.isEditable() and not corrections.startEditing():
        raise MapRefinerError(f"“{corrections.name()}” cannot be edited; choose another layer.")
    corrections.beginEditCommand(f"Map Refiner: turn back {what}")
    added = all(corrections.addFeature(f) for f in features)
    if not added:
        corrections.destroyEditCommand()
        raise MapRefinerError(f"The polygons could not be added to “{corrections.name()}”.")
    corrections.endEditCommand()
    corrections.triggerRepaint()


class TurnBackFlow:
    """The map tool while the dialog's *Turn changes back* button is down."""

    def __init__(
        self,
        iface: QgisInterface,
        corrections: Callable[[], tuple[QgsVectorLayer | None, str]],
        released: Callable[[], None],
    ) -> None:
        self.iface = iface
        self.corrections = corrections  # the dialog's correction layer and class field
        self.released = released  # the button goes up when another tool is chosen
        self.tool: PickTool | None = None

    def set_active(self, active: bool) -> None:
        canvas = self.iface.mapCanvas()
        if not active:
            if self.tool is not None and canvas.mapTool() is self.tool:
                canvas.unsetMapTool(self.tool)
            return
        if self.tool is None:
            self.tool = PickTool(canvas)
            self.tool.picked.connect(self.pick)
            self.tool.dragged.connect(self.pick_area)
            self.tool.outlined.connect(self.pick_area)
            self.tool.deactivated.connect(self.released)
        canvas.setMapTool(self.tool)
        layer, _field = self.corrections()
        if layer is None:
            show_warning(
                self.iface.messageBar(),
                "Choose or create a correction layer first (New correction layer…): the "
                "changes you click go there.",
            )
            return
        show_info(
            self.iface.messageBar(),
            f"Click a change on a changes layer to turn it back into “{layer.name()}”, or "
            "drag a rectangle over several (where most of them are wrong), or hold Shift and "
            "draw around the wrong part of a change.",
        )

    def pick(self, point: QgsPointXY) -> None:
        """Turn back the change under a click."""
        self._turn_back(point)

    def pick_area(self, area: QgsRectangle | QgsGeometry) -> None:
        """Turn back every change inside a dragged rectangle or a freehand outline."""
        self._turn_back(area)

    def _turn_back(self, area: Area) -> None:
        project = QgsProject.instance()
        try:
            layer, field = self.corrections()
            if layer is None:
                raise MapRefinerError(
                    "Choose or create a correction layer first (New correction layer…): the "
                    "changes you click go there."
                )
            crs = self.iface.mapCanvas().mapSettings().destinationCrs()
            found = changes_layer_at(project, area, crs)
            if found is None:
                raise MapRefinerError(
                    "No changes layer there: refine with a round's model, then click what "
                    "its changes layer shows where the new map is wrong (or drag a rectangle "
                    "over them)."
                )
            changes, at = found
            if isinstance(at, QgsPointXY):
                text = turn_back(changes, at, layer, field)
            else:
                text = turn_back_area(changes, at, layer, field)
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            return
        show_success(self.iface.messageBar(), text)

    def turn_back_listed(self, change: ChangeRegion) -> bool:
        """Turn back a change of the dock's review list (the button under it); False, with
        the reason in the message bar, when it could not."""
        try:
            layer, field = self.corrections()
            if layer is None:
                raise MapRefinerError(
                    "Choose or create a correction layer first (New correction layer…): the "
                    "changes you turn back go there."
                )
            text = turn_back_listed(change, layer, field)
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            return False
        show_success(self.iface.messageBar(), text)
        return True

    def unload(self) -> None:
        self.set_active(False)
        self.tool = None
