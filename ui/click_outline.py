"""*Outline with a click*: click inside an object the map has wrong and its outline, grown
from the image's colours around the click (engine/labels/click_outline.py), becomes a
correction polygon of the class chosen beside the button, in the dialog's correction
layer, for the next Fine-tune to learn (and its map to keep).

A map tool, active while the dialog's button is down. A click reads a window of the
dialog's image around it (60 m across, averaged down to 256 pixels a side: a tenth of a
second), so it runs on the main thread; what one click adds is one edit command of the
correction layer, and the layer's Undo takes it away again."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qgis.core import (
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgisInterface, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt

from ..engine.errors import MapRefinerError
from .correction_edits import add_polygons
from .messages import show_error, show_info, show_success, show_warning
from .sources import raster_path

#: Where a raster is its own image, what one click reads: its bands as the dialog names
#: them, else the model's, else the first three (or the one a grey image has).
DEFAULT_BANDS = (1, 2, 3)


def outline_bands(chosen: Sequence[int] | None, model: Sequence[int], count: int) -> list[int]:
    """The bands a click reads: the dialog's choice, else the model's where the image has
    them, else the first three it has."""
    for bands in (chosen, model):
        if bands and max(bands) <= count:
            return list(bands)
    return list(DEFAULT_BANDS[: max(1, min(3, count))])


def outline_clicked(
    image: QgsRasterLayer,
    at: QgsPointXY,
    bands: Sequence[int],
    class_name: str,
    corrections: QgsVectorLayer,
    class_field: str,
) -> str:
    """Add the outline of the object under ``at`` (in ``image``'s CRS) to ``corrections``
    as a polygon of ``class_name``; returns what the message bar says. Raises
    MapRefinerError."""
    from ..engine.labels.click_outline import outline_at

    found = outline_at(raster_path(image), at.x(), at.y(), bands)
    add_polygons(
        corrections,
        class_field,
        [(found.wkt, class_name)],
        found.srs_wkt or image.crs().toWkt(),
        "Map Refiner: outline with a click",
    )
    text = (
        f"Outlined {found.describe()} as {class_name} in “{corrections.name()}”; "
        "Fine-tune to learn it (the layer's Undo takes it away)"
    )
    if found.cut:
        text += (
            "; it reached the 60 m read around your click, so the object may go on: "
            "click it again beyond the new polygon's edge for the rest"
        )
    return text


class ClickOutlineFlow:
    """The map tool while the dialog's *Outline with a click* button is down."""

    def __init__(
        self,
        iface: QgisInterface,
        corrections: Callable[[], tuple[QgsVectorLayer | None, str]],
        image: Callable[[], tuple[QgsRasterLayer | None, list[int]]],
        class_name: Callable[[], str],
        released: Callable[[], None],
    ) -> None:
        self.iface = iface
        self.corrections = corrections  # the dialog's correction layer and class field
        self.image = image  # the dialog's raster and the bands a click reads
        self.class_name = class_name  # the class chosen beside the button
        self.released = released  # the button goes up when another tool is chosen
        self.tool: QgsMapToolEmitPoint | None = None

    def set_active(self, active: bool) -> None:
        canvas = self.iface.mapCanvas()
        if not active:
            if self.tool is not None and canvas.mapTool() is self.tool:
                canvas.unsetMapTool(self.tool)
            return
        if self.tool is None:
            self.tool = QgsMapToolEmitPoint(canvas)
            self.tool.canvasClicked.connect(self.clicked)
            self.tool.deactivated.connect(self.released)
        canvas.setMapTool(self.tool)
        layer, _field = self.corrections()
        if layer is None:
            show_warning(
                self.iface.messageBar(),
                "Choose or create a correction layer first (New correction layer…): the "
                "outlines you click go there.",
            )
            return
        show_info(
            self.iface.messageBar(),
            f"Click inside an object the map has wrong: its outline goes into “{layer.name()}” "
            f"as {self.class_name() or 'the class chosen beside the button'}. Check each one: "
            "an object the colour of its surroundings leaks, a roof in two tones comes "
            "back as the half clicked.",
        )

    def clicked(self, point: QgsPointXY, button: object) -> None:
        """The tool's canvasClicked: a left click outlines (``button`` a Qt mouse button,
        not annotated as one: the Qt6 scan, tests/test_qt6_ready.py, reads the enum's
        name there as unscoped); the right button stays QGIS's."""
        if button == Qt.MouseButton.LeftButton:
            self.outline(point)

    def outline(self, point: QgsPointXY) -> None:
        """Outline the object under ``point`` (in the canvas's CRS)."""
        try:
            layer, field = self.corrections()
            if layer is None:
                raise MapRefinerError(
                    "Choose or create a correction layer first (New correction layer…): the "
                    "outlines you click go there."
                )
            image, bands = self.image()
            if image is None:
                raise MapRefinerError(
                    "Choose the image in the dialog's input first: the outline is read from it."
                )
            name = self.class_name()
            if not name:
                raise MapRefinerError(
                    "Choose a usable model first: its classes fill the list beside "
                    "Outline with a click."
                )
            crs = self.iface.mapCanvas().mapSettings().destinationCrs()
            at = QgsCoordinateTransform(crs, image.crs(), QgsProject.instance()).transform(point)
            if not image.extent().contains(at):
                raise MapRefinerError(f"Click on “{image.name()}”: the outline is read from it.")
            text = outline_clicked(image, at, bands, name, layer, field)
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            return
        show_success(self.iface.messageBar(), text)

    def unload(self) -> None:
        self.set_active(False)
        self.tool = None
