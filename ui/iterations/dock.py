"""The dock after a refine: an iteration slider with play, "keep this iteration", and
the ranked list of uncertain regions, or after a round of the round's largest changes to
review (each turned back with a button). Widgets and signals only; see flow.py."""

from __future__ import annotations

import time
from collections.abc import Sequence

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QPalette
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
#: A click's release within this many seconds of the press that chose its row (and zoomed
#: there) does not zoom again.
REZOOM_S = 0.8
#: What the "Where to draw next" list ranks: (key, combo text, hint under the combo).
LISTS = (
    (
        "uncertain",
        "Most uncertain places",
        "The most uncertain places at the iteration shown. Click one to zoom there, draw "
        "corrections in it, then Fine-tune.",
    ),
    (
        "changes",
        "Largest changes of this round",
        "What this round's map changed most where you did not draw, the largest first. "
        "Click one (or use the arrow keys) to zoom there; where the change is plainly "
        "wrong, Turn back this change (it goes into the correction layer; to turn back "
        "only part of it, draw around that part with Turn changes back and Shift held). "
        "Draw the largest errors you still see too, with care, then Fine-tune.",
    ),
)


class IterationsDock(QgsDockWidget):
    iteration_changed = pyqtSignal(int)
    recompute_requested = pyqtSignal()
    keep_requested = pyqtSignal(int)
    region_activated = pyqtSignal(int)  # row in the list, 0 = the first
    list_changed = pyqtSignal(str)  # what the list ranks: a LISTS key
    turn_back_requested = pyqtSignal(int)  # row of the review list to turn back
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
        self.list_combo = QComboBox(body)
        for key, text, _hint in LISTS:
            self.list_combo.addItem(text, key)
        self.list_combo.setToolTip(
            "After a correction round, the list can rank the round's largest changes "
            "instead: the ones to look at before the next round"
        )
        self.hint_label = QLabel(LISTS[0][2], body)
        self.hint_label.setWordWrap(True)
        self.regions_list = QListWidget(body)
        self.regions_list.setToolTip("The first is the one to look at first; click to zoom there")
        self.turn_back_button = QPushButton("Turn back this change", body)
        self.turn_back_button.setToolTip(
            "Add the selected change to the correction layer as the class it had before, "
            "for the next Fine-tune to learn (the layer's Undo takes it away)"
        )
        self.done: list[bool] = []  # rows of the review list turned back
        self.zoomed = (-1, 0.0)  # the row last zoomed to, and when (time.monotonic)
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
        rbox.addWidget(self.list_combo)
        rbox.addWidget(self.hint_label)
        rbox.addWidget(self.uncertainty_check)
        rbox.addWidget(self.regions_list, 1)
        rbox.addWidget(self.turn_back_button)
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
        self.regions_list.currentRowChanged.connect(self._on_current)
        self.list_combo.currentIndexChanged.connect(self._on_list)
        self.turn_back_button.clicked.connect(
            lambda: self.turn_back_requested.emit(self.regions_list.currentRow())
        )

    def _on_value(self, value: int) -> None:
        self.keep_button.setText(f"Keep iteration {value}")
        self.iteration_changed.emit(value)

    def _on_current(self, row: int) -> None:
        """Another row chosen (a click, or the arrow keys: the list is stepped through
        with them): zoom there."""
        self._enable_turn_back()
        if row >= 0:
            self.zoomed = (row, time.monotonic())
            self.region_activated.emit(row)

    def _on_item(self, item: QListWidgetItem) -> None:
        """A click or Enter on a row: zoom there again, unless choosing that row (the
        mouse press) just did."""
        row = self.regions_list.row(item)
        last, at = self.zoomed
        if row == last and time.monotonic() - at < REZOOM_S:
            return
        self.zoomed = (row, time.monotonic())
        self.region_activated.emit(row)

    def select_next(self, after: int) -> None:
        """Choose the first row after ``after`` not turned back (it is zoomed to), if any."""
        for row in range(after + 1, self.regions_list.count()):
            if not (row < len(self.done) and self.done[row]):
                self.regions_list.setCurrentRow(row)
                return

    def _no_row(self) -> None:
        """No row chosen: another list is coming (its rows mean other places)."""
        self.regions_list.blockSignals(True)
        self.regions_list.setCurrentRow(-1)
        self.regions_list.blockSignals(False)

    def _on_list(self, _index: int) -> None:
        self._no_row()
        key = self.list_kind()
        self.hint_label.setText(next(hint for k, _t, hint in LISTS if k == key))
        self.turn_back_button.setVisible(key == "changes")
        self._enable_turn_back()
        self.list_changed.emit(key)

    def list_kind(self) -> str:
        """What the list ranks now: a LISTS key."""
        return str(self.list_combo.currentData())

    def offer_changes(self, offered: bool) -> None:
        """Offer the round's changes as the list (and show them: a round's refine), or
        only the uncertain places (a refine without a previous map to compare)."""
        self._no_row()
        self.list_combo.blockSignals(True)
        self.list_combo.setCurrentIndex(1 if offered else 0)
        self.list_combo.setEnabled(offered)
        self.list_combo.blockSignals(False)
        self.hint_label.setText(LISTS[1 if offered else 0][2])
        self.turn_back_button.setVisible(offered)
        self._enable_turn_back()

    def _enable_turn_back(self) -> None:
        row = self.regions_list.currentRow()
        self.turn_back_button.setEnabled(
            0 <= row < self.regions_list.count() and not (row < len(self.done) and self.done[row])
        )

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
        self.set_rows(
            [
                f"{region.rank}.  uncertainty {region.score:.2f}  ·  {size}"
                for region, size in zip(regions, sizes_m)
            ]
        )

    def set_rows(self, rows: Sequence[str], done: Sequence[bool] = ()) -> None:
        """The list's rows; those ``done`` (changes turned back) greyed, still clickable
        to look at, not turned back twice. The selected row stays selected."""
        current = self.regions_list.currentRow()
        self.done = list(done)
        self.regions_list.blockSignals(True)
        self.regions_list.clear()
        for i, text in enumerate(rows):
            item = QListWidgetItem(text)
            if i < len(done) and done[i]:
                item.setForeground(
                    self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                )
            self.regions_list.addItem(item)
        if 0 <= current < len(rows):
            self.regions_list.setCurrentRow(current)
        self.regions_list.blockSignals(False)
        self._enable_turn_back()

    def clear(self, title: str = NO_ITERATIONS) -> None:
        """No raster: an empty list, a disabled slider, a title that says so (or why)."""
        self.title_label.setText(title)
        self.offer_changes(False)
        self.set_regions([], [])
        self.set_range(0, 0)
        self.set_busy(False, "")

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.recompute_button.setEnabled(not busy)
        self.keep_button.setEnabled(not busy and self.slider.maximum() > 0)
        self.status_label.setText(text)
