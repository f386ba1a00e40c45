"""The dock after a refine: an iteration slider with play, "keep this iteration", and
the ranked list of uncertain regions. Widgets and signals only; see flow.py."""

from __future__ import annotations

from collections.abc import Sequence

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...engine.refine.uncertainty import KINDS, Region

NO_ITERATIONS = "No iterations yet: refine a raster with the dialog."


class IterationsDock(QgsDockWidget):
    iteration_changed = pyqtSignal(int)
    recompute_requested = pyqtSignal()
    keep_requested = pyqtSignal(int)
    region_activated = pyqtSignal(int)  # row in the list, 0 = most uncertain
    play_toggled = pyqtSignal(bool)
    uncertainty_toggled = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Map Refiner: iterations", parent)
        self.setObjectName("MapRefinerIterationsDock")
        body = QWidget(self)
        self.title_label = QLabel("Refine a raster to see its iterations here.", body)
        self.title_label.setWordWrap(True)
        self.play_button = QPushButton("▶", body)
        self.play_button.setCheckable(True)
        self.play_button.setFixedWidth(36)
        self.play_button.setToolTip("Play the iterations from 0")
        self.slider = QSlider(Qt.Orientation.Horizontal, body)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setPageStep(1)
        self.spin = QSpinBox(body)
        self.max_spin = QSpinBox(body)
        self.max_spin.setRange(1, 50)
        self.max_spin.setValue(10)
        self.max_spin.setToolTip(
            "How many iterations to compute; the RNN was trained with fewer "
            "and may keep changing the map past them."
        )
        self.kind_combo = QComboBox(body)
        for kind in KINDS:
            self.kind_combo.addItem(kind, kind)
        self.recompute_button = QPushButton("Recompute", body)
        self.recompute_button.setToolTip(
            "Run the iterations again (a raster larger than "
            "2048×2048 pixels: over the map view; pan or zoom first)"
        )
        self.keep_button = QPushButton("Keep iteration 0", body)
        self.keep_button.setToolTip(
            "Write the whole raster refined with this many iterations; "
            "it becomes the map that Export polygons uses"
        )
        self.uncertainty_check = QCheckBox("Show the uncertainty layer", body)
        self.regions_list = QListWidget(body)
        self.regions_list.setToolTip("Most uncertain first; click to zoom there")
        self.status_label = QLabel("", body)
        self.status_label.setWordWrap(True)
        self._layout(body)
        self.setWidget(body)
        self._connect()
        self.set_range(0, 0)

    def _layout(self, body: QWidget) -> None:
        slider_row = QHBoxLayout()
        slider_row.addWidget(self.play_button)
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.spin)
        compute_row = QHBoxLayout()
        compute_row.addWidget(QLabel("Iterations 0 to", body))
        compute_row.addWidget(self.max_spin)
        compute_row.addWidget(self.kind_combo)
        compute_row.addWidget(self.recompute_button, 1)
        regions = QGroupBox("Where to draw next", body)
        rbox = QVBoxLayout(regions)
        hint = QLabel(
            "The most uncertain places at the iteration shown. Click one to zoom "
            "there, draw corrections in it, then Fine-tune.",
            regions,
        )
        hint.setWordWrap(True)
        rbox.addWidget(hint)
        rbox.addWidget(self.uncertainty_check)
        rbox.addWidget(self.regions_list, 1)
        box = QVBoxLayout(body)
        box.addWidget(self.title_label)
        box.addLayout(slider_row)
        box.addWidget(self.keep_button)
        box.addLayout(compute_row)
        box.addWidget(regions, 1)
        box.addWidget(self.status_label)

    def _connect(self) -> None:
        self.slider.valueChanged.connect(self.spin.setValue)
        self.spin.valueChanged.connect(self.slider.setValue)
        self.slider.valueChanged.connect(self._on_value)
        self.play_button.toggled.connect(self.play_toggled)
        self.recompute_button.clicked.connect(self.recompute_requested)
        self.keep_button.clicked.connect(lambda: self.keep_requested.emit(self.slider.value()))
        self.uncertainty_check.toggled.connect(self.uncertainty_toggled)
        self.regions_list.itemClicked.connect(self._on_item)
        self.regions_list.itemActivated.connect(self._on_item)

    def _on_value(self, value: int) -> None:
        self.keep_button.setText(f"Keep iteration {value}")
        self.iteration_changed.emit(value)

    def _on_item(self, item: QListWidgetItem) -> None:
        self.region_activated.emit(self.regions_list.row(item))

    def set_range(self, iterations: int, value: int) -> None:
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
            widget.setRange(0, iterations)
            widget.setValue(min(value, iterations))
            widget.blockSignals(False)
        has = iterations > 0
        for widget in (self.slider, self.spin, self.play_button, self.keep_button):
            widget.setEnabled(has)
        self.keep_button.setText(f"Keep iteration {self.slider.value()}")

    def set_iteration(self, value: int) -> None:
        self.slider.setValue(value)

    def set_regions(self, regions: Sequence[Region], sizes_m: Sequence[str]) -> None:
        self.regions_list.blockSignals(True)
        self.regions_list.clear()
        for region, size in zip(regions, sizes_m):
            item = QListWidgetItem(f"{region.rank}.  uncertainty {region.score:.2f}  ·  {size}")
            self.regions_list.addItem(item)
        self.regions_list.blockSignals(False)

    def clear(self, title: str = NO_ITERATIONS) -> None:
        """No raster: an empty list, a disabled slider, a title that says so (or why)."""
        self.title_label.setText(title)
        self.set_regions([], [])
        self.set_range(0, 0)
        self.set_busy(False, "")

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.recompute_button.setEnabled(not busy)
        self.keep_button.setEnabled(not busy and self.slider.maximum() > 0)
        self.status_label.setText(text)
