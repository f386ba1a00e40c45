"""The polygon layer of labels used by fine-tuning and training, with its mode."""

from __future__ import annotations

from qgis.core import QgsFieldProxyModel, QgsMapLayerProxyModel, QgsVectorLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsFieldComboBox, QgsMapLayerComboBox, QgsSpinBox
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QToolButton,
    QWidget,
)

from ...engine.labels.unchosen_field import CLASS_LIKE
from ...engine.vocabulary import LABEL_MODE_TEXT, label_mode


class LabelsBox(QgsCollapsibleGroupBox):
    """Label layer, class field, labeling mode, training steps and the training actions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Labels for fine-tuning and training", parent)
        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        self.field_combo = QgsFieldComboBox(self)
        self.field_combo.setFilters(
            QgsFieldProxyModel.Filter.String
            | QgsFieldProxyModel.Filter.Int
            | QgsFieldProxyModel.Filter.LongLong
        )
        self.field_combo.setAllowEmptyFieldName(True)
        self.field_combo.setToolTip(
            "Class names or indices; empty: every polygon is class 1 (refused where another field "
            "names the model's other classes)"
        )
        self.mode_combo = QComboBox(self)
        for key, text in LABEL_MODE_TEXT.items():
            self.mode_combo.addItem(text, key)
        self.new_layer_button = QToolButton(self)
        self.new_layer_button.setText("New correction layer…")
        self.new_layer_button.setToolTip(
            "A polygon layer for corrections beside the raster, with the model's classes. "
            "Draw each polygon round the whole object, just inside its edges: one that "
            "spills over teaches the model the wrong edge, and a patch of the object "
            "teaches little and can make the map worse."
        )
        self.turn_back_button = QToolButton(self)
        self.turn_back_button.setText("Turn changes back")
        self.turn_back_button.setCheckable(True)
        self.turn_back_button.setToolTip(
            "After refining with a round's model, click a change its changes layer shows "
            "where the new map is wrong (a real roof erased, a car park become a building): "
            "the whole change becomes a polygon of the class it had, in this correction "
            "layer, for the next Fine-tune to learn. Drag a rectangle to turn back every "
            "change inside it, right ones too: where most of them are wrong. Hold Shift and "
            "draw around the wrong part of a change to turn back only that part (where part "
            "of a change is right). The layer's Undo takes one click or drag away."
        )
        self.steps_spin = QgsSpinBox(self)
        self.steps_spin.setRange(0, 100000)
        self.steps_spin.setSingleStep(50)
        self.steps_spin.setSpecialValueText("default")
        self.steps_spin.setClearValue(0)
        self.steps_spin.setToolTip(
            # training/corrections/fit.py CPU_STEPS/GPU_STEPS (not imported: torch)
            "Optimiser steps; default: 60 on a CPU (150 on a GPU) to fine-tune, "
            "2000 for a coarse CNN"
        )
        self.finetune_button = QPushButton("Fine-tune", self)
        self.finetune_button.setToolTip(
            "Fine-tune the model's RNN on these labels; saves a new model and selects it"
        )
        self.train_coarse_button = QPushButton("Train coarse CNN", self)
        self.train_coarse_button.setToolTip(
            "Train a new coarse CNN on the raster and these "
            "labels, with the model's classes and resolution"
        )
        self.rounds_list = QListWidget(self)
        # two rounds of two lines each in view, the newest scrolled to
        lines = self.rounds_list.fontMetrics().lineSpacing()
        self.rounds_list.setMaximumHeight(4 * lines + 2 * self.rounds_list.frameWidth() + 8)
        self.rounds_list.setToolTip(
            "This project's fine-tune rounds, newest last, with how they scored on the "
            "polygons each one held out"
        )
        self.undo_button = QPushButton("Undo round", self)
        self.undo_button.setToolTip(
            "Go back to the model the last round started from and remove the maps refined "
            "with it (its model file stays on disk)"
        )
        self.undo_button.setEnabled(False)
        self.dropped_fit_button = QPushButton("Use dropped fit", self)
        self.dropped_fit_button.setToolTip(
            "The last round's fit got your held-out polygons right but changed much more of "
            "the map than you drew, so its checks dropped it. Select it anyway, refine and "
            "look: it may have learnt your kind of error everywhere, or painted the map. "
            "Undo round goes back to the model the round started from."
        )
        self.dropped_fit_button.setEnabled(False)
        self.dropped_fit_available = False  # the last round has a dropped fit to take
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(self.new_layer_button)
        row.addWidget(self.turn_back_button)
        form = QFormLayout(self)
        form.addRow("Polygon layer", row)
        form.addRow("Class field", self.field_combo)
        form.addRow("Mode", self.mode_combo)
        actions = QHBoxLayout()
        actions.addWidget(self.steps_spin)
        actions.addStretch(1)
        actions.addWidget(self.finetune_button)
        actions.addWidget(self.undo_button)
        actions.addWidget(self.dropped_fit_button)
        actions.addWidget(self.train_coarse_button)
        form.addRow("Training steps", actions)
        form.addRow("Rounds", self.rounds_list)  # the whole width: the lines read whole
        self.preferred_field = "class"
        self.layer_combo.layerChanged.connect(self._on_layer_changed)

    def _on_layer_changed(self, layer: QgsVectorLayer | None) -> None:
        self.field_combo.setLayer(layer)
        self.field_combo.setField(self._class_field_of(layer))

    def _class_field_of(self, layer: QgsVectorLayer | None) -> str:
        """The remembered field if the layer has it, else its first field named like a
        class field (``Class``, ``label``, ``klasse``...: a layer from elsewhere), else
        none (every polygon class 1; the engine refuses that where a field names the
        model's other classes). None chosen (an empty remembered field) stays none."""
        if layer is None or not self.preferred_field:
            return ""
        names = [f.name() for f in layer.fields()]
        wanted = [self.preferred_field.lower(), *sorted(CLASS_LIKE)]
        for want in wanted:
            for name in names:
                if name.strip().lower() == want:
                    return name
        return ""

    def set_layer(self, layer: QgsVectorLayer | None, field: str | None = None) -> None:
        """Select ``layer``; its field ``field`` (default: the remembered one) if it has it."""
        if field is not None:
            self.preferred_field = field
        self.layer_combo.setLayer(layer)
        self._on_layer_changed(layer)

    def layer(self) -> QgsVectorLayer | None:
        return self.layer_combo.currentLayer()

    def field(self) -> str:
        return self.field_combo.currentField()

    def mode(self) -> str:
        return self.mode_combo.currentData()

    def steps(self) -> int | None:
        """None: the engine's default."""
        return self.steps_spin.value() or None

    def set_rounds(
        self, lines: list[str], details: list[str] | None = None, dropped_fit: bool = False
    ) -> None:
        """The rounds' short lines, newest last, each with its ``details`` as tooltip;
        Undo only when there is one, *Use dropped fit* only when the last round has one."""
        self.rounds_list.clear()
        self.rounds_list.addItems(lines)
        for i, text in enumerate(details or []):
            self.rounds_list.item(i).setToolTip(text)
        if lines:
            self.rounds_list.scrollToBottom()
        self.undo_button.setEnabled(bool(lines))
        self.dropped_fit_available = bool(lines) and dropped_fit
        self.dropped_fit_button.setEnabled(self.dropped_fit_available)

    def set_mode(self, mode: str) -> None:
        """Select ``mode`` (one of vocabulary.LABEL_MODES; ``full`` reads as ``tile``)."""
        index = self.mode_combo.findData(label_mode(mode))
        self.mode_combo.setCurrentIndex(max(index, 0))
