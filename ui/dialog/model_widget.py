"""Choosing a model: the bundled default or a .safetensors file, with its classes shown."""

from __future__ import annotations

from html import escape
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QGridLayout, QLabel, QRadioButton, QWidget

from ...engine.errors import MapRefinerError
from .model_info import ModelSummary, read_model_summary

MODEL_FILTER = "Map Refiner models (*.safetensors)"


class ModelChooser(QWidget):
    """Emits ``model_changed`` with a ModelSummary, or None when unusable."""

    model_changed = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bundled_radio = QRadioButton("Bundled default model", self)
        self.file_radio = QRadioButton("Model file", self)
        self.file_widget = QgsFileWidget(self)
        self.file_widget.setFilter(MODEL_FILTER)
        self.file_widget.setDialogTitle("Choose a Map Refiner model")
        self.info_label = QLabel(self)
        self.info_label.setWordWrap(True)
        self.summary: ModelSummary | None = None
        self.why = ""  # why the dialog chose the model; "" once the user chooses one
        self._choosing = False
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.bundled_radio, 0, 0, 1, 2)
        grid.addWidget(self.file_radio, 1, 0)
        grid.addWidget(self.file_widget, 1, 1)
        grid.addWidget(self.info_label, 2, 0, 1, 2)
        self.bundled_radio.setChecked(True)
        self.file_widget.setEnabled(False)
        self.bundled_radio.toggled.connect(self._on_user_choice)
        self.file_widget.fileChanged.connect(self._on_user_choice)

    def _on_user_choice(self) -> None:
        if not self._choosing:
            self.why = ""
        self.refresh()

    def set_model_path(self, path: str, why: str = "") -> None:
        """Choose ``path`` ("" the bundled model); ``why``: what the dialog says about
        having chosen it, until the user chooses another."""
        self._choosing, self.why = True, why
        try:
            self.file_widget.setFilePath(path)
            (self.file_radio if path else self.bundled_radio).setChecked(True)
        finally:
            self._choosing = False
        self.refresh()

    def model_path(self) -> Path | None:
        """None means the bundled default model."""
        if self.bundled_radio.isChecked():
            return None
        text = self.file_widget.filePath().strip()
        return Path(text) if text else None

    def refresh(self) -> None:
        self.file_widget.setEnabled(self.file_radio.isChecked())
        try:
            if self.file_radio.isChecked() and not self.file_widget.filePath().strip():
                raise MapRefinerError("Choose a .safetensors model file.")
            self.summary = read_model_summary(self.model_path())
        except MapRefinerError as exc:
            self.summary = None
            self.info_label.setText(f"<span style='color:#b00020'>{escape(exc.message)}</span>")
        else:
            self.info_label.setText(summary_html(self.summary))
        self.model_changed.emit(self.summary)


def summary_html(summary: ModelSummary) -> str:
    swatches = " ".join(
        f"<span style='background-color:rgb{colour};'>&nbsp;&nbsp;&nbsp;</span>&nbsp;{escape(name)}"
        for name, colour in zip(summary.class_names, summary.colours)
    )
    return (
        f"<b>{escape(summary.name)}</b> — {swatches}<br>"
        f"Works at {summary.resolution_m:g} m/pixel; input is resampled to it and back."
    )
