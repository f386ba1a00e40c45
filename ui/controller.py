"""What the plugin's actions do: open the dialog, start tasks, take their results."""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgisInterface

from ..engine.errors import MapRefinerError
from .dialog.correction_layer import CLASS_FIELD, create_correction_layer
from .dialog.dialog import MapRefinerDialog
from .dialog.model_info import model_label
from .installer.deps import MissingDependencies, check_dependencies
from .installer.flow import InstallerFlow, offer_install
from .iterations.flow import IterationsFlow, Review
from .jobs.fetch_job import View, add_fetched_layer, fetched_message, run_fetch
from .jobs.refine_job import (
    PreviousMap,
    RefineJob,
    RefineOutcome,
    add_refine_result,
    as_named,
    keep_iteration_job,
    run_refine,
)
from .jobs.tasks import EngineTask
from .jobs.training_jobs import (
    FinetuneJob,
    TrainCoarseJob,
    round_parent,
    run_finetune,
    run_train_coarse,
)
from .jobs.vectorize_job import ClassMap, VectorizeJob, add_vectorize_result, run_vectorize
from .layers import MODEL_KEY, remove_layers, short_model_name, show_parent_changes
from .messages import show_error, show_success, show_warning
from .paths import same_file
from .rounds import Round
from .settings import load_defaults, save_defaults
from .turn_back import TurnBackFlow

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, iface: QgisInterface) -> None:
        self.iface = iface
        self.dialog: MapRefinerDialog | None = None
        self.tasks: list[EngineTask] = []
        self.refined: dict[Path, ClassMap] = {}  # image -> its latest refined class map
        self.last_refine: RefineJob | None = None  # what "Keep iteration N" keeps from
        self.installer: InstallerFlow | None = None
        self.iterations: IterationsFlow | None = None
        self.turn_back: TurnBackFlow | None = None  # the Turn changes back map tool
        self.rounds: list[Round] = []  # this project's fine-tune rounds, oldest first
        # image -> its maps this session, oldest first, with the model each was made with
        self.history: dict[Path, list[tuple[Path | None, ClassMap]]] = {}
        # refined layer id -> the refine that showed its iterations (Undo round shows a
        # parent's again), oldest first
        self.slider_refines: dict[str, RefineJob] = {}
        QgsProject.instance().cleared.connect(self.project_cleared)

    def project_cleared(self) -> None:
        """Project ▸ New, Close or Open: nothing of the old project's state stays (its
        refined maps, the slider's raster, the dialog's layer choices, stale messages)."""
        self.refined.clear()
        self.history.clear()
        self.slider_refines.clear()
        self.rounds.clear()
        self.last_refine = None
        if self.iterations is not None:
            self.iterations.reset()
        if self.dialog is not None:
            self.dialog.labels.set_rounds([])
            self.dialog.project_changed()
        self.iface.messageBar().clearWidgets()

    def ensure_dialog(self) -> MapRefinerDialog:
        if self.dialog is None:
            check_dependencies()
            self.dialog = MapRefinerDialog(
                QgsProject.instance(),
                load_defaults(),
                self.iface.activeLayer(),
                self.iface.mainWindow(),
            )
            self.dialog.refined = self.refined
            self.dialog.view = self.map_view
            self.dialog.area.set_canvas(self.iface.mapCanvas())
            self.dialog.refine_requested.connect(self.start_refine)
            self.dialog.vectorize_requested.connect(self.start_vectorize)
            self.dialog.finetune_requested.connect(self.start_finetune)
            self.dialog.train_coarse_requested.connect(self.start_train_coarse)
            self.dialog.cancel_requested.connect(self.cancel_all)
            self.dialog.new_correction_layer_requested.connect(self.new_correction_layer)
            self.dialog.turn_back_toggled.connect(self.turn_back_flow().set_active)
            self.dialog.undo_round_requested.connect(self.undo_round)
            self.dialog.dropped_fit_requested.connect(self.use_dropped_fit)
            self._show_rounds()
            self.dialog.finished.connect(self._remember)
        return self.dialog

    def show_dialog(self) -> None:
        try:
            dialog = self.ensure_dialog()
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            if isinstance(exc, MissingDependencies):
                offer_install(self.iface.messageBar(), self.open_installer)
            return
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def open_installer(self) -> InstallerFlow:
        if self.installer is None:
            self.installer = InstallerFlow(self.iface.messageBar(), self.iface.mainWindow())
        self.installer.show()
        return self.installer

    def iteration_flow(self) -> IterationsFlow:
        if self.iterations is None:
            self.iterations = IterationsFlow(self.iface)
            self.iterations.keep_requested.connect(self.keep_iteration)
            self.iterations.turn_back_change = lambda c: self.turn_back_flow().turn_back_listed(c)
            self.iterations.corrections = self.corrections
        return self.iterations

    def keep_iteration(self, iterations: int) -> EngineTask | None:
        """Write the whole raster at the slider's iteration; Export then uses it."""
        if self.last_refine is None:
            return None
        slider = self.iterations.result if self.iterations is not None else None
        return self.start_refine(keep_iteration_job(self.last_refine, iterations, slider))

    def _remember(self, _result: int = 0) -> None:
        if self.dialog is not None:
            save_defaults(self.dialog.current_defaults())

    def map_view(self) -> View | None:
        canvas = self.iface.mapCanvas()
        if canvas is None:
            return None
        return canvas.extent(), canvas.mapSettings().destinationCrs()

    def start_refine(self, job: RefineJob) -> EngineTask:
        self._remember()
        if job.fetch is not None:  # online imagery: fetched first, then refined
            task = EngineTask(
                f"Map Refiner: fetching {job.fetch.layer_name}",
                partial(run_fetch, job.fetch),
                partial(self._fetched, job),
                self._failed,
            )
            return self._start(task, f"Fetching the view of {job.fetch.layer_name}…")
        if job.previous is None and not job.keeps_iteration:
            job = replace(job, previous=self.previous_map(job.params.image, job.source_name))
        if job.show_iterations and job.slider is None:  # the slider's maps, from the same pass
            p = job.params
            flow = self.iteration_flow()
            job = replace(
                job,
                slider=flow.slider_job(
                    p.image,
                    p.model_path,
                    p.device,
                    p.precision,
                    job.source_name,
                    job.layer_id,
                    p.detail_iterations,
                    p.detail_resolution_m,
                    p.bands,
                    p.input_resolution_m,
                ),
            )
        task = EngineTask(
            f"Map Refiner: refining {job.source_name}",
            partial(run_refine, job),
            partial(self._refined, job),
            self._failed,
        )
        return self._start(task, f"Refining {job.source_name}…")

    def previous_map(self, image: Path, source_name: str) -> PreviousMap | None:
        """The image's latest map of this session, which a refine with another model is
        compared with (RefineJob.previous); None when there is none."""
        maps = self.history.get(image)
        if not maps:
            return None
        model, classmap = maps[-1]
        name = model_label(model)
        label = short_model_name(source_name, name) if name else "the bundled model"
        return PreviousMap(classmap.path, model, label)

    def start_vectorize(self, job: VectorizeJob) -> EngineTask:
        task = EngineTask(
            f"Map Refiner: polygons of {job.source_name}",
            partial(run_vectorize, job),
            partial(self._vectorized, job),
            self._failed,
        )
        return self._start(task, f"Exporting {job.out.name}…")

    def start_finetune(self, job: FinetuneJob) -> EngineTask | None:
        if not self._save_label_edits(job.label_layer_id):
            return None
        task = EngineTask(
            f"Map Refiner: fine-tuning {job.out.name}",
            partial(run_finetune, job),
            partial(self._finetuned, job),
            self._failed,
        )
        return self._start(task, f"Fine-tuning → {job.out.name}…")

    def start_train_coarse(self, job: TrainCoarseJob) -> EngineTask | None:
        if not self._save_label_edits(job.label_layer_id):
            return None
        task = EngineTask(
            f"Map Refiner: training {job.params.out.name}",
            partial(run_train_coarse, job),
            self._trained,
            self._failed,
        )
        return self._start(task, f"Training → {job.params.out.name}…")

    def _save_label_edits(self, layer_id: str) -> bool:
        """Training reads the label file: save the layer's pending edits, keep editing."""
        layer = QgsProject.instance().mapLayer(layer_id)
        if layer is None or not layer.isEditable() or not layer.isModified():
            return True
        if layer.commitChanges(False):
            return True
        show_error(
            self.iface.messageBar(),
            MapRefinerError(
                f"Could not save the edits of “{layer.name()}”, which training reads; save them "
                "and try again.",
                details="\n".join(layer.commitErrors()),
            ),
        )
        return False

    def _trained(self, task: EngineTask, result) -> None:  # noqa: ANN001 - TrainResult
        self._done(task)
        show_success(
            self.iface.messageBar(),
            f"Trained {result.steps} steps in {result.seconds:.0f} s on {result.device} "
            f"(final loss {result.final_loss:.3f}) → {result.model}; now selected",
        )
        if self.dialog is not None:
            self.dialog.model.set_model_path(str(result.model))
            self._remember()

    def _finetuned(self, job: FinetuneJob, task: EngineTask, result) -> None:  # noqa: ANN001
        self._done(task)
        text = f"{result.message} → {result.model.name}; now selected"
        if result.adopted:
            show_success(self.iface.messageBar(), text)
        else:
            show_warning(self.iface.messageBar(), text)
        name = model_label(result.model) or result.model.stem
        self.rounds.append(
            Round(
                result.model,
                name,
                job.image,
                round_parent(job, result),
                result.adopted,
                result.tuned_score,
                result.base_score,
                result.flip_ratio,
                result.dropped_fit,
                unguarded=result.unguarded,
                partner_agreement=result.partner_agreement,
                partner=result.partner or "general",
                erased=result.class_kept[0] if result.erased and result.class_kept else None,
                fitted_from=result.fitted_from,
            )
        )
        if self.dialog is not None:
            self.dialog.model.set_model_path(str(result.model), "Selected by Fine-tune.")
            self._show_rounds()
            self._remember()

    def _note_round_changes(self, model: Path | None, changed: str) -> None:
        """The round whose model made the new map says, in the rounds list, what its first
        map changed against the previous one."""
        for i, done in enumerate(self.rounds):
            if model is not None and done.changes is None and same_file(done.model, model):
                self.rounds[i] = replace(done, changes=changed)
                self._show_rounds()

    def _show_rounds(self) -> None:
        if self.dialog is not None:
            self.dialog.labels.set_rounds(
                [r.describe() for r in self.rounds],
                [r.details() for r in self.rounds],
                dropped_fit=bool(self.rounds) and self.rounds[-1].dropped_fit is not None,
            )

    def use_dropped_fit(self) -> Round | None:
        """The last round with the fit its flip check dropped taken instead: that model
        file is selected (refine to see its map), the rounds list says so, and Undo round
        still goes back to the model the round started from."""
        last = self.rounds[-1] if self.rounds else None
        if last is None or last.dropped_fit is None:
            show_warning(self.iface.messageBar(), "The last round has no dropped fit to use.")
            return None
        if not last.dropped_fit.is_file():
            show_error(
                self.iface.messageBar(),
                MapRefinerError(
                    f"The dropped fit {last.dropped_fit} is no longer there; fine-tune again "
                    "to make it."
                ),
            )
            return None
        taken = last.with_dropped_fit(model_label(last.dropped_fit) or last.dropped_fit.stem)
        self.rounds[-1] = taken
        if self.dialog is not None:
            self.dialog.model.set_model_path(str(taken.model), "Selected by Use dropped fit.")
            self._show_rounds()
            self._remember()
        show_success(
            self.iface.messageBar(),
            f"{taken.name} selected: the fit the checks dropped. Refine to see what it does; "
            f"Undo round goes back to {taken.parent_label()}.",
        )
        return taken

    def undo_round(self) -> Round | None:
        """Back to the model the last round started from: it is selected again, the maps
        refined with the round's model leave the project (the parent's maps stay), the
        iterations dock shows the parent's latest map again when it showed the round's,
        and the round's model file stays on disk."""
        if not self.rounds:
            show_warning(self.iface.messageBar(), "No fine-tune round of this project to undo.")
            return None
        last = self.rounds.pop()
        project = QgsProject.instance()
        files = {str(f) for f in last.files()}
        gone = [
            layer.id()
            for layer in project.mapLayers().values()
            if layer.customProperty(MODEL_KEY) in files
        ]
        if (
            self.last_refine is not None
            and str(self.last_refine.params.model_path) in files
            and self.iterations is not None
        ):  # the slider shows the round's map: its iterations and regions go with it
            self._back_to_parent_view(last, gone)
        for layer_id in gone:
            self.slider_refines.pop(layer_id, None)
        if self.iterations is not None:
            self.iterations.forget(gone)
        remove_layers(project, gone)
        show_parent_changes(project, last.parent)
        # Export must not use the round's maps: the image's latest map is its parent's again
        kept = [(m, c) for m, c in self.history.get(last.image, []) if str(m) not in files]
        self.history[last.image] = kept
        if kept:
            self.refined[last.image] = kept[-1][1]
        else:
            self.refined.pop(last.image, None)
        if self.dialog is not None:
            self.dialog.model.set_model_path(
                str(last.parent) if last.parent else "",
                f"Selected by Undo round: the model {last.name} started from.",
            )
            self._show_rounds()
            self._remember()
        show_success(
            self.iface.messageBar(),
            f"Undid {last.name}: back to {last.parent_label()}; {len(gone)} map(s) refined with "
            f"it removed from the project (the model file stays: {last.model}).",
        )
        return last

    def _back_to_parent_view(self, undone: Round, gone: list[str]) -> None:
        """The dock shows the parent's latest map with its iterations again, as its refine
        left it, or says why it cannot (the round's view goes either way)."""
        flow = self.iteration_flow()
        project = QgsProject.instance()
        parent = [
            (layer_id, job)
            for layer_id, job in self.slider_refines.items()
            if job.params.image == undone.image
            and job.params.model_path == undone.parent
            and layer_id not in gone
            and project.mapLayer(layer_id) is not None
        ]
        label = model_label(undone.parent) or "the bundled model"
        if parent:
            layer_id, job = parent[-1]
            name = project.mapLayer(layer_id).name()
            shown = f"{undone.name} was undone: back to {label}'s map “{name}”"
            if flow.restore(layer_id, html.escape(f"{shown} and its iterations.")):
                self.last_refine = job
                return
            why = f"{shown}, whose iterations are no longer kept. Refine it again to see them."
        else:
            why = (
                f"{undone.name} was undone: its map's iterations went with it. Refine to "
                "see a map's iterations again."
            )
        flow.clear(why)
        self.last_refine = None

    def _start(self, task: EngineTask, text: str) -> EngineTask:
        self.tasks.append(task)
        if self.dialog is not None:
            self.dialog.set_running(True, text)
            task.progressChanged.connect(self.dialog.set_progress)
        QgsApplication.taskManager().addTask(task)
        return task

    def _done(self, task: EngineTask) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        if self.dialog is not None and not self.tasks:
            self.dialog.set_running(False)

    def _refined(self, job: RefineJob, task: EngineTask, outcome: RefineOutcome) -> None:
        self._done(task)
        job, outcome = as_named(job, outcome)  # the bundled model the refine chose, named
        result = outcome.result
        classmap = ClassMap(result.out, result.class_names, result.colours, result.scores)
        self.refined[job.params.image] = classmap
        self.history.setdefault(job.params.image, []).append((job.params.model_path, classmap))
        changes = outcome.changes
        layer = add_refine_result(
            result,
            job.source_name,
            QgsProject.instance(),
            model_label(job.params.model_path),
            grouped=outcome.slider is not None,
            model_path=job.params.model_path,
            changes=(changes, job.previous) if changes and job.previous else None,
        )
        if job.kept_from is not None:
            text = f"Kept iteration {result.iterations} of {job.source_name} → {result.out}"
        else:
            text = (
                f"Refined {job.source_name} in {result.seconds:.1f} s on {result.device} "
                f"→ {result.out}"
            )
        if result.model_note:
            text += f"; {result.model_note}"
        if result.colour_note:
            text += f"; {result.colour_note}"
        if result.scale_note:
            text += f"; {result.scale_note}"
        if result.corrections_note:
            text += f"; {result.corrections_note}"
        if job.params.bands:
            text += f"; read bands {', '.join(map(str, job.params.bands))} as chosen under Bands"
        if changes is not None and job.previous is not None:
            changed = f"against the map of {job.previous.label}, {changes.summary()}"
            shown = f" (layer “changes since {job.previous.label}”)" if changes.out else ""
            text += f"; {changed}{shown}"
            elsewhere = changes.away_from_drawn() or changes
            look = ": look at the changes layer where you did not draw" if elsewhere.changed else ""
            self._note_round_changes(job.params.model_path, f"Its map, {changed}{look}.")
        if result.prior_note:
            text += f"; prior map {result.prior_note}"
        if not job.show_iterations:
            text += "; Export polygons now uses this map"
        if result.prior_misread:  # the image's edges doubt the model: the user must read it
            show_warning(self.iface.messageBar(), text)
        else:
            show_success(self.iface.messageBar(), text)
        if self.dialog is not None:
            self.dialog.suggest_output_if_auto()
            self.dialog.refresh_export_classes()
        if outcome.slider is not None:
            self.last_refine = job
            project = QgsProject.instance()
            for layer_id in [i for i in self.slider_refines if project.mapLayer(i) is None]:
                del self.slider_refines[layer_id]  # removed by hand
            self.slider_refines[layer.id()] = job
            against = job.previous.label if job.previous is not None else ""
            review = Review(outcome.review, against) if outcome.review else None
            self.iteration_flow().show_refined(
                outcome.slider, result.iterations, layer.id(), review
            )

    def _fetched(self, job: RefineJob, task: EngineTask, result) -> None:  # noqa: ANN001
        """The fetched image becomes a layer, the dialog's input, and is refined."""
        self._done(task)
        layer = add_fetched_layer(result, QgsProject.instance())
        fetch = job.fetch
        if fetch is not None:
            show_success(
                self.iface.messageBar(),
                f"{fetched_message(fetch, result)}; refining it (choose {fetch.layer_name} "
                "again to fetch another view)",
            )
        if self.dialog is not None:
            self.dialog.input_combo.setLayer(layer)
        self.start_refine(replace(job, fetch=None, source_name=layer.name(), layer_id=layer.id()))

    def _vectorized(self, job: VectorizeJob, task: EngineTask, result) -> None:  # noqa: ANN001
        self._done(task)
        add_vectorize_result(result, job, QgsProject.instance())
        show_success(
            self.iface.messageBar(), f"Wrote {result.feature_count} polygons → {result.path}"
        )

    def _failed(self, task: EngineTask, exc: BaseException) -> None:
        self._done(task)
        show_error(self.iface.messageBar(), exc)

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    def corrections(self) -> tuple[QgsVectorLayer | None, str]:
        """The dialog's correction layer and its class field (None without a dialog)."""
        if self.dialog is None:
            return None, ""
        return self.dialog.labels.layer(), self.dialog.labels.field()

    def turn_back_flow(self) -> TurnBackFlow:
        """The *Turn changes back* map tool (ui/turn_back.py), made once."""
        if self.turn_back is None:

            def corrections() -> tuple[QgsVectorLayer | None, str]:
                self.ensure_dialog()
                return self.corrections()

            def released() -> None:
                if self.dialog is not None:
                    self.dialog.labels.turn_back_button.setChecked(False)

            self.turn_back = TurnBackFlow(self.iface, corrections, released)
        return self.turn_back

    def new_correction_layer(self) -> None:
        try:
            dialog = self.ensure_dialog()
            raster = self.iface.activeLayer()
            if not isinstance(raster, QgsRasterLayer):
                raster = dialog.input_combo.currentLayer()
            if not isinstance(raster, QgsRasterLayer):
                raise MapRefinerError(
                    "Select a raster layer first: the correction layer takes "
                    "its CRS and is saved beside it."
                )
            summary = dialog.model.summary
            if summary is None:
                raise MapRefinerError(
                    "Choose a usable model first: its classes fill the "
                    "correction layer's drop-down."
                )
            fallback = Path(load_defaults().output_dir or Path.home())
            layer = create_correction_layer(
                raster, summary.class_names, summary.colours, QgsProject.instance(), fallback
            )
        except MapRefinerError as exc:
            show_error(self.iface.messageBar(), exc)
            return
        dialog.labels.set_layer(layer, CLASS_FIELD)
        dialog.labels.set_mode("sparse")  # corrections: only the drawn pixels count
        self.iface.setActiveLayer(layer)
        show_success(
            self.iface.messageBar(),
            f"Draw polygons in “{layer.name()}” and pick their class, each outline round "
            "the whole object, just inside its edges (one that spills over teaches the "
            "wrong edge; a patch of the object teaches little and can make the map worse); "
            f"saved in {layer.source().split('|')[0]}",
        )

    def snap_outlines_parameters(self) -> dict[str, str]:
        """Processing's ``map_refiner:snap_outlines`` filled with the raster and correction
        layer in use: the active layer where it is one, else the dialog's choices."""
        active = self.iface.activeLayer()
        dialog = self.dialog
        raster = active if isinstance(active, QgsRasterLayer) else None
        corrections = active if isinstance(active, QgsVectorLayer) else None
        if raster is None and dialog is not None:
            raster = dialog.input_combo.currentLayer()
        if corrections is None and dialog is not None:
            corrections = dialog.labels.layer()
        params = {}
        if isinstance(raster, QgsRasterLayer):
            params["INPUT"] = raster.id()
        if isinstance(corrections, QgsVectorLayer):
            params["CORRECTIONS"] = corrections.id()
        return params

    def snap_outlines(self) -> None:
        """Processing's own dialog for the step (its progress, cancel and result layer)."""
        try:
            import processing  # QGIS's Processing plugin (its dialogs)
        except ImportError:
            show_error(
                self.iface.messageBar(),
                MapRefinerError(
                    "Snapping runs in Processing: enable the Processing plugin "
                    "(Plugins ▸ Manage and Install Plugins) and try again."
                ),
            )
            return
        processing.execAlgorithmDialog("map_refiner:snap_outlines", self.snap_outlines_parameters())

    def unload(self) -> None:
        try:
            QgsProject.instance().cleared.disconnect(self.project_cleared)
        except (TypeError, RuntimeError):
            pass
        self.cancel_all()
        for flow in (self.installer, self.iterations, self.turn_back):
            if flow is not None:
                flow.unload()
        self.installer = self.iterations = self.turn_back = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
