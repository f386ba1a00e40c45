"""The Map Refiner dialog: widgets in, one parameters dataclass out per action.

Slots only read widgets and emit; the controller runs the jobs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Callable

from qgis.core import (
    QgsApplication,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import (
    QgsCheckableComboBox,
    QgsDoubleSpinBox,
    QgsFieldComboBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsMessageBar,
    QgsSpinBox,
)
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.errors import MapRefinerError
from ...engine.labels.rasters import suggested_value_map
from ...engine.modelfile.header import model_for_refine
from ...engine.refine.registration import MAX_SEARCH_M, SEARCH_M
from ...engine.vocabulary import DEVICES
from ..jobs.fetch_job import FetchJob, View, build_fetch_job, is_online, online_folder, safe_stem
from ..jobs.refine_job import PriorChoice, RefineJob, build_refine_job
from ..jobs.tasks import EngineTask
from ..jobs.training_jobs import (
    FinetuneJob,
    TrainCoarseJob,
    build_finetune_job,
    build_train_coarse_job,
)
from ..jobs.vectorize_job import (
    BACKGROUND,
    DEFAULT_MIN_AREA_M2,
    FORMATS,
    MIN_AREA_MODEL_PIXELS,
    ClassMap,
    VectorizeJob,
    build_vectorize_job,
    class_map_for,
    default_export_classes,
    default_min_area_m2,
)
from ..messages import show_error
from ..settings import DialogDefaults
from ..sources import default_refined_path, raster_path
from .area_box import AreaBox
from .bands_box import BandsBox
from .detail_box import DetailBox
from .device_info import device_summary
from .labels_widget import LabelsBox
from .model_info import ModelSummary, is_fine_tuned, model_note
from .model_widget import ModelChooser
from .pixel_size_box import PixelSizeBox


class MapRefinerDialog(QDialog):
    refine_requested = pyqtSignal(object)  # RefineJob
    vectorize_requested = pyqtSignal(object)  # VectorizeJob
    finetune_requested = pyqtSignal(object)  # FinetuneJob
    train_coarse_requested = pyqtSignal(object)  # TrainCoarseJob
    new_correction_layer_requested = pyqtSignal()
    turn_back_toggled = pyqtSignal(bool)  # the Turn changes back map tool on or off
    undo_round_requested = pyqtSignal()
    dropped_fit_requested = pyqtSignal()  # take the last round's dropped fit
    cancel_requested = pyqtSignal()

    def __init__(
        self,
        project: QgsProject,
        defaults: DialogDefaults,
        active_layer: QgsMapLayer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Map Refiner")
        self.setMinimumWidth(560)
        self.project = project
        self.refined: dict[
            Path, ClassMap
        ] = {}  # image -> its latest class map; set by the controller
        self.view: Callable[[], View | None] = lambda: None  # the map view; set by the controller
        self.fallback_dir = Path(defaults.output_dir) if defaults.output_dir else None
        self._output_auto = True
        self._programmatic = False
        self._iterations_auto = defaults.iterations < 0
        self._min_area_auto = True  # follows the model until typed by hand
        self.message_bar = QgsMessageBar(self)
        self.input_combo = QgsMapLayerComboBox(self)
        self.input_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.model = ModelChooser(self)
        self.area = AreaBox(self)  # shown for XYZ layers only
        self.prior_combo = QgsMapLayerComboBox(self)
        self.prior_combo.setFilters(
            QgsMapLayerProxyModel.Filter.RasterLayer | QgsMapLayerProxyModel.Filter.PolygonLayer
        )
        self.prior_combo.setAllowEmptyLayer(True)
        self.prior_combo.setLayer(None)
        self.prior_combo.setToolTip(
            "Empty: the model's coarse CNN makes the first map. A class map or polygon layer "
            "you already have (another tool's classification, OSM buildings): the RNN "
            "moves it onto the image's edges, with the bundled snap model unless you "
            "choose a model."
        )
        self.prior_field = QgsFieldComboBox(self)
        self.prior_field.setAllowEmptyFieldName(True)
        self.prior_field.setToolTip(
            "The polygons' class field (the model's class names); empty: every polygon "
            "is a building and the rest background"
        )
        self.prior_hint = QLabel("empty: the model's coarse CNN", self)
        self.prior_hint.setEnabled(False)  # greyed, as a placeholder
        self.prior_values = QLineEdit(self)
        self._suggested_values = ""  # what _on_prior_changed filled in (replaced on a change)
        self.prior_values.setPlaceholderText(
            "value map, e.g. 0:0,255:1 (empty: values are classes)"
        )
        self.prior_search = QgsDoubleSpinBox(self)  # how far its offset is looked for
        self.prior_search.setRange(1.0, MAX_SEARCH_M)
        self.prior_search.setDecimals(0)
        self.prior_search.setSuffix(" m")
        self.prior_search.setClearValue(SEARCH_M)
        self.prior_search.setValue(SEARCH_M)
        self.prior_search_label = QLabel("Look for its offset up to", self)
        self.prior_search.setToolTip(
            "How far the map's offset from the image is looked for, on each axis. When the "
            "result says its best fit lies at the edge of the search, the map may be "
            "further off: raise it."
        )
        self.prior_edges = QCheckBox("Leave it in place when the image's edges disagree", self)
        self.prior_edges.setChecked(True)
        self.prior_edges.setToolTip(
            "A move that lays the map's outlines on weaker edges of the image than where "
            "they are drawn is undone: the model may misread the imagery (false-colour "
            "infrared, bands in another order, haze or an unusual colour balance). Then, "
            "and where the image's edges follow the map's outlines better than the "
            "model's own map (the model cannot place it, or would reshape it onto weaker "
            "edges), the map is kept as drawn and the model only fills what it leaves open. "
            "Untick to make "
            "the model's move, and its reshaping, anyway."
        )
        self.iterations_spin = QgsSpinBox(self)
        self.iterations_spin.setRange(0, 20)
        self.iterations_spin.setToolTip("RNN refinement steps; 0 gives the coarse CNN map.")
        self.detail = DetailBox(self)  # the last iterations again on a finer grid
        self.bands_box = BandsBox(self)  # which bands a colour model reads
        self.pixel_size = PixelSizeBox(self)  # an image whose file gives no pixel size
        self.model_note = QLabel("", self)  # which image a fine-tuned model is for, and why
        self.model_note.setWordWrap(True)
        self.model_note.setTextFormat(Qt.TextFormat.RichText)  # its text is escaped HTML
        self.model_note.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.model_note.setVisible(False)
        self.device_combo = QComboBox(self)
        for name in DEVICES:
            self.device_combo.addItem(name, name)
        self.device_label = QLabel("Looking for devices…", self)
        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.scores_check = QCheckBox("Also write per-class probabilities (…_scores.tif)", self)
        self.coarse_check = QCheckBox("Also add the coarse CNN map (…_coarse.tif)", self)
        self.coarse_check.setToolTip(
            "The map before any RNN iteration, in the same group as "
            "the refined one, to compare them"
        )
        self.match_colours_check = QCheckBox(
            "Match the colours of imagery unlike the model's training imagery", self
        )
        self.match_colours_check.setChecked(True)
        self.match_colours_check.setToolTip(
            "The bundled models read an image that looks like none of their training "
            "imagery (another sensor, haze, a colour cast, an exposure) with each band "
            "stretched onto the training imagery's colours; the result's message says when. "
            "Untick to read the image as it is, in the refine and in Fine-tune (false-colour "
            "or very high resolution imagery whose own colours are the cue can read better so)"
        )
        self.export_background_check = QCheckBox("Export the background class too", self)
        self.export_background_check.setToolTip(
            "Off: the polygons are the objects only, not one polygon of everything else"
        )
        self.export_classes_combo = QgsCheckableComboBox(self)
        self.export_classes_combo.setDefaultText("no class chosen")
        self.export_classes_combo.setToolTip(
            "The classes exported (all but the background by default; the background "
            "follows the box beside)"
        )
        self.simplify_spin = self._tolerance_spin("no simplification")
        self.simplify_spin.setToolTip(
            "Outlines simplified to this tolerance, each border once for the classes on "
            "both its sides, so that they still meet without gaps or overlaps (as "
            "map-refiner vectorize --simplify M --shared-borders; regularised buildings "
            "are simplified on their own)"
        )
        self.format_combo = QComboBox(self)
        for name in FORMATS:
            self.format_combo.addItem(name, name)
        self.format_combo.setToolTip(
            "<class map>_polygons.gpkg or .shp beside the map; an existing file is kept "
            "and the new one numbered"
        )
        self.min_area_spin = QgsDoubleSpinBox(self)
        self.min_area_spin.setRange(0.0, 1e6)
        self.min_area_spin.setDecimals(2)  # 2 x 2 pixels of a 0.3 m model: 0.36 m²
        self.min_area_spin.setSuffix(" m²")
        self.min_area_spin.setValue(DEFAULT_MIN_AREA_M2)  # until a model is read
        self.min_area_spin.setClearValue(DEFAULT_MIN_AREA_M2)
        self.min_area_spin.setToolTip(
            "Polygons smaller than this are not exported (0: all). By default "
            f"{MIN_AREA_MODEL_PIXELS} x {MIN_AREA_MODEL_PIXELS} of the model's pixels, the "
            "smallest object its grid resolves; it follows the model until you change it."
        )
        self.regularize_check = QCheckBox("Regularise building outlines", self)
        self.regularize_check.setToolTip(
            "The building polygons get right angles and parallel edges where the outline "
            "is nearly so, instead of the pixel staircase (as map-refiner vectorize --regularize)"
        )
        self.regularize_spin = self._tolerance_spin("default tolerance")
        self.regularize_spin.setToolTip(
            "How far a regularised outline may cut across the map's (default: 1 m, or two "
            "pixels of a map coarser than 0.5 m); below a pixel the staircase stays"
        )
        self.regularize_spin.setEnabled(False)
        self.labels = LabelsBox(self)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 100)
        self.status_label = QLabel("", self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.refine_button = QPushButton("Refine", self)
        self.export_button = QPushButton("Export polygons", self)
        self.export_button.setToolTip(
            "Polygons of the chosen class map, or of the chosen image's latest refined map"
        )
        self.cancel_button = QPushButton("Cancel job", self)
        self.buttons.addButton(self.refine_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        for button in self.findChildren(QPushButton):  # Enter must not start a training run
            button.setAutoDefault(False)
        self.refine_button.setDefault(True)
        self._layout()
        self._connect()
        self._restore(defaults, active_layer)
        self.refresh_export_classes()
        # the combo may hold its layer from the start, when no change is signalled
        self.area.setVisible(is_online(self.input_combo.currentLayer()))
        self.pixel_size.update_for(self.input_combo.currentLayer())
        self.set_running(False)
        self._device_task = self._describe_devices()

    def _tolerance_spin(self, at_zero: str) -> QgsDoubleSpinBox:
        """A tolerance in metres, 0 to 1000 in steps of 0.5, reading ``at_zero`` at 0."""
        spin = QgsDoubleSpinBox(self)
        spin.setRange(0.0, 1000.0)
        spin.setDecimals(2)
        spin.setSingleStep(0.5)
        spin.setSuffix(" m")
        spin.setSpecialValueText(at_zero)
        spin.setValue(0.0)
        spin.setClearValue(0.0)
        return spin

    def _describe_devices(self) -> EngineTask:
        """The device line, found in a worker thread: it imports torch, which takes
        seconds the first time and must not freeze QGIS while the dialog opens."""

        def show(_task: EngineTask, text: str) -> None:
            try:
                self.device_label.setText(text)
            except RuntimeError:  # the dialog was closed and deleted meanwhile
                pass

        def failed(_task: EngineTask, exc: BaseException) -> None:
            show(_task, f"devices unknown ({exc})")

        task = EngineTask(
            "Map Refiner: looking for devices", lambda _p, _c: device_summary(), show, failed
        )
        QgsApplication.taskManager().addTask(task)
        return task

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Raster layer", self.input_combo)
        form.addRow("", self.area)
        form.addRow("", self.pixel_size)
        form.addRow("Model", self.model)
        form.addRow("", self.model_note)
        form.addRow("Bands", self.bands_box)
        form.addRow("", self.match_colours_check)
        prior_row = QHBoxLayout()
        prior_row.addWidget(self.prior_combo, 1)
        prior_row.addWidget(self.prior_hint)
        prior_row.addWidget(self.prior_field)
        prior_row.addWidget(self.prior_values)
        search_row = QHBoxLayout()  # shown with a map to start from
        search_row.addWidget(self.prior_search_label)
        search_row.addWidget(self.prior_search)
        search_row.addStretch(1)
        prior_rows = QVBoxLayout()
        prior_rows.addLayout(prior_row)
        prior_rows.addLayout(search_row)
        prior_rows.addWidget(self.prior_edges)
        form.addRow("Start from", prior_rows)
        form.addRow("Iterations", self.iterations_spin)
        form.addRow("Outline detail", self.detail)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_combo)
        device_row.addWidget(self.device_label, 1)
        form.addRow("Device", device_row)
        form.addRow("Output class map", self.output_widget)
        form.addRow("", self.scores_check)
        form.addRow("", self.coarse_check)
        export_row = QHBoxLayout()
        export_row.addWidget(QLabel("smallest polygon", self))
        export_row.addWidget(self.min_area_spin)
        export_row.addWidget(QLabel("simplify", self))
        export_row.addWidget(self.simplify_spin)
        export_row.addWidget(self.format_combo, 1)
        form.addRow("Export", export_row)
        classes_row = QHBoxLayout()
        classes_row.addWidget(QLabel("classes", self))
        classes_row.addWidget(self.export_classes_combo, 1)
        classes_row.addWidget(self.export_background_check)
        form.addRow("", classes_row)
        regularize_row = QHBoxLayout()
        regularize_row.addWidget(self.regularize_check)
        regularize_row.addWidget(self.regularize_spin, 1)
        form.addRow("", regularize_row)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.status_label)
        box = QVBoxLayout(self)
        box.addWidget(self.message_bar)
        box.addLayout(form)
        box.addWidget(self.labels)
        box.addStretch(1)
        box.addLayout(progress_row)
        box.addWidget(self.buttons)

    def _connect(self) -> None:
        self.buttons.rejected.connect(self.reject)
        self.refine_button.clicked.connect(self._on_refine)
        self.export_button.clicked.connect(self._on_export)
        self.regularize_check.toggled.connect(self.regularize_spin.setEnabled)
        self.export_background_check.toggled.connect(self._on_export_background)
        self.export_classes_combo.checkedItemsChanged.connect(self._on_export_classes)
        self.labels.finetune_button.clicked.connect(self._on_finetune)
        self.labels.train_coarse_button.clicked.connect(self._on_train_coarse)
        self.labels.undo_button.clicked.connect(self.undo_round_requested)
        self.labels.dropped_fit_button.clicked.connect(self.dropped_fit_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.labels.new_layer_button.clicked.connect(self.new_correction_layer_requested)
        self.labels.turn_back_button.toggled.connect(self.turn_back_toggled)
        self.input_combo.layerChanged.connect(self._on_input_changed)
        self.prior_combo.layerChanged.connect(self._on_prior_changed)
        self.output_widget.fileChanged.connect(self._on_output_edited)
        self.iterations_spin.valueChanged.connect(self._on_iterations_edited)
        self.min_area_spin.valueChanged.connect(self._on_min_area_edited)
        self.model.model_changed.connect(self._on_model_changed)

    def _restore(self, defaults: DialogDefaults, active_layer: QgsMapLayer | None) -> None:
        if isinstance(active_layer, QgsRasterLayer):
            self.input_combo.setLayer(active_layer)
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(defaults.device), 0))
        self.scores_check.setChecked(defaults.write_scores)
        self.coarse_check.setChecked(defaults.add_coarse)
        self._on_prior_changed(None)
        self.labels.set_mode(defaults.label_mode)
        self.labels.preferred_field = defaults.label_field
        if defaults.iterations >= 0:
            self._set_quietly(self.iterations_spin.setValue, defaults.iterations)
        self.detail.set_wanted(defaults.detail_choice)
        self.model.set_model_path(
            defaults.model_path, "Remembered from your last use." if defaults.model_path else ""
        )
        self.suggest_output()

    def _set_quietly(self, setter, value) -> None:  # noqa: ANN001 - any widget setter
        self._programmatic = True
        try:
            setter(value)
        finally:
            self._programmatic = False

    def _on_input_changed(self, layer: QgsMapLayer | None) -> None:
        self.area.setVisible(is_online(layer))
        self.pixel_size.update_for(layer)
        self.detail.update_for(layer, self.model.summary)
        self.bands_box.update_for(layer, self.model.summary)
        self.show_model_note()
        self.suggest_output_if_auto()
        self.refresh_export_classes()

    def refresh_export_classes(self) -> None:
        """The class list from the chosen layer's class map (itself, or its latest
        refined map), the background checked only with its box."""
        classmap = class_map_for(self.input_combo.currentLayer(), self.refined)
        names = classmap.names if classmap is not None else []
        combo = self.export_classes_combo
        if names == [combo.itemText(i) for i in range(combo.count())]:
            return  # the user's choice stays while the map's classes do
        chosen = default_export_classes(names, self.export_background_check.isChecked())
        combo.blockSignals(True)
        try:
            combo.clear()
            for name in names:
                state = Qt.CheckState.Checked if name in chosen else Qt.CheckState.Unchecked
                combo.addItemWithCheckState(name, state)
        finally:
            combo.blockSignals(False)

    def _on_export_background(self, checked: bool) -> None:
        combo = self.export_classes_combo
        combo.blockSignals(True)
        try:
            for i in range(combo.count()):
                if combo.itemText(i).lower() == BACKGROUND:
                    combo.setItemCheckState(
                        i, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
                    )
        finally:
            combo.blockSignals(False)

    def _on_export_classes(self, checked: list[str]) -> None:
        self.export_background_check.blockSignals(True)
        try:
            self.export_background_check.setChecked(
                any(name.lower() == BACKGROUND for name in checked)
            )
        finally:
            self.export_background_check.blockSignals(False)

    def set_export_classes(self, names: list[str]) -> None:
        """Check exactly ``names`` in the class list (and the background box with it)."""
        combo = self.export_classes_combo
        for i in range(combo.count()):
            checked = combo.itemText(i) in names
            combo.setItemCheckState(
                i, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
            )
        self._on_export_classes(list(names))

    def export_classes(self) -> list[str] | None:
        """The checked classes, or None when the chosen layer's classes are unknown."""
        combo = self.export_classes_combo
        if combo.count() == 0:
            return None
        return [
            n
            for n in (combo.itemText(i) for i in range(combo.count()))
            if n in combo.checkedItems()
        ]

    def _on_prior_changed(self, layer: QgsMapLayer | None) -> None:
        """A polygon layer asks for its class field, a raster for its value map (filled in
        for a mask of two values such as 0 and 255, unless the user typed one)."""
        vector = isinstance(layer, QgsVectorLayer)
        self.prior_field.setLayer(layer if vector else None)
        self.prior_field.setVisible(vector)
        self.prior_values.setVisible(isinstance(layer, QgsRasterLayer))
        if self.prior_values.text() in ("", self._suggested_values):
            self._suggested_values = self._value_map_for(layer)
            self.prior_values.setText(self._suggested_values)
        self.prior_hint.setVisible(layer is None)
        self.prior_search.setVisible(layer is not None)
        self.prior_search_label.setVisible(layer is not None)
        self.prior_edges.setVisible(layer is not None)
        self.show_model_note()

    @staticmethod
    def _value_map_for(layer: QgsMapLayer | None) -> str:
        """The value map a raster layer needs as a map to start from, when it is a mask of
        two values such as 0/255 (the engine would refuse it without one); else empty."""
        if not isinstance(layer, QgsRasterLayer):
            return ""
        try:
            path = raster_path(layer)
        except MapRefinerError:
            return ""
        return suggested_value_map(path) or ""

    def prior_choice(self) -> PriorChoice | None:
        """The map to start from, or None (the model's coarse CNN)."""
        layer = self.prior_combo.currentLayer()
        if layer is None:
            return None
        search, edges = self.prior_search.value(), self.prior_edges.isChecked()
        if isinstance(layer, QgsVectorLayer):
            return PriorChoice(
                layer,
                class_field=self.prior_field.currentField() or None,
                search_m=search,
                edges=edges,
            )
        return PriorChoice(layer, value_map=self.prior_values.text(), search_m=search, edges=edges)

    def _on_output_edited(self, _path: str) -> None:
        if not self._programmatic:
            self._output_auto = False

    def _on_iterations_edited(self, _value: int) -> None:
        if not self._programmatic:
            self._iterations_auto = False

    def _on_min_area_edited(self, value: float) -> None:
        """Typed by hand, the smallest polygon stays through model changes; set back to
        the model's value (the clear button), it follows the model again."""
        if not self._programmatic:
            spin = self.min_area_spin
            self._min_area_auto = round(value, spin.decimals()) == round(
                spin.clearValue(), spin.decimals()
            )

    def show_model_note(self) -> None:
        """Under a fine-tuned model, the image it was made for (a warning when the raster
        is another) and why the dialog chose it; under the bundled default model with a
        map to start from, that the snap model refines it; nothing under other models."""
        summary, layer = self.model.summary, self.input_combo.currentLayer()
        try:
            raster = raster_path(layer).name if layer is not None and not is_online(layer) else None
        except MapRefinerError:
            raster = None
        text = model_note(summary, raster, self.model.why)
        with_prior = self.prior_combo.currentLayer() is not None
        if self.model.model_path() is None and model_for_refine(None, with_prior) is not None:
            text = (  # the refine takes the snap model for it (model_for_refine)
                "With a map to start from, the bundled snap model refines it instead "
                "(trained to move existing maps onto the image's edges)."
            )
        other = summary is not None and summary.foreign_to(raster)
        self.model_note.setText(
            f"<span style='color:#b00020'>{escape(text)}</span>" if other else escape(text)
        )
        self.model_note.setVisible(bool(text))
        self._fit_height()

    def _fit_height(self) -> None:
        """A note wrapping onto more lines makes the shown dialog taller rather than
        squeezing its wrapped lines (Qt does not grow a shown window by itself)."""
        layout = self.layout()
        if layout is None or not self.isVisible():
            return
        for _ in range(3):  # a taller dialog may lay the lines out anew
            layout.activate()
            missing = sum(
                max(0, label.heightForWidth(label.width()) - label.height())
                for label in self.findChildren(QLabel)
                if label.wordWrap() and label.isVisible()
            )
            if missing <= 0:
                return
            self.resize(self.width(), self.height() + missing)

    def _on_model_changed(self, summary: ModelSummary | None) -> None:
        self.detail.update_for(self.input_combo.currentLayer(), summary)
        self.bands_box.update_for(self.input_combo.currentLayer(), summary)
        self.show_model_note()
        if summary is None:
            return
        self.iterations_spin.setClearValue(summary.default_iterations)
        if self._iterations_auto:
            self._set_quietly(self.iterations_spin.setValue, summary.default_iterations)
        min_area = default_min_area_m2(summary.resolution_m)
        self.min_area_spin.setClearValue(min_area)
        if self._min_area_auto:
            self._set_quietly(self.min_area_spin.setValue, min_area)

    def suggest_output(self) -> None:
        """A fresh ``<input>_refined.tif`` name (after each run too, while not typed by hand)."""
        layer = self.input_combo.currentLayer()
        try:
            source = (
                online_folder(self.project, self.fallback_dir) / f"{safe_stem(layer.name())}.tif"
                if is_online(layer)
                else raster_path(layer)
            )
            path = default_refined_path(source, self.project, self.fallback_dir)
        except MapRefinerError:
            return
        self._set_quietly(self.output_widget.setFilePath, str(path))
        self._output_auto = True

    def suggest_output_if_auto(self) -> None:
        if self._output_auto:
            self.suggest_output()

    def _emit(self, signal, build: Callable[[], object]) -> None:  # noqa: ANN001 - a pyqtSignal
        try:
            job = build()
        except MapRefinerError as exc:
            show_error(self.message_bar, exc)
            return
        signal.emit(job)

    def _on_refine(self) -> None:
        self._emit(self.refine_requested, self.refine_job)

    def _on_export(self) -> None:
        self._emit(self.vectorize_requested, self.vectorize_job)

    def _on_finetune(self) -> None:
        self._emit(self.finetune_requested, self.finetune_job)

    def _on_train_coarse(self) -> None:
        self._emit(self.train_coarse_requested, self.train_coarse_job)

    def refine_job(self) -> RefineJob:
        """The dialog's state as one RefineJob; raises MapRefinerError when incomplete."""
        return build_refine_job(
            layer=self.input_combo.currentLayer(),
            model_path=self.model.model_path(),
            choose_model=self.model.chooses_for_image(),
            iterations=self.iterations_spin.value(),
            device=self.device_combo.currentData(),
            output=self.output_widget.filePath(),
            detail_iterations=self.detail.iterations(),
            detail_resolution_m=self.detail.resolution_m(),
            write_scores=self.scores_check.isChecked(),
            add_coarse=self.coarse_check.isChecked(),
            prior=self.prior_choice(),
            online=self.fetch_job(),
            bands=self.bands_box.bands(),
            match_colours=self.match_colours_check.isChecked(),
            input_resolution_m=self.pixel_size.value_m(),
        )

    def fetch_job(self) -> FetchJob | None:
        """For an XYZ layer: its tiles over the map view, at the model's resolution."""
        layer = self.input_combo.currentLayer()
        if not is_online(layer):
            return None
        summary = self.model.summary
        if summary is None:
            raise MapRefinerError(
                "Choose a usable model first: its resolution sets the fetched image's."
            )
        return build_fetch_job(
            layer,
            self.area.chosen() or self.view(),
            summary.resolution_m,
            self.project,
            self.fallback_dir,
        )

    def vectorize_job(self) -> VectorizeJob:
        return build_vectorize_job(
            self.input_combo.currentLayer(),
            self.refined,
            self.project,
            self.fallback_dir,
            include_background=self.export_background_check.isChecked(),
            min_area_m2=self.min_area_spin.value(),
            regularize=self.regularize_check.isChecked(),
            regularize_m=self.regularize_spin.value() or None,
            classes=self.export_classes(),
            simplify_m=self.simplify_spin.value(),
            file_format=self.format_combo.currentData(),
        )

    def finetune_job(self) -> FinetuneJob:
        return build_finetune_job(
            self.input_combo.currentLayer(),
            self.labels.layer(),
            self.labels.field(),
            self.labels.mode(),
            self.model.model_path(),
            self.labels.steps(),
            self.device_combo.currentData(),
            self.project,
            self.fallback_dir,
            choose_base=self.model.chooses_for_image(),
            bands=self.bands_box.bands(),
            match_colours=self.match_colours_check.isChecked(),
            input_resolution_m=self.pixel_size.value_m(),
        )

    def train_coarse_job(self) -> TrainCoarseJob:
        return build_train_coarse_job(
            self.input_combo.currentLayer(),
            self.labels.layer(),
            self.labels.field(),
            self.labels.mode(),
            self.model.summary,
            self.labels.steps(),
            self.device_combo.currentData(),
            self.project,
            self.fallback_dir,
            input_resolution_m=self.pixel_size.value_m(),
        )

    def current_defaults(self) -> DialogDefaults:
        output = self.output_widget.filePath().strip()
        return DialogDefaults(
            model_path=self.model.remembered(),
            iterations=-1 if self._iterations_auto else self.iterations_spin.value(),
            detail_choice=self.detail.wanted,
            device=self.device_combo.currentData(),
            output_dir=str(Path(output).parent) if output else "",
            write_scores=self.scores_check.isChecked(),
            add_coarse=self.coarse_check.isChecked(),
            label_mode=self.labels.mode(),
            label_field=self.labels.field() or "class",
        )

    def project_changed(self) -> None:
        """A new, closed or opened project: stale messages go, and a fine-tuned model
        (made for an image of the old project) is not carried over silently: the
        dialog goes back to the bundled model and says why."""
        self.message_bar.clearWidgets()
        self.status_label.setText("")
        self.area.forget()
        path = self.model.model_path()
        if path is not None and is_fine_tuned(path):
            self.model.set_model_path("")
            self.message_bar.pushInfo(
                "Map Refiner",
                f"New project: the model is the bundled one again ({path.name} was "
                "fine-tuned on another project's image; choose it again to use it here).",
            )
        self.suggest_output()

    def set_running(self, running: bool, text: str = "") -> None:
        self.refine_button.setEnabled(not running)
        for button in (
            self.export_button,
            self.labels.finetune_button,
            self.labels.train_coarse_button,
        ):
            button.setEnabled(not running)
        self.labels.undo_button.setEnabled(not running and self.labels.rounds_list.count() > 0)
        self.labels.dropped_fit_button.setEnabled(not running and self.labels.dropped_fit_available)
        self.cancel_button.setEnabled(running)
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(running)
        self.status_label.setText(text)

    def set_progress(self, percent: float) -> None:
        self.progress_bar.setValue(int(round(percent)))
