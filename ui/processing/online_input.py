"""An XYZ, WMS or WMTS layer as a Processing algorithm's input: the area the algorithm's
extent parameter gives, fetched at the model's resolution by the dialog's fetch code into
a GeoTIFF beside the output (or in the Processing temp folder), reused for the same area."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsRectangle,
)

from ..jobs.fetch_job import FetchJob, fetch_job_in, fetched_message, online_name, run_fetch
from ..paths import is_writable_folder
from .common import call_engine

FETCH_SHARE = 0.3  # of the algorithm's progress bar, when it fetches before refining


def model_resolution(model: Path | None, with_prior: bool) -> float:
    """The ground resolution of the model the refine will use (the bundled one, or the
    bundled snap model with a prior, when none is given), from its header only."""
    from ...engine.errors import MapRefinerError
    from ...engine.modelfile.header import (
        DEFAULT_MODEL_PATH,
        model_for_refine,
        read_model_config,
    )

    chosen = model_for_refine(model, with_prior) or DEFAULT_MODEL_PATH
    try:
        return float(read_model_config(chosen).ground_resolution_m)
    except MapRefinerError as exc:
        raise QgsProcessingException(exc.message) from exc


def cache_folder(out: Path) -> Path:
    """Beside the output; for a temporary output (or an output folder not writable) the
    Processing temp folder itself, so that later runs on the same area reuse the image."""
    temp = Path(QgsProcessingUtils.tempFolder())
    folder = out.parent
    if folder.resolve().is_relative_to(temp.resolve()) or not is_writable_folder(folder):
        return temp
    return folder


def plan_fetch(
    layer: QgsRasterLayer,
    extent: QgsRectangle,
    crs: QgsCoordinateReferenceSystem,
    resolution_m: float,
    out: Path,
    avoid: frozenset[Path],
    extent_name: str,
) -> FetchJob:
    """The fetch of ``extent`` (in ``crs``, else the layer's) for ``out``, never into a
    file of ``avoid``; raises QgsProcessingException, saying what to set when no extent
    was given."""
    from ...engine.errors import MapRefinerError

    if extent.isNull() or extent.isEmpty():
        raise QgsProcessingException(
            f"“{online_name(layer)}” is an online layer (XYZ, WMS or WMTS): set “{extent_name}” "
            "(e.g. the map canvas extent or a drawn rectangle) to the area to refine; its "
            "imagery is fetched there at the model's resolution."
        )
    try:
        return fetch_job_in(layer, (extent, crs), resolution_m, cache_folder(out), avoid)
    except MapRefinerError as exc:
        raise QgsProcessingException(exc.message) from exc


def fetch_image(job: FetchJob, feedback: QgsProcessingFeedback) -> Path:
    """Runs the fetch (or reuses its file) on the first ``FETCH_SHARE`` of the progress
    bar, cancelled by the feedback; logs what it fetched. The fetched GeoTIFF."""

    def fetch(progress, is_cancelled):  # noqa: ANN001, ANN202
        return run_fetch(job, lambda f: progress(FETCH_SHARE * f), is_cancelled)

    result = call_engine(feedback, fetch)
    feedback.pushInfo(fetched_message(job, result))
    return result.path
