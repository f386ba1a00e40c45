"""*Turn changes back*: click a change on a round's changes layer and it becomes a
correction polygon of the class it had before (engine/scoring/turn_back.py), in the
dialog's correction layer, for the next Fine-tune to learn (and its map to keep).

A map tool, active while the dialog's button is down; each click reads a window of the
changes raster around it (instant), so it runs on the main thread. The polygon is one
edit command of the correction layer: the layer's Undo takes it away again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgisInterface, QgsMapCanvas, QgsMapMouseEvent, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import pyqtSignal

from ..engine.errors import MapRefinerError
from .dialog.correction_layer import CLASS_FIELD
from .layers import CHANGES_OF_KEY, PREVIOUS_MAP_KEY
from .messages import show_error, show_success, show_warning


class PickTool(QgsMapToolEmitPoint):
    """Emits the clicked point (in the canvas's CRS)."""

    picked = pyqtSignal(QgsPointXY)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)

    def canvasReleaseEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.picked.emit(self.toMapCoordinates(e.pos()))


def changes_layer_at(
    project: QgsProject, point: QgsPointXY, crs: QgsCoordinateReferenceSystem
) -> tuple[QgsRasterLayer, QgsPointXY] | None:
    """The topmost shown changes layer under ``point`` (and the point in its CRS) that
    knows the previous map it was made against; raises MapRefinerError when the only
    ones there do not (made before session 40: refine again to make a new one)."""
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
        at = to_layer.transform(point)
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
    field = class_field or CLASS_FIELD
    index = corrections.fields().indexOf(field)
    if index < 0:
        raise MapRefinerError(
            f"“{corrections.name()}” has no field “{field}” for the class; choose its class "
            "field in the dialog, or make a correction layer with New correction layer…"
        )
    geometry = QgsGeometry.fromWkt(region.wkt)
    source = QgsCoordinateReferenceSystem.fromWkt(region.srs_wkt)
    if source.isValid() and corrections.crs().isValid() and source != corrections.crs():
        geometry.transform(QgsCoordinateTransform(source, corrections.crs(), QgsProject.instance()))
    feature = QgsFeature(corrections.fields())
    feature.setGeometry(geometry)
    feature.setAttribute(index, region.was)
    if not corrections.isEditable() and not corrections.startEditing():
        raise MapRefinerError(f"“{corrections.name()}” cannot be edited; choose another layer.")
    corrections.beginEditCommand("Map Refiner: turn a change back")
    added = corrections.addFeature(feature)
    corrections.endEditCommand()
    if not added:
        raise MapRefinerError(f"The polygon could not be added to “{corrections.name()}”.")
    corrections.triggerRepaint()
    text = (
        f"Turned back {region.describe()}: drawn as {region.was} in “{corrections.name()}”; "
        "Fine-tune to learn it (the layer's Undo takes it away)"
    )
    if region.cut:
        text += "; the change is larger than the part read around your click, so click it "
        text += "again beyond the new polygon's edge for the rest"
    return text


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
            self.tool.deactivated.connect(self.released)
        canvas.setMapTool(self.tool)
        layer, _field = self.corrections()
        if layer is None:
            show_warning(
                self.iface.messageBar(),
                "Choose or create a correction layer first (New correction layer…): the "
                "changes you click go there.",
            )

    def pick(self, point: QgsPointXY) -> None:
        project = QgsProject.instance()
        try:
            layer, field = self.corrections()
            if layer is None:
                raise MapRefinerError(
                    "Choose or create a correction layer first (New correction layer…): the "
                    "changes you click go there."
                )
            crs = self.iface.mapCanvas().mapSettings().destinationCrs()
            found = changes_layer_at(project, point, crs)
            if found is None:
                raise MapRefinerError(
                    "No changes layer there: refine with a round's model, then click what "
                    "its changes layer shows where the new map is wrong."
                )
            text = turn_back(found[0], found[1], layer, field)
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            return
        show_success(self.iface.messageBar(), text)

    def unload(self) -> None:
        self.set_active(False)
        self.tool = None
