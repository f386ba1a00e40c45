"""The pixel size on the ground of an image whose file does not give one: a plain photo
without georeferencing, or a file without a CRS whose layer has none either. Shown only
for such a layer; the refine, the iterations slider and the fine-tune then read the image
with it (RefineParams.input_resolution_m, as map-refiner --input-resolution and
Processing's INPUT_RESOLUTION), and its maps lie on the image's pixels as QGIS shows it."""

from __future__ import annotations

from qgis.core import QgsMapLayer
from qgis.gui import QgsDoubleSpinBox
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QWidget

from ..sources import needs_pixel_size

HELP = (
    "The image's file gives no size on the ground for its pixels (no georeferencing, or no "
    "CRS on the file or the layer), and the model needs it: give it in metres (e.g. 0.03 "
    "for a drone photo taken at about 100 m, 0.3 for an aerial photo). Or georeference the "
    "image (Raster ▸ Georeferencer) or set its layer's CRS, and this is not needed."
)


class PixelSizeBox(QWidget):
    """A spin box of metres with a note, visible only while the layer needs it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spin = QgsDoubleSpinBox(self)
        self.spin.setRange(0.0, 1000.0)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.01)
        self.spin.setSuffix(" m")
        self.spin.setClearValue(0.0)
        self.spin.setSpecialValueText("choose it")
        self.spin.setToolTip(HELP)
        self.note = QLabel("pixel size on the ground (its file has none)", self)
        self.note.setWordWrap(True)
        self.note.setToolTip(HELP)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spin)
        row.addWidget(self.note, 1)
        self.needed = False
        self.setVisible(False)

    def update_for(self, layer: QgsMapLayer | None) -> None:
        self.needed = needs_pixel_size(layer)
        self.setVisible(self.needed)

    def value_m(self) -> float | None:
        """The size given, None where the layer needs none or none was given (the engine
        then says what is missing)."""
        value = self.spin.value()
        return value if self.needed and value > 0 else None
