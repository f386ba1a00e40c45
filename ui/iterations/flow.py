"""What the iterations dock does: show the maps a refine kept at every iteration (or
recompute them in a task), switch the map layers' band when the slider moves
(nothing is recomputed), rank uncertain regions and zoom to them; after a round, list
the round's largest changes to review and turn back the wrong ones."""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgisInterface
from qgis.PyQt.QtCore import QObject, Qt, QTimer, pyqtSignal

from ..dialog.correction_layer import CLASS_FIELD
from ..jobs.tasks import EngineTask
from ..jobs.trajectory_job import TrajectoryJob, TrajectoryResult, run_trajectory, view_window
from ..layers import (
    add_in_group,
    group_of,
    keep_corrections_on_top,
    open_raster_layer,
    paletted_renderer,
    remove_layers,
)
from ..messages import show_error
from .dock import NO_ITERATIONS, IterationsDock
from .uncertainty_layers import regions_layer, set_regions, uncertainty_renderer

if TYPE_CHECKING:
    from ...engine.refine.trajectory import Trajectory
    from ...engine.scoring.turn_back import ChangeRegion

log = logging.getLogger(__name__)
REGION_CELL_M = 12.0
TOP_REGIONS = 5  # a short list a user works through, redone after each round
PLAY_MS = 700
#: A listed place is zoomed to with at least this much ground around it (then doubled).
ZOOM_MIN_M = 30.0
#: The uncertainty layer's opacity: the image under it stays readable.
UNCERTAINTY_OPACITY = 0.6
#: Earlier refines' views kept (their maps on disk, their trajectory in memory: about
#: 13 MB per iteration for the largest view, 2048 x 2048 px) for Undo round to show again:
#: at most this many, the oldest dropped first ...
KEPT_VIEWS = 3
#: ... and at most this much memory in their arrays together: three 5-iteration views of
#: the largest size (76 MiB each) fit, a 50-iteration one (616 MiB) alone does not. The
#: newest earlier view stays even alone over it: it is the one Undo round shows next (the
#: round's parent), and the dock held it while showing it, so the kept views hold at
#: most the budget or one view, whichever is larger.
KEPT_VIEWS_BYTES = 256 * 2**20


@dataclass
class Review:
    """A round's refine's largest changes (RefineOutcome.review), the list the dock shows
    after a round, and which of them the correction layer holds (IterationsFlow.
    _turned_back, read again whenever that layer changes)."""

    changes: Sequence[ChangeRegion] = ()
    against: str = ""  # the previous map's label ("round 1", "bundled")
    done: list[bool] = field(default_factory=list)

    def rows(self) -> list[str]:
        return [
            f"{i}.  {_size(c)}  {c.was} → {c.became}"
            + ("  ·  turned back" if self.is_done(i - 1) else "")
            + ("  ·  cut at a tile's side" if c.cut else "")
            for i, c in enumerate(self.changes, start=1)
        ]

    def is_done(self, row: int) -> bool:
        return row < len(self.done) and self.done[row]


def _size(change: ChangeRegion) -> str:
    if change.area_m2 is None:
        return f"{change.pixels} px"
    return f"{change.area_m2:,.0f} m²" if change.area_m2 >= 10 else f"{change.area_m2:.1f} m²"


class IterationsFlow(QObject):
    keep_requested = pyqtSignal(int)

    def __init__(self, iface: QgisInterface) -> None:
        super().__init__()
        self.iface = iface
        self.dock: IterationsDock | None = None
        self.task: EngineTask | None = None
        self.result: TrajectoryResult | None = None
        self.source: TrajectoryJob | None = None  # what Recompute starts from
        self.shown = 0  # the refine's iterations, where the slider starts
        self.has_refined_layer = False  # a refine's own class map shows iteration `shown`
        self.refined_layer_id: str | None = None  # its group holds the iterations view
        # the refined layer this flow unticked while the slider shows another iteration
        # (a layer the user unticked is left as it is)
        self.hidden_refined: str | None = None
        self.layer_ids: dict[str, str] = {}
        self.rects: list[QgsRectangle] = []
        self.outlines: list[QgsGeometry] = []  # the listed changes' (in the layer's CRS)
        self.review = Review()
        # adds a listed change to the correction layer; True when it did (controller)
        self.turn_back_change: Callable[[ChangeRegion], bool] | None = None
        # the dialog's correction layer and class field (controller): the list marks the
        # changes it holds, and follows its edits (the layers whose signals are connected)
        self.corrections: Callable[[], tuple[QgsVectorLayer | None, str]] | None = None
        self.watched: set[str] = set()
        self.refresh_pending = False
        # refined layer id -> the view a later refine replaced, its `shown` and its review
        # list; oldest first (Undo round shows one again: restore)
        self.earlier: dict[str, tuple[TrajectoryResult, int, Review]] = {}
        self.cache = Path(tempfile.mkdtemp(prefix="map_refiner_iterations_"))
        self.folders = itertools.count()
        self.timer = QTimer(self)
        self.timer.setInterval(PLAY_MS)
        self.timer.timeout.connect(self._step)
        QgsProject.instance().layersWillBeRemoved.connect(self._layers_removed)

    def ensure_dock(self) -> IterationsDock:
        if self.dock is None:
            self.dock = IterationsDock(self.iface.mainWindow())
            self.dock.iteration_changed.connect(self.show_iteration)
            self.dock.recompute_requested.connect(self.recompute)
            self.dock.keep_requested.connect(self.keep_requested)
            self.dock.region_activated.connect(self.zoom_to)
            self.dock.play_toggled.connect(self.play)
            self.dock.uncertainty_toggled.connect(self._show_uncertainty)
            self.dock.list_changed.connect(lambda _key: self._rank_shown())
            self.dock.turn_back_requested.connect(self.turn_back_row)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.show()
        return self.dock

    def slider_job(
        self,
        image: Path,
        model_path: Path | None,
        device: str,
        precision: str,
        source_name: str,
        layer_id: str,
        detail_iterations: int = 0,
        detail_resolution_m: float | None = None,
        bands: list[int] | None = None,
        input_resolution_m: float | None = None,
    ) -> TrajectoryJob:
        """Where and how a refine keeps the slider's maps: the whole raster, or the
        view of one larger than the cache; the dock's uncertainty; a new folder; the
        refine's detail iterations, which Recompute runs after the last iteration too."""
        from ...engine.refine.uncertainty import KINDS

        kind = self.dock.kind_combo.currentData() if self.dock is not None else KINDS[0]
        return TrajectoryJob(
            image,
            model_path,
            0,
            self._window(layer_id),
            kind,
            device,
            self._folder(),
            source_name,
            precision,
            layer_id,
            detail_iterations,
            detail_resolution_m,
            tuple(bands) if bands else None,
            input_resolution_m,
        )

    def show_refined(
        self,
        result: TrajectoryResult,
        shown: int,
        refined_layer_id: str | None = None,
        review: Review | None = None,
    ) -> None:
        """The maps a refine kept, shown at its iterations (nothing recomputed), inside
        the group of the refine's own layer when it has one; with a round's ``review``
        (its largest changes), the list shows those."""
        self._keep_current()
        self._present(result, shown, refined_layer_id, review=review or Review())

    def _present(
        self,
        result: TrajectoryResult,
        shown: int,
        layer_id: str | None,
        note: str = "",
        review: Review | None = None,
    ) -> None:
        """A refine's maps become the dock's view, shown at iteration ``shown`` inside the
        group of its refined layer (any running trajectory task is cancelled)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.source, self.shown = result.job, shown
        self.has_refined_layer = True
        self.refined_layer_id = layer_id
        self.review = review or Review()
        self.ensure_dock().offer_changes(bool(self.review.changes))
        self._show(result, note)

    def _keep_current(self) -> None:
        """The view a new refine replaces stays on disk (the last KEPT_VIEWS of them,
        within KEPT_VIEWS_BYTES) while its refined layer is in the project, for Undo round."""
        project = QgsProject.instance()
        layer_id = self.refined_layer_id
        if (
            self.result is not None
            and self.has_refined_layer
            and layer_id is not None
            and project.mapLayer(layer_id) is not None
        ):
            self.earlier.pop(layer_id, None)
            self.earlier[layer_id] = (self.result, self.shown, self.review)
            self.result = None  # its folder is kept: _show would delete it
        for key in [k for k in self.earlier if project.mapLayer(k) is None]:
            self._drop_earlier(key)
        while len(self.earlier) > KEPT_VIEWS or (
            len(self.earlier) > 1 and self.earlier_nbytes() > KEPT_VIEWS_BYTES
        ):
            self._drop_earlier(next(iter(self.earlier)))

    def earlier_nbytes(self) -> int:
        """The memory the kept earlier views' maps hold."""
        return sum(view[0].trajectory.nbytes for view in self.earlier.values())

    def _drop_earlier(self, layer_id: str) -> None:
        view = self.earlier.pop(layer_id, None)
        if view is not None:
            shutil.rmtree(view[0].job.folder, ignore_errors=True)

    def has_view_of(self, layer_id: str) -> bool:
        """The view of that refined layer is kept and its maps are still on disk."""
        view = self.earlier.get(layer_id)
        return (
            view is not None and view[0].classes_path.exists() and view[0].uncertainty_path.exists()
        )

    def restore(self, layer_id: str, note: str) -> bool:
        """Show again the view an earlier refine of that layer had (its round's successor
        was undone), as that refine showed it: nothing recomputed. ``note`` heads the
        dock's title. False (nothing changed) when that view is no longer kept."""
        if not self.has_view_of(layer_id):
            self._drop_earlier(layer_id)
            return False
        result, shown, review = self.earlier.pop(layer_id)
        self.timer.stop()
        self._present(result, shown, layer_id, note, review)
        return True

    def forget(self, layer_ids: list[str]) -> None:
        """Those refined layers leave the project: their kept views go too."""
        for layer_id in layer_ids:
            self._drop_earlier(layer_id)

    def _window(self, layer_id: str) -> tuple[int, int, int, int] | None:
        """None (the whole raster), or the view of a raster larger than the cache."""
        from ...engine.refine.params import MAX_PIXELS  # no torch on the main thread

        layer = QgsProject.instance().mapLayer(layer_id)
        if isinstance(layer, QgsRasterLayer) and layer.width() * layer.height() > MAX_PIXELS:
            canvas = self.iface.mapCanvas()
            return view_window(layer, canvas.extent(), canvas.mapSettings().destinationCrs())
        return None

    def _folder(self) -> Path:
        return self.cache / f"view_{next(self.folders)}"

    def recompute(self) -> EngineTask | None:
        """Other iterations, uncertainty or view, for the last refine's raster and model."""
        if self.source is None:
            return None
        dock = self.ensure_dock()
        if self.task is not None:
            self.task.cancel()
        job = replace(
            self.source,
            iterations=dock.max_spin.value(),
            window=self._window(self.source.layer_id),
            kind=dock.kind_combo.currentData(),
            folder=self._folder(),
        )
        self.task = EngineTask(
            f"Map Refiner: iterations of {job.source_name}",
            partial(run_trajectory, job),
            self._computed,
            self._failed,
        )
        self.task.progressChanged.connect(
            lambda p: dock.set_busy(True, f"Computing iterations 0–{job.iterations}… {p:.0f} %")
        )
        dock.set_busy(True, f"Computing iterations 0–{job.iterations}…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _failed(self, task: EngineTask, exc: BaseException) -> None:
        if task is self.task:
            self.task = None
            if self.dock is not None:
                self.dock.set_busy(False, "")
            show_error(self.iface.messageBar(), exc)

    def _computed(self, task: EngineTask, result: TrajectoryResult) -> None:
        if task is not self.task:
            return
        self.task = None
        self._show(result)

    def _show(self, result: TrajectoryResult, note: str = "") -> None:
        self._remove_layers()
        if self.result is not None:
            shutil.rmtree(self.result.job.folder, ignore_errors=True)
        self.result = result
        traj = result.trajectory
        name = result.job.source_name
        classes = open_raster_layer(result.classes_path, f"{name} — iteration")
        unc = open_raster_layer(result.uncertainty_path, f"{name} — uncertainty")
        regions = regions_layer(classes.crs(), f"{name} — where to draw next")
        project = QgsProject.instance()
        add_in_group(
            project,
            f"{name} — iterations",
            [regions, unc, classes],
            visible=3,
            parent=group_of(project, self.refined_layer_id),
        )
        keep_corrections_on_top(project)
        self.layer_ids = {"classes": classes.id(), "uncertainty": unc.id(), "regions": regions.id()}
        dock = self.ensure_dock()
        self._show_uncertainty(dock.uncertainty_check.isChecked())
        x0, y0, x1, y1 = traj.window
        where = "whole raster" if result.whole_raster else f"view, pixels {x0}–{x1} × {y0}–{y1}"
        dock.title_label.setText(
            (f"{note}<br>" if note else "")
            + f"<b>{name}</b>: iterations 0–{traj.iterations} over the {where} "
            f"({x1 - x0}×{y1 - y0} px), computed once in {traj.seconds:.1f} s on {traj.device}. "
            "Iteration 0 is the coarse CNN."
            + (
                f" Iteration {traj.iterations} then ran {traj.detail_iterations} more on a "
                f"{traj.detail_resolution_m:.2g} m grid (outline detail), as the refine does."
                if traj.detail_iterations
                else ""
            )
        )
        dock.set_range(traj.iterations, min(self.shown, traj.iterations))
        dock.set_busy(
            False,
            "Move the slider: the map layer switches band, nothing is "
            "recomputed."
            + (
                " The view was larger than the cache; zoom in for other areas."
                if traj.shrunk
                else ""
            ),
        )
        self.show_iteration(dock.slider.value())

    def _layer(self, key: str):  # noqa: ANN202 - a map layer or None
        return QgsProject.instance().mapLayer(self.layer_ids.get(key, ""))

    def show_iteration(self, t: int) -> None:
        if self.result is None:
            return
        traj = self.result.trajectory
        t = max(0, min(t, traj.iterations))
        name = self.result.job.source_name
        classes, unc = self._layer("classes"), self._layer("uncertainty")
        if classes is not None:
            classes.setRenderer(paletted_renderer(classes, traj.class_names, traj.colours, t + 1))
            classes.setName(f"{name} — iteration {t} of {traj.iterations}{_detail(traj, t)}")
            classes.triggerRepaint()
            # One class map on screen, as both leave their background transparent: at
            # the refine's own iteration the refined layer shows it; the slider's copy
            # shows, with the refined layer unticked, only for another iteration, or for
            # the refine's own one when it is not the view's last (a Recompute with other
            # iterations) and so lacks the detail iterations the refined layer ran.
            refined = t == self.shown and (t == traj.iterations or not traj.detail_iterations)
            refined = refined and self._refined_node() is not None
            node = QgsProject.instance().layerTreeRoot().findLayer(classes.id())
            if node is not None:
                node.setItemVisibilityChecked(not refined)
                self._show_refined_layer(refined)
        if unc is not None:
            unc.setRenderer(uncertainty_renderer(unc, t + 1))
            unc.setOpacity(UNCERTAINTY_OPACITY)  # a new renderer starts opaque
            unc.setName(f"{name} — uncertainty ({traj.kind}), iteration {t}{_detail(traj, t)}")
            unc.triggerRepaint()
        self._rank(t)

    def _rank_shown(self) -> None:
        if self.result is not None:
            self._rank(self.ensure_dock().slider.value())

    def _rank(self, t: int) -> None:
        """The dock's list and the regions layer: the uncertain places at iteration ``t``,
        or the round's largest changes (the same at every iteration: the refine's map
        against the previous one)."""
        if self.review.changes and self.ensure_dock().list_kind() == "changes":
            self._list_changes()
            return
        from ...engine.refine.uncertainty import rank_regions

        traj = self.result.trajectory  # type: ignore[union-attr]
        cell = max(4, int(round(REGION_CELL_M / traj.pixel_size_m)))
        regions = rank_regions(
            traj.uncertainty[t].astype("float32"), traj.valid, cell=cell, top=TOP_REGIONS
        )
        self.rects = [QgsRectangle(*traj.box_to_map(r.x0, r.y0, r.x1, r.y1)) for r in regions]
        self.outlines = []
        layer = self._layer("regions")
        if layer is not None:
            set_regions(layer, [(r.rank, r.score) for r in regions], self.rects)
        size = traj.pixel_size_m
        self.ensure_dock().set_regions(
            regions, [f"{(r.x1 - r.x0) * size:.0f} × {(r.y1 - r.y0) * size:.0f} m" for r in regions]
        )

    def _list_changes(self) -> None:
        """The review list: each change's outline (in the regions layer's CRS, the
        image's: the changes raster lies on the refined map's grid) and its box."""
        changes = self.review.changes
        layer = self._layer("regions")
        self.outlines = [QgsGeometry.fromWkt(c.wkt) for c in changes]
        for change, outline in zip(changes, self.outlines):
            crs = QgsCoordinateReferenceSystem.fromWkt(change.srs_wkt)
            if layer is not None and crs.isValid() and crs != layer.crs():
                outline.transform(QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()))
        self.rects = [g.boundingBox() for g in self.outlines]
        if layer is not None:
            ranked = [(i, c.area_m2 or float(c.pixels)) for i, c in enumerate(changes, start=1)]
            set_regions(layer, ranked, self.rects)
        self.review.done = self._turned_back()
        self.ensure_dock().set_rows(self.review.rows(), self.review.done)

    def _turned_back(self) -> list[bool]:
        """Which listed changes the correction layer holds: a polygon of the class the
        change had over a point inside it (turned back with the list's button or a click
        with the tool, or drawn there by hand; the layer's Undo takes the mark away with
        the polygon)."""
        layer, field_name = self.corrections() if self.corrections is not None else (None, "")
        if layer is None:
            return []
        self._watch(layer)
        index = layer.fields().indexOf(field_name or CLASS_FIELD)
        if index < 0:
            return []
        done = []
        for change in self.review.changes:
            point = QgsGeometry.fromWkt(change.wkt).pointOnSurface()
            crs = QgsCoordinateReferenceSystem.fromWkt(change.srs_wkt)
            if crs.isValid() and layer.crs().isValid() and crs != layer.crs():
                point.transform(QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()))
            request = QgsFeatureRequest().setFilterRect(point.boundingBox().buffered(1e-6))
            done.append(
                any(
                    f.attribute(index) == change.was and f.geometry().contains(point)
                    for f in layer.getFeatures(request)
                )
            )
        return done

    def _watch(self, layer: QgsVectorLayer) -> None:
        """Read the marks again when the correction layer's polygons change (an edit, its
        Undo or Redo, a save, a rollback)."""
        if layer.id() in self.watched:
            return
        self.watched.add(layer.id())
        for signal in (
            layer.featureAdded,
            layer.featuresDeleted,
            layer.geometryChanged,
            layer.attributeValueChanged,
            layer.afterRollBack,
            layer.dataChanged,
        ):
            signal.connect(self._corrections_edited)

    def _corrections_edited(self, *_args: object) -> None:
        if not self.refresh_pending:  # once for a burst of signals (one edit command)
            self.refresh_pending = True
            QTimer.singleShot(0, self._refresh_review)

    def _refresh_review(self) -> None:
        self.refresh_pending = False
        if self.result is not None and self.review.changes and self.dock is not None:
            if self.dock.list_kind() == "changes":
                self._list_changes()

    def turn_back_row(self, row: int) -> None:
        """Turn back the listed change of ``row`` (into the correction layer, through the
        controller's turn_back_change); the row then says so."""
        review = self.review
        if not 0 <= row < len(review.changes) or self.turn_back_change is None:
            return
        if review.is_done(row):
            return
        if self.turn_back_change(review.changes[row]):
            self._list_changes()  # the row marked (the layer's signals also ask for it)
            self.ensure_dock().select_next(row)  # and on to the next one, zoomed to

    def zoom_to(self, row: int) -> None:
        """Zoom the canvas to a region, with as much context again around it."""
        classes = self._layer("classes")
        if not 0 <= row < len(self.rects) or classes is None:
            return
        canvas = self.iface.mapCanvas()
        transform = QgsCoordinateTransform(
            classes.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance()
        )
        rect = transform.transformBoundingBox(self.rects[row])
        # ZOOM_MIN_M in the layer's units: its pixel in them against the pixel in metres
        traj = self.result.trajectory if self.result is not None else None
        per_m = classes.rasterUnitsPerPixelX() / traj.pixel_size_m if traj is not None else 0.0
        view = _at_least(self.rects[row], ZOOM_MIN_M * per_m)
        view.scale(2.0)
        view = transform.transformBoundingBox(view)
        canvas.setExtent(view)
        canvas.refresh()
        flash = QgsGeometry(self.outlines[row]) if row < len(self.outlines) else None
        if flash is not None:  # a listed change: its own outline
            flash.transform(transform)
        else:
            flash = QgsGeometry.fromRect(rect)
        canvas.flashGeometries([flash], canvas.mapSettings().destinationCrs())

    def play(self, on: bool) -> None:
        dock = self.ensure_dock()
        if on:
            if dock.slider.value() >= dock.slider.maximum():
                dock.set_iteration(0)
            self.timer.start()
        else:
            self.timer.stop()
        dock.play_button.setText("⏸" if on else "▶")

    def _step(self) -> None:
        dock = self.ensure_dock()
        if dock.slider.value() >= dock.slider.maximum():
            dock.play_button.setChecked(False)
            return
        dock.set_iteration(dock.slider.value() + 1)

    def _refined_node(self):  # noqa: ANN202 - the refined layer's tree node or None
        if not self.has_refined_layer or self.refined_layer_id is None:
            return None
        return QgsProject.instance().layerTreeRoot().findLayer(self.refined_layer_id)

    def _show_refined_layer(self, visible: bool) -> None:
        """Untick the refined layer while the slider's copy shows another iteration, and
        tick it again only if this flow unticked it."""
        if visible:
            hidden, self.hidden_refined = self.hidden_refined, None
            node = QgsProject.instance().layerTreeRoot().findLayer(hidden) if hidden else None
            if node is not None:
                node.setItemVisibilityChecked(True)
            return
        node = self._refined_node()
        if node is not None and node.itemVisibilityChecked():
            node.setItemVisibilityChecked(False)
            self.hidden_refined = self.refined_layer_id

    def _layers_removed(self, layer_ids: list[str]) -> None:
        """The slider's copy removed by hand: the refined layer is shown again."""
        if self.layer_ids.get("classes") in layer_ids:
            self._show_refined_layer(True)

    def _show_uncertainty(self, visible: bool) -> None:
        layer = self._layer("uncertainty")
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id()) if layer else None
        if node is not None:
            node.setItemVisibilityChecked(visible)

    def _remove_layers(self) -> None:
        self._show_refined_layer(True)
        remove_layers(QgsProject.instance(), list(self.layer_ids.values()))
        self.layer_ids = {}

    def clear(self, why: str | None = None) -> None:
        """The map the slider showed left the project (its round was undone): its
        iterations, uncertainty and regions go too, and the dock empties, saying ``why``
        (earlier refines' kept views stay)."""
        self._remove_layers()
        self._empty(why)

    def reset(self, why: str | None = None) -> None:
        """The project was closed or a new one started: forget the old raster's
        iterations (its layers went with the project) and empty the dock."""
        for layer_id in list(self.earlier):
            self._drop_earlier(layer_id)
        self._empty(why)

    def _empty(self, why: str | None) -> None:
        self.timer.stop()
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.result is not None:
            shutil.rmtree(self.result.job.folder, ignore_errors=True)
        self.result = self.source = None
        self.layer_ids, self.rects, self.outlines, self.shown = {}, [], [], 0
        self.review = Review()
        self.has_refined_layer = False
        self.refined_layer_id = self.hidden_refined = None
        if self.dock is not None:
            self.dock.clear(why or NO_ITERATIONS)

    def unload(self) -> None:
        QgsProject.instance().layersWillBeRemoved.disconnect(self._layers_removed)
        self.timer.stop()
        if self.task is not None:
            self.task.cancel()
        self._remove_layers()
        if self.dock is not None:
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        shutil.rmtree(self.cache, ignore_errors=True)


def _at_least(rect: QgsRectangle, side: float) -> QgsRectangle:
    """``rect`` grown about its centre to ``side`` where it is smaller (a small change
    zoomed to alone shows no context: a few blown-up pixels)."""
    centre = rect.center()
    half_w, half_h = max(rect.width(), side) / 2, max(rect.height(), side) / 2
    return QgsRectangle(
        centre.x() - half_w, centre.y() - half_h, centre.x() + half_w, centre.y() + half_h
    )


def _detail(traj: Trajectory, t: int) -> str:
    """What the view of iteration ``t`` adds to its name: the detail iterations it ran."""
    if t != traj.iterations or not traj.detail_iterations:
        return ""
    return f", then {traj.detail_iterations} at {traj.detail_resolution_m:.2g} m"
