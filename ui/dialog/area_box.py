"""The area an XYZ or WMS layer is fetched over: the map view when it is refined, unless
the user types an extent, takes one from a layer or draws one on the map."""

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
        self.setTitleBase("Area to fetch")  # QGIS adds "(current: map view)" and so on
        self.setToolTip(
            "An XYZ or WMS layer is fetched over the map view when you click Refine, "
            "or over the extent you type, take from a layer or draw here"
        )
        self.setOutputCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
        self.setOutputExtentFromCurrent()
        self.setCollapsed(True)
        self.canvas: QgsMapCanvas | None = None

    def set_canvas(self, canvas: QgsMapCanvas | None) -> None:
        """Draw on canvas, and the map view's numbers kept up to date while they apply."""
        if canvas is None:
            return
        self.canvas = canvas
        self.setMapCanvas(canvas)
        canvas.extentsChanged.connect(self.follow_view)
        self.follow_view()

    def follow_view(self) -> None:
        if self.canvas is None:
            return
        self.setCurrentExtent(self.canvas.extent(), self.canvas.mapSettings().destinationCrs())
        if self.extentState() == QgsExtentGroupBox.ExtentState.CurrentExtent:
            self.setOutputExtentFromCurrent()

    def chosen(self) -> View | None:
        """The extent the user chose or drew; None: the map view at refine time."""
        extent = self.outputExtent()
        if self.extentState() not in CHOSEN or extent.isEmpty():
            return None
        return extent, self.outputCrs()

    def forget(self) -> None:
        """Back to the map view (after Project ▸ New, the old project's extent means nothing)."""
        self.setOutputExtentFromCurrent()
