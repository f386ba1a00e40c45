"""The refine action: its parameters, the work in the task, the layers afterwards."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer, QgsVectorLayer

from ...engine.errors import CancelledError, MapRefinerError
from ...engine.modelfile.header import DEFAULT_MODEL_PATH
from ...engine.progress import CancelFn, ProgressFn
from ..installer.deps import check_dependencies
from ..layers import (
    CHANGES_OF_KEY,
    MODEL_KEY,
    PREVIOUS_MAP_KEY,
    add_in_group,
    changes_layer,
    changes_layer_name,
    class_map_layer,
    coarse_layer_name,
    hide_layers,
    keep_corrections_on_top,
    probability_layers,
    refine_group_name,
    refined_layer_name,
    refined_layer_title,
)
from ..paths import same_file, unique_path
from ..sources import (
    coarse_path_for,
    image_path,
    layer_file,
    layer_in_file,
    raster_path,
    scores_path_for,
)
from .fetch_job import FetchJob
from .torch_library import load_torch_library
from .trajectory_job import TrajectoryJob, TrajectoryResult, write_slider_maps

if TYPE_CHECKING:
    from ...engine.refine.pipeline import RefineParams, RefineResult
    from ...engine.refine.trajectory import Trajectory
    from ...engine.scoring.changes import MapChanges
    from ...engine.scoring.turn_back import ChangeRegion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviousMap:
    """The image's latest map before a refine with another model (after a correction
    round: the map the round's parent made), to show what the new map changes."""

    path: Path
    model: Path | None  # the model it was refined with; None: the bundled default
    label: str  # that model as layer names say it ("bundled", "round 1", "general ...")


@dataclass
class RefineJob:
    """RefineParams for the engine plus the layer name the result is named after."""

    params: RefineParams
    source_name: str
    layer_id: str = ""
    show_iterations: bool = True  # keep the iteration slider's maps from the same pass
    slider: TrajectoryJob | None = None  # where they go (set when the job starts)
    kept_from: Trajectory | None = None  # an iteration the slider holds: written, not refined
    fetch: FetchJob | None = None  # online imagery: fetched into params.image first
    previous: PreviousMap | None = None  # compared with the new map when the model differs
    keeps_iteration: bool = False  # Keep iteration's job (never compared: same model)


@dataclass
class PriorChoice:
    """A map the user already has, to start the RNN from (engine/refine/prior.py)."""

    layer: QgsMapLayer  # a class raster or a polygon layer
    class_field: str | None = None  # a polygon layer's class field (None: all buildings)
    value_map: str = ""  # a raster's "value:class" pairs (empty: values are classes)
    search_m: float | None = None  # how far its offset is looked for (None: the engine's)
    edges: bool = True  # undo a move the image's edges contradict (RefineParams.prior_edges)


@dataclass
class RefineOutcome:
    """The refine's result and, when kept, the slider's maps on disk."""

    result: RefineResult
    slider: TrajectoryResult | None = None
    changes: MapChanges | None = None  # the new map against RefineJob.previous
    # its largest changes away from the drawn polygons, the largest first: the iterations
    # dock's review list (engine/scoring/turn_back.largest_changes)
    review: tuple[ChangeRegion, ...] = ()


def build_refine_job(
    layer: QgsMapLayer | None,
    model_path: Path | None,
    iterations: int,
    device: str,
    output: str,
    write_scores: bool,
    add_coarse: bool = False,
    prior: PriorChoice | None = None,
    online: FetchJob | None = None,
    detail_iterations: int | None = 0,
    detail_resolution_m: float | None = None,
    choose_model: bool = False,
    bands: list[int] | None = None,
    match_colours: bool = True,
    input_resolution_m: float | None = None,
) -> RefineJob:
    """The refine of ``layer``; with ``prior``, from that map instead of the coarse CNN
    (no iterations slider then: its Recompute starts from the CNN); with ``online`` (an
    XYZ layer), of the image that fetch writes; with ``detail_iterations``, that many
    more on a finer grid (of ``detail_resolution_m`` pixels; None: the engine's; None
    iterations: the model's own); with ``choose_model`` and no model, the bundled model
    the engine chooses for the image (RefineParams.choose_model); with ``bands``, those
    of the raster as the model's (the dialog's Bands; online imagery is fetched as red,
    green, blue, so none there); ``match_colours`` False: the image read as it is even
    where the model would match its colours (RefineParams.match_colours);
    ``input_resolution_m``: the pixel size of an image without georeferencing."""
    image = online.request.out if online is not None else image_path(layer)
    if not output.strip():
        raise MapRefinerError("Choose an output file for the refined class map.")
    out = Path(output.strip())
    if not out.suffix:
        out = out.with_name(out.name + ".tif")
    elif out.suffix.lower() not in (".tif", ".tiff"):
        raise MapRefinerError(f"The class map is written as a GeoTIFF; name it {out.stem}.tif.")
    check_dependencies()
    from ...engine.refine.params import RefineParams  # no torch here: the main thread

    params = RefineParams(
        image=image,
        out=out,
        model_path=model_path,
        iterations=iterations,
        device=device,
        scores=scores_path_for(out) if write_scores else None,
        coarse=coarse_path_for(out) if add_coarse else None,
        detail_iterations=detail_iterations,
        detail_resolution_m=detail_resolution_m if detail_iterations != 0 else None,
        choose_model=choose_model and model_path is None,
        bands=list(bands) if bands and online is None else None,
        match_colours=match_colours,
        input_resolution_m=input_resolution_m if online is None else None,
    )
    if prior is not None:
        from ...engine.vocabulary import parse_raster_value_map

        path = layer_file(prior.layer)
        if not path.is_file():
            raise MapRefinerError(
                f"“{prior.layer.name()}” is not a file on disk; save it (GeoTIFF or "
                "GeoPackage) and start from that."
            )
        if path == image or (online is None and path == raster_path(layer)):
            raise MapRefinerError("Start from another map than the image being refined.")
        params = replace(
            params,
            prior=path,
            prior_class_field=prior.class_field,
            prior_search_m=prior.search_m,
            prior_edges=prior.edges,
            prior_layer=layer_in_file(prior.layer)
            if isinstance(prior.layer, QgsVectorLayer)
            else None,
            prior_value_map=parse_raster_value_map(prior.value_map, "The value map")
            if isinstance(prior.layer, QgsRasterLayer)
            else None,
        )
    return RefineJob(  # type: ignore[union-attr]
        params, layer.name(), layer.id(), show_iterations=prior is None, fetch=online
    )


def keep_iteration_job(
    job: RefineJob, iterations: int, slider: TrajectoryResult | None = None
) -> RefineJob:
    """The map at ``iterations`` into a new ``<out>_it<N>.tif`` beside the last: written
    from the slider's maps when they hold it for the whole raster, else refined (the
    slider covered only the view of a large raster, or the scores are wanted too). As the
    slider shows them, only its last iteration (the refine's, or Recompute's) goes through
    the refine's detail ones."""
    out = unique_path(job.params.out.with_name(f"{job.params.out.stem}_it{iterations}.tif"))
    shown = slider.trajectory.iterations if slider is not None else job.params.iterations
    detail = job.params.detail_iterations if iterations == shown else 0
    params = replace(
        job.params,
        iterations=iterations,
        out=out,
        scores=scores_path_for(out) if job.params.scores else None,
        coarse=None,
        detail_iterations=detail,
        detail_resolution_m=job.params.detail_resolution_m if detail else None,
    )
    derivable = (
        slider is not None
        and slider.whole_raster
        and (slider.job.image, slider.job.model_path) == (job.params.image, job.params.model_path)
        and list(slider.job.bands or []) == list(job.params.bands or [])
        and iterations <= slider.trajectory.iterations
        and params.scores is None
    )
    return RefineJob(
        params,
        job.source_name,
        job.layer_id,
        show_iterations=False,
        kept_from=slider.trajectory if slider is not None and derivable else None,
        keeps_iteration=True,
    )


def run_refine(job: RefineJob, progress: ProgressFn, is_cancelled: CancelFn) -> RefineOutcome:
    """Runs in the task's worker thread."""
    load_torch_library()
    from ...engine.refine.pipeline import KeepIterations, refine_raster
    from ...engine.refine.trajectory_io import write_iteration

    if job.kept_from is not None:  # keep_iteration_job set the iterations
        iterations = int(job.params.iterations or 0)
        return RefineOutcome(write_iteration(job.kept_from, iterations, job.params.out))
    params, share = job.params, 1.0
    if job.slider is not None:
        params = replace(params, keep_iterations=KeepIterations(job.slider.window, job.slider.kind))
        share = 0.95  # the slider's maps are written afterwards
    result = refine_raster(
        params, progress=lambda f: progress(share * f), is_cancelled=is_cancelled
    )
    slider = None
    if job.slider is not None and result.trajectory is not None:
        slider = write_slider_maps(job.slider, result.trajectory)
        progress(1.0)
    changes = map_changes_of(job, result, is_cancelled)
    return RefineOutcome(result, slider, changes, review_of(job, changes, is_cancelled))


def used_model(job: RefineJob, result: RefineResult) -> Path | None:
    """The model the refine used as the dialog names it: None for the bundled default."""
    used = result.model_path if job.params.choose_model else job.params.model_path
    return None if used is None or same_file(used, DEFAULT_MODEL_PATH) else used


def map_changes_of(
    job: RefineJob, result: RefineResult, is_cancelled: CancelFn
) -> MapChanges | None:
    """The new map against the image's previous one when that was made with another model
    (engine/scoring/changes.py), written as ``<out>_changes.tif`` beside the new map; None
    when there is nothing to compare. A comparison that fails or is cancelled costs the
    refine nothing: it is left out (a failure logged), the map shown."""
    previous = job.previous
    if previous is None or job.keeps_iteration or not previous.path.is_file():
        return None
    model = used_model(job, result)  # None, like PreviousMap.model, for the bundled default
    same_model = model == previous.model or (
        model is not None and previous.model is not None and same_file(model, previous.model)
    )
    if same_model or same_file(previous.path, result.out):
        return None
    from ...engine.scoring.changes import drawn_by, map_changes

    out = unique_path(result.out.with_name(f"{result.out.stem}_changes.tif"))
    try:
        drawn = drawn_by(model, result.out)  # a round's polygons: counted apart
        found = map_changes(previous.path, result.out, out, is_cancelled=is_cancelled, drawn=drawn)
    except CancelledError:  # the map itself is done: it is shown, without the comparison
        return None
    except MapRefinerError as exc:
        log.warning("What changed against %s was not computed: %s", previous.path, exc)
        return None
    if found.changed == 0:  # nothing to look at: no layer, no file
        for path in (out, Path(f"{out}.aux.xml")):
            path.unlink(missing_ok=True)
        return replace(found, out=None)
    return found


def review_of(
    job: RefineJob, changes: MapChanges | None, is_cancelled: CancelFn
) -> tuple[ChangeRegion, ...]:
    """The largest changes of the changes raster a refine wrote, for the dock's review
    list; none when it wrote none. Like the comparison, a list that fails or is cancelled
    costs the refine nothing: it is left out (a failure logged)."""
    if changes is None or changes.out is None or job.previous is None:
        return ()
    from ...engine.scoring.turn_back import largest_changes

    try:
        return tuple(largest_changes(changes.out, job.previous.path, is_cancelled=is_cancelled))
    except CancelledError:
        return ()
    except MapRefinerError as exc:
        log.warning("The largest changes of %s were not listed: %s", changes.out, exc)
        return ()


def as_named(job: RefineJob, outcome: RefineOutcome) -> tuple[RefineJob, RefineOutcome]:
    """After a refine that chose the bundled model for the image (RefineParams.
    choose_model): the job, and its iterations' maps, as if that model had been named
    (None for the bundled default, as the dialog names it), so that the result's name,
    Keep iteration, Recompute and Undo round use the model the refine used."""
    if not job.params.choose_model:
        return job, outcome
    named = used_model(job, outcome.result)
    job = replace(job, params=replace(job.params, model_path=named, choose_model=False))
    if job.slider is not None:
        job = replace(job, slider=replace(job.slider, model_path=named))
    if outcome.slider is not None:
        slider = replace(outcome.slider, job=replace(outcome.slider.job, model_path=named))
        outcome = replace(outcome, slider=slider)
    return job, outcome


def add_refine_result(
    result: RefineResult,
    source_name: str,
    project: QgsProject,
    model_name: str | None = None,
    grouped: bool = False,
    model_path: Path | None = None,
    changes: tuple[MapChanges, PreviousMap] | None = None,
) -> QgsRasterLayer:
    """Main thread: the styled class map (named after the model unless it is the bundled
    one; its title, which the Layers panel's tooltip shows, names the model in full and
    its abstract the model file); with the coarse map and/or the probabilities, or when
    ``grouped`` (the iterations view joins it), all in one group (only the refined map
    checked); with ``changes`` (against the previous map), the changes layer on top of
    the group, checked too; correction layers stay on top."""
    name = refined_layer_name(source_name, result.iterations, model_name)
    layer = class_map_layer(result.out, name, result.class_names, result.colours)
    layer.setTitle(refined_layer_title(source_name, result.iterations, model_name))
    layer.setAbstract(f"Model: {model_path or 'bundled'}\nClass map: {result.out}")
    layer.setCustomProperty(MODEL_KEY, str(model_path or ""))
    extra = []
    if result.coarse is not None:
        extra.append(
            class_map_layer(
                result.coarse, coarse_layer_name(source_name), result.class_names, result.colours
            )
        )
    if result.scores is not None:
        extra += probability_layers(result.scores, source_name, result.class_names, result.colours)
    on_top = []
    if changes is not None and changes[0].out is not None:
        found, previous = changes
        shown = changes_layer(
            found.out,
            changes_layer_name(source_name, previous.label),
            result.class_names,
            result.colours,
        )
        shown.setTitle(f"Against {previous.path.name} ({previous.label}): {found.summary()}")
        shown.setAbstract(f"Changes: {found.out}\nPrevious map: {previous.path}")
        shown.setCustomProperty(MODEL_KEY, str(model_path or ""))  # Undo round removes it
        shown.setCustomProperty(CHANGES_OF_KEY, source_name)
        shown.setCustomProperty(PREVIOUS_MAP_KEY, str(previous.path))  # to turn changes back
        hide_layers(project, CHANGES_OF_KEY, source_name)  # the image's older changes
        on_top.append(shown)
    if extra or grouped or on_top:
        group = refine_group_name(source_name, model_name)
        add_in_group(project, group, on_top + [layer] + extra, visible=1 + len(on_top))
    else:
        project.addMapLayer(layer, False)
        project.layerTreeRoot().insertLayer(0, layer)
    keep_corrections_on_top(project)
    return layer
