"""The refine action: its parameters, the work in the task, the layers afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ..installer.deps import check_dependencies
from ..layers import (
    add_in_group,
    class_map_layer,
    coarse_layer_name,
    probability_layers,
    refined_layer_name,
)
from ..sources import coarse_path_for, raster_path, scores_path_for

if TYPE_CHECKING:
    from ...engine.refine.pipeline import RefineParams, RefineResult


@dataclass
class RefineJob:
    """RefineParams for the engine plus the layer name the result is named after."""

    params: RefineParams
    source_name: str
    layer_id: str = ""
    show_iterations: bool = True  # compute the iteration slider's maps afterwards


def build_refine_job(
    layer: QgsMapLayer | None,
    model_path: Path | None,
    iterations: int,
    device: str,
    output: str,
    write_scores: bool,
    add_coarse: bool = False,
) -> RefineJob:
    image = raster_path(layer)
    if not output.strip():
        raise MapRefinerError("Choose an output file for the refined class map.")
    out = Path(output.strip())
    if not out.suffix:
        out = out.with_name(out.name + ".tif")
    elif out.suffix.lower() not in (".tif", ".tiff"):
        raise MapRefinerError(f"The class map is written as a GeoTIFF; name it {out.stem}.tif.")
    check_dependencies()
    from ...engine.refine.pipeline import RefineParams

    params = RefineParams(
        image=image,
        out=out,
        model_path=model_path,
        iterations=iterations,
        device=device,
        scores=scores_path_for(out) if write_scores else None,
        coarse=coarse_path_for(out) if add_coarse else None,
    )
    return RefineJob(params, layer.name(), layer.id())  # type: ignore[union-attr]


def keep_iteration_job(job: RefineJob, iterations: int) -> RefineJob:
    """The same refine with ``iterations``, into a new ``<out>_it<N>.tif`` beside the last."""
    from dataclasses import replace

    from ..paths import unique_path

    out = unique_path(job.params.out.with_name(f"{job.params.out.stem}_it{iterations}.tif"))
    params = replace(
        job.params,
        iterations=iterations,
        out=out,
        scores=scores_path_for(out) if job.params.scores else None,
        coarse=None,
    )
    return RefineJob(params, job.source_name, job.layer_id, show_iterations=False)


def run_refine(job: RefineJob, progress: ProgressFn, is_cancelled: CancelFn) -> RefineResult:
    """Runs in the task's worker thread."""
    from ...engine.refine.pipeline import refine_raster

    return refine_raster(job.params, progress=progress, is_cancelled=is_cancelled)


def add_refine_result(
    result: RefineResult, source_name: str, project: QgsProject
) -> QgsRasterLayer:
    """Main thread: the styled class map; with the coarse map and/or the
    probabilities, all in one group (only the refined map checked)."""
    name = refined_layer_name(source_name, result.iterations)
    layer = class_map_layer(result.out, name, result.class_names, result.colours)
    extra = []
    if result.coarse is not None:
        extra.append(
            class_map_layer(
                result.coarse, coarse_layer_name(source_name), result.class_names, result.colours
            )
        )
    if result.scores is not None:
        extra += probability_layers(result.scores, source_name, result.class_names, result.colours)
    if extra:
        add_in_group(project, f"{source_name} — Map Refiner", [layer] + extra, visible=1)
    else:
        project.addMapLayer(layer)
    return layer
