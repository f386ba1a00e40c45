"""The area an XYZ layer is fetched over: the map view when it is refined, unless the
user types an extent, takes one from a layer or draws one on the map."""

from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem
from qgis.gui import QgsExtentGroupBox, QgsMapCanvas
from qgis.PyQt.QtWidgets import QWidget

from ..jobs.fetch_job import View

CHOSEN = (
    QgsExtentGroupBox.ExtentState.UserExtent,
    QgsExtentGroupBox.ExtentState.DrawOnCanvas,
    QgsExtentGroupBox.ExtentState.ProjectLayerExtent,
)


class AreaBox(QgsExtentGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle("Area to fetch (XYZ layers): the map view, or an extent you choose or draw")
        self.setOutputCrs(QgsCoordinateReferenceSystem("EPSG:3857"))

    def set_canvas(self, canvas: QgsMapCanvas | None) -> None:
        if canvas is not None:
            self.setMapCanvas(canvas)  # with "Draw on Canvas"

    def chosen(self) -> View | None:
        """The extent the user chose or drew; None: the map view at refine time."""
        extent = self.outputExtent()
        if self.extentState() not in CHOSEN or extent.isEmpty():
            return None
        return extent, self.outputCrs()

    def forget(self) -> None:
        """Back to the map view (after Project ▸ New, the old project's extent means nothing)."""
        self.setOutputExtentFromCurrent()
