"""The "Outline detail" option: the RNN's last iterations run again on a finer grid
(refine --detail-iterations), offered only for a raster at least twice as fine as the
model's grid, and that grid's pixel size (--detail-resolution; by default the engine's).
By default ("auto") the model's own detail iterations run: 2 with the bundled model,
whose detail RNN was trained on that grid; none with a model without one.
Decided from the layer's pixel size and the model file's header alone."""

from __future__ import annotations

from html import escape

from qgis.core import QgsMapLayer, QgsRasterLayer
from qgis.gui import QgsDoubleSpinBox, QgsSpinBox
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QWidget

from ...engine.errors import MapRefinerError
from ...engine.limits import detail_grid_range, detail_unsuited
from ..jobs.fetch_job import is_online
from ..sources import ground_pixel_size
from .model_info import ModelSummary

#: The dialog's range: one or two helped most on the shared scenes, five at most.
MAX_DETAIL_ITERATIONS = 5
#: The spin box's value for "the model's own" (RefineParams.detail_iterations None).
AUTO = -1
HELP = (
    "After the iterations on the model's grid, this many more RNN iterations on a finer "
    "grid (the image's own pixels, at most 4x finer than the model's) draw the outlines "
    "at the image's detail: for drone and 0.3 m aerial imagery; it takes longer. Not for "
    "imagery less than 2x finer than the model's grid: there it loses accuracy "
    "(docs/results_detail.md). auto: the model's own (2 with the bundled model, whose "
    "detail RNN was trained for that grid; none for a model without one). 0: off."
)
GRID_HELP = (
    "The fine grid's pixel size. By default (the clear button) the image's own pixels, "
    "but at most 4x finer than the model's grid: finer bought nothing where measured, at "
    "4x the pixels. A coarser grid (at most half the model's pixel size) runs faster; a "
    "finer one is the image's own pixels at most. As refine --detail-resolution."
)
#: The grid spin box's step and precision (metres).
GRID_DECIMALS = 3


def unsuited_reason(layer: QgsMapLayer | None, summary: ModelSummary | None) -> str | None:
    """Why the detail iterations are off for ``layer`` and this model; None when offered."""
    if summary is None:
        return "choose a usable model first"
    if is_online(layer):
        return "online imagery is fetched at the model's resolution, so nothing is finer"
    if not isinstance(layer, QgsRasterLayer):
        return "choose a raster layer first"
    try:
        return detail_unsuited(ground_pixel_size(layer), summary.resolution_m)
    except MapRefinerError as exc:
        return f"its pixel size on the ground is unknown ({exc.message})"


class DetailBox(QWidget):
    """A spin box of fine-grid iterations and a line saying when it is off. The number the
    user chose (``wanted``) stays while a raster turns the option off, and comes back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spin = QgsSpinBox(self)
        self.spin.setRange(AUTO, MAX_DETAIL_ITERATIONS)
        self.spin.setClearValue(AUTO)
        self.spin.setSpecialValueText("auto")
        self.note = QLabel("fine-grid iterations", self)
        self.note.setWordWrap(True)
        self.grid = QgsDoubleSpinBox(self)  # the fine grid's pixel size
        self.grid.setDecimals(GRID_DECIMALS)
        self.grid.setSingleStep(0.05)
        self.grid.setPrefix("grid ")
        self.grid.setSuffix(" m")
        self.grid.setShowClearButton(True)
        self.wanted = AUTO
        self.reason: str | None = None
        self.own = 0  # the model's own detail iterations, what "auto" runs here
        self.sizes = (0.0, 0.0, 0.0)  # finest, default (the engine's), coarsest grid
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spin)
        row.addWidget(self.note, 1)
        row.addWidget(self.grid)
        self.spin.valueChanged.connect(self._on_edited)
        self._show()

    def _on_edited(self, value: int) -> None:
        if self.reason is None:
            self.wanted = value
        self.grid.setEnabled(self.reason is None and value != 0)

    def set_wanted(self, value: int) -> None:
        self.wanted = max(AUTO, min(int(value), MAX_DETAIL_ITERATIONS))
        self._show()

    def update_for(self, layer: QgsMapLayer | None, summary: ModelSummary | None) -> None:
        """Offered, or off with the reason, for this raster and model."""
        self.reason = unsuited_reason(layer, summary)
        self.own = summary.detail_iterations if summary is not None else 0
        if self.reason is None and isinstance(layer, QgsRasterLayer) and summary is not None:
            sizes = detail_grid_range(ground_pixel_size(layer), summary.resolution_m)
            finest, default, coarsest = (round(v, GRID_DECIMALS) for v in sizes)
            if (finest, default, coarsest) != self.sizes:  # another raster or model grid:
                self.sizes = (finest, default, coarsest)  # the engine's own grid again
                self.grid.setRange(finest, coarsest)
                self.grid.setClearValue(default)
                self.grid.clear()
        self._show()

    def iterations(self) -> int | None:
        """What the refine runs: 0 while the option is off, None for the model's own."""
        if self.reason is not None:
            return 0
        value = self.spin.value()
        return None if value == AUTO else value

    def resolution_m(self) -> float | None:
        """The fine grid's pixel size the user chose; None: the engine's default (also
        while the option is off)."""
        if self.iterations() == 0 or self.grid.value() == self.grid.clearValue():
            return None
        return float(self.grid.value())

    def _show(self) -> None:
        self.spin.blockSignals(True)
        try:
            self.spin.setValue(0 if self.reason is not None else self.wanted)
        finally:
            self.spin.blockSignals(False)
        self.spin.setEnabled(self.reason is None)
        self.grid.setEnabled(self.reason is None and self.spin.value() != 0)
        self.grid.setVisible(self.reason is None)
        if self.reason is None:
            auto = f"auto: the model's {self.own}" if self.own else "auto: none for this model"
            self.note.setText(f"fine-grid iterations ({auto}; drone and 0.3 m imagery)")
            tip = escape(HELP, quote=False)
        else:
            self.note.setText("fine-grid iterations: off for this raster")
            reason = escape(self.reason, quote=False)
            tip = f"{escape(HELP, quote=False)}<br><br><b>Off here:</b> {reason}."
        for widget in (self.spin, self.note):
            widget.setToolTip(tip)
        self.grid.setToolTip(escape(GRID_HELP, quote=False))
