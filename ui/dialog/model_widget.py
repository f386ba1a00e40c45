"""Choosing a model: the bundled one chosen for the image, a bundled one named (default or
general) or a .safetensors file, with its classes shown."""

from __future__ import annotations

from html import escape
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QGridLayout, QLabel, QRadioButton, QSizePolicy, QWidget

from ...engine.errors import MapRefinerError
from ...engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from ..paths import same_file
from .model_info import ModelSummary, read_model_summary

MODEL_FILTER = "Map Refiner models (*.safetensors)"


class ModelChooser(QWidget):
    """Emits ``model_changed`` with a ModelSummary, or None when unusable."""

    model_changed = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.auto_radio = QRadioButton("Bundled, chosen for the image", self)
        self.auto_radio.setToolTip(
            "When the refine or fine-tune starts, the image's colours are compared with the "
            "scenes the bundled default model learnt from: like one of them, the model that "
            "reads that scene's held-out half better (the default on Austin's aerial photos); "
            "unlike all of them (other sensors, colours, haze), or with pixels of 0.45 m or "
            "more (satellite-like), the general model. The result's message says which it "
            "took and why."
        )
        self.bundled_radio = QRadioButton("Bundled default model", self)
        self.bundled_radio.setToolTip(
            "Best on aerial photos like those it learnt from (US orthophotos at 0.3 m)."
        )
        self.general_radio = QRadioButton(
            "Bundled general (drones, satellites, other sensors)", self
        )
        self.general_radio.setToolTip(
            "Every layer retrained with turned, flipped, rescaled and recoloured patches. On "
            "imagery unlike the default's (drones, satellites, hazy or differently coloured "
            "photos) it usually starts from a better map (trained this way without a drone "
            "scene, it reached 45 building IoU there, the default's recipe 19), and summed "
            "over 144 measured correction rounds the maps ended higher with it; on US aerial "
            "photos it is weaker. Start with it on such imagery, or refine with both and keep "
            "the better map."
        )
        self.file_radio = QRadioButton("Model file", self)
        self.file_widget = QgsFileWidget(self)
        self.file_widget.setFilter(MODEL_FILTER)
        self.file_widget.setDialogTitle("Choose a Map Refiner model")
        self.info_label = QLabel(self)
        self.info_label.setWordWrap(True)
        # never squeezed below its two lines when the dialog is as tall as the screen
        self.info_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.summary: ModelSummary | None = None
        self.why = ""  # why the dialog chose the model; "" once the user chooses one
        self._choosing = False
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.auto_radio, 0, 0, 1, 2)
        grid.addWidget(self.bundled_radio, 1, 0)
        grid.addWidget(self.general_radio, 1, 1)
        grid.addWidget(self.file_radio, 2, 0)
        grid.addWidget(self.file_widget, 2, 1)
        grid.addWidget(self.info_label, 3, 0, 1, 2)
        self.auto_radio.setChecked(True)
        self.file_widget.setEnabled(False)
        self.auto_radio.toggled.connect(self._on_user_choice)
        self.bundled_radio.toggled.connect(self._on_user_choice)
        self.general_radio.toggled.connect(self._on_user_choice)
        if not GENERAL_MODEL_PATH.exists():  # a plugin copied without it
            self.general_radio.setEnabled(False)
            self.general_radio.setToolTip(
                f"{GENERAL_MODEL_PATH.name} is missing from the plugin's folder; "
                "reinstall the plugin to get it."
            )
        self.file_widget.fileChanged.connect(self._on_user_choice)

    def _on_user_choice(self) -> None:
        if not self._choosing:
            self.why = ""
        self.refresh()

    def set_model_path(self, path: str, why: str = "") -> None:
        """Choose ``path`` ("" the bundled model chosen for the image; the bundled models'
        files check their buttons); ``why``: what the dialog says about having chosen it,
        until the user chooses another."""
        self._choosing, self.why = True, why
        try:
            if path and same_file(Path(path), GENERAL_MODEL_PATH):
                self.general_radio.setChecked(True)
            elif path and same_file(Path(path), DEFAULT_MODEL_PATH):
                self.bundled_radio.setChecked(True)
            else:
                self.file_widget.setFilePath(path)
                (self.file_radio if path else self.auto_radio).setChecked(True)
        finally:
            self._choosing = False
        self.refresh()

    def chooses_for_image(self) -> bool:
        """Whether the refine or fine-tune is to choose the bundled model for the image
        (engine/modelfile/bundled_choice.py); model_path() is None then."""
        return self.auto_radio.isChecked()

    def remembered(self) -> str:
        """What set_model_path takes to choose the same again ("" chosen for the image)."""
        if self.auto_radio.isChecked():
            return ""
        path = self.model_path()
        return str(path if path is not None else DEFAULT_MODEL_PATH)

    def model_path(self) -> Path | None:
        """None means the bundled default model, or (chooses_for_image) the bundled model
        the engine chooses for the image."""
        if self.auto_radio.isChecked() or self.bundled_radio.isChecked():
            return None
        if self.general_radio.isChecked():
            return GENERAL_MODEL_PATH
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
            self.info_label.setText(summary_html(self.summary, self.chooses_for_image()))
        self.model_changed.emit(self.summary)


def summary_html(summary: ModelSummary, chosen: bool = False) -> str:
    """The model's name (with ``chosen``: the bundled default or general model, as the
    image decides; both have the default's classes and resolution), classes and grid."""
    swatches = " ".join(
        f"<span style='background-color:rgb{colour};'>&nbsp;&nbsp;&nbsp;</span>&nbsp;{escape(name)}"
        for name, colour in zip(summary.class_names, summary.colours)
    )
    name = "The bundled default or general model, as the image decides" if chosen else summary.name
    return (
        f"<b>{escape(name)}</b> — {swatches}<br>"
        f"Works at {summary.resolution_m:g} m/pixel; input is resampled to it and back."
    )
