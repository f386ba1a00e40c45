"""The polygon layer of labels used by fine-tuning and training, with its mode."""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsFieldProxyModel, QgsMapLayerProxyModel, QgsVectorLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QToolButton, QWidget

LABEL_MODE_TEXT = {
    "sparse": "Sparse corrections (only pixels under polygons count)",
    "full": "Fully labeled tile (pixels outside polygons are background)",
}


class LabelsBox(QgsCollapsibleGroupBox):
    """Label layer, class field and labeling mode."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Labels for fine-tuning and training", parent)
        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        self.field_combo = QgsFieldComboBox(self)
        self.field_combo.setFilters(QgsFieldProxyModel.String | QgsFieldProxyModel.Int
                                    | QgsFieldProxyModel.LongLong)
        self.mode_combo = QComboBox(self)
        for key, text in LABEL_MODE_TEXT.items():
            self.mode_combo.addItem(text, key)
        self.new_layer_button = QToolButton(self)
        self.new_layer_button.setText("New correction layer…")
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(self.new_layer_button)
        form = QFormLayout(self)
        form.addRow("Polygon layer", row)
        form.addRow("Class field", self.field_combo)
        form.addRow("Mode", self.mode_combo)
        self.layer_combo.layerChanged.connect(self.field_combo.setLayer)

    def set_layer(self, layer: Optional[QgsVectorLayer], field: str = "class") -> None:
        self.layer_combo.setLayer(layer)
        self.field_combo.setLayer(layer)
        if layer is not None and layer.fields().indexOf(field) >= 0:
            self.field_combo.setField(field)

    def layer(self) -> Optional[QgsVectorLayer]:
        return self.layer_combo.currentLayer()

    def field(self) -> str:
        return self.field_combo.currentField()

    def mode(self) -> str:
        return self.mode_combo.currentData()

    def set_mode(self, mode: str) -> None:
        index = self.mode_combo.findData(mode)
        self.mode_combo.setCurrentIndex(max(index, 0))
