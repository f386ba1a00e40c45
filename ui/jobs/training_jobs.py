"""Fine-tune and Train coarse CNN: a raster and a polygon layer of labels to a new model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import QgsMapLayer, QgsProject, QgsVectorLayer

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ...engine.vocabulary import label_mode
from ..dialog.model_info import ModelSummary
from ..installer.deps import check_dependencies
from ..paths import output_beside, unique_path, writable_folder
from ..sources import image_path, layer_file, layer_in_file, project_dir, raster_path
from .torch_library import load_torch_library

if TYPE_CHECKING:
    from ...training.coarse import CoarseParams, TrainResult
    from ...training.corrections.finetune import FinetuneResult
    from ...training.data import LabelSource


@dataclass
class FinetuneJob:
    """Arguments of the corrections fine-tune, and the label layer whose edits are saved first."""

    image: Path
    labels: LabelSource
    out: Path
    base_model: Path | None
    steps: int | None
    device: str
    label_layer_id: str
    choose_base: bool = False  # no base model: the bundled one chosen for the image
    bands: list[int] | None = None  # the dialog's Bands (None: the image's own)
    match_colours: bool = True  # False: read as it is, and a model that never matches
    input_resolution_m: float | None = None  # an image without georeferencing: its pixel size


@dataclass
class TrainCoarseJob:
    params: CoarseParams
    label_layer_id: str


def label_source(
    layer: QgsMapLayer | None,
    class_field: str,
    mode: str,
    value_map: dict[str, int] | None = None,
) -> LabelSource:
    """The polygon layer's file as the engine's LabelSource (no field: every polygon is
    class 1; ``value_map``: the field's values as class indices)."""
    if not isinstance(layer, QgsVectorLayer):
        raise MapRefinerError("Choose a polygon layer of labels (or create a correction layer).")
    if layer.providerType() != "ogr":
        raise MapRefinerError(
            f"“{layer.name()}” is not a file; save it as a GeoPackage first "
            "(right-click ▸ Export ▸ Save Features As…)."
        )
    check_dependencies()
    from ...training.data import LabelSource

    return LabelSource(
        path=layer_file(layer),
        class_field=class_field or None,
        layer=layer_in_file(layer),
        mode=label_mode(mode),
        value_map=value_map,
    )


def rounds_of(model: Path | None, image_name: str) -> int:
    """How many correction rounds on ``image_name`` the model at ``model`` holds
    (header only; 0 for the bundled model or an unreadable file)."""
    if model is None:
        return 0
    from ...engine.errors import MapRefinerError
    from ...engine.modelfile.header import read_model_config

    try:
        records = read_model_config(model).training.get("finetune") or []
    except MapRefinerError:
        return 0
    return sum(1 for r in records if isinstance(r, dict) and r.get("image") == image_name)


def round_parent(job: FinetuneJob, result: FinetuneResult) -> Path | None:
    """The model a round started from, as the dialog names it: the job's, or the bundled
    model the fine-tune chose for the image (None for the bundled default)."""
    if not job.choose_base or result.base_model is None:
        return job.base_model
    from ...engine.modelfile.header import DEFAULT_MODEL_PATH
    from ..paths import same_file

    chosen = Path(result.base_model)
    return None if same_file(chosen, DEFAULT_MODEL_PATH) else chosen


def build_finetune_job(
    image_layer: QgsMapLayer | None,
    label_layer: QgsMapLayer | None,
    class_field: str,
    mode: str,
    base_model: Path | None,
    steps: int | None,
    device: str,
    project: QgsProject,
    fallback_dir: Path | None = None,
    choose_base: bool = False,
    bands: list[int] | None = None,
    match_colours: bool = True,
    input_resolution_m: float | None = None,
) -> FinetuneJob:
    """The round on ``image_layer``'s raster (``choose_base`` and no base model: from the
    bundled model the engine chooses for the image; ``match_colours`` False: the image
    read as it is, and a new model that never matches an image's colours)."""
    if label_mode(mode) != "sparse":
        raise MapRefinerError(
            "Fine-tune learns from correction polygons: choose “sparse” labels "
            "(a fully labelled tile trains a new RNN: map-refiner train-rnn)."
        )
    source, image = raster_path(image_layer), image_path(image_layer)
    labels = label_source(label_layer, class_field, mode)
    folder = writable_folder([project_dir(project), labels.path.parent, fallback_dir])
    number = rounds_of(base_model, image.name) + 1  # as the rounds record it: the file read
    out = unique_path(folder / f"{source.stem}_round{number}.safetensors")
    return FinetuneJob(
        image,
        labels,
        out,
        base_model,
        steps,
        device,
        label_layer.id(),
        choose_base and base_model is None,
        list(bands) if bands else None,
        match_colours,
        input_resolution_m,
    )


def build_train_coarse_job(
    image_layer: QgsMapLayer | None,
    label_layer: QgsMapLayer | None,
    class_field: str,
    mode: str,
    model: ModelSummary | None,
    steps: int | None,
    device: str,
    project: QgsProject,
    fallback_dir: Path | None = None,
    input_resolution_m: float | None = None,
) -> TrainCoarseJob:
    """A new model with the current model's classes and resolution (``input_resolution_m``:
    the pixel size of an image without georeferencing)."""
    source, image = raster_path(image_layer), image_path(image_layer)
    labels = label_source(label_layer, class_field, mode)
    if model is None:
        raise MapRefinerError(
            "Choose a usable model first: the new model takes its classes and ground resolution."
        )
    from ...training.coarse import CoarseParams

    out = output_beside(source, "_coarse", ".safetensors", project_dir(project), fallback_dir)
    params = CoarseParams(
        image=image,
        labels=labels,
        out=out,
        class_names=model.class_names,
        ground_resolution_m=model.resolution_m,
        device=device,
        name=f"coarse CNN from {source.name}",
        input_resolution_m=input_resolution_m,
    )
    if steps:
        params.steps = steps
    return TrainCoarseJob(params, label_layer.id())


def run_finetune(job: FinetuneJob, progress: ProgressFn, is_cancelled: CancelFn) -> FinetuneResult:
    load_torch_library()
    from ...training.corrections.finetune import finetune
    from ...training.corrections.fit import FitParams

    params = FitParams(steps=job.steps) if job.steps else FitParams()
    return finetune(
        job.image,
        job.labels,
        job.out,
        base_model=job.base_model,
        params=params,
        device=job.device,
        progress=progress,
        is_cancelled=is_cancelled,
        choose_base=job.choose_base,
        bands=job.bands,
        match_colours=job.match_colours,
        input_resolution_m=job.input_resolution_m,
    )


def run_train_coarse(
    job: TrainCoarseJob, progress: ProgressFn, is_cancelled: CancelFn
) -> TrainResult:
    load_torch_library()
    from ...training.coarse import train_coarse

    return train_coarse(job.params, progress=progress, is_cancelled=is_cancelled)
