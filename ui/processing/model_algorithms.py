"""Processing algorithms that write a model file: ``map_refiner:train_coarse`` (a new coarse
CNN from reference polygons) and ``map_refiner:survey_model`` (one reading for a survey's
tiles, engine/modelfile/survey.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...engine.errors import MapRefinerError
from ..jobs.training_jobs import label_source
from ..sources import image_path
from .common import (
    MapRefinerAlgorithm,
    call_engine,
    model_parameters,
    parse_names,
    read_model_parameters,
    with_help,
)
from .training_params import MODEL_FILTER, label_parameters, read_label_parameters

HELP = (
    "Trains the coarse fully convolutional network of a new model on an image and "
    "reference polygons (the paper uses plentiful, imprecise OpenStreetMap polygons), at "
    "the given ground resolution. The new model's RNN is the identity (0 iterations by "
    "default); train or fine-tune the RNN afterwards."
)


class TrainCoarseAlgorithm(MapRefinerAlgorithm):
    NAME = "train_coarse"
    TITLE = "Train a coarse CNN from reference polygons"
    HELP = HELP

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        for param in label_parameters("Default 2000."):
            self.addParameter(param)
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "CLASS_NAMES",
                    "Class names (comma separated, background first)",
                    defaultValue="background, building",
                ),
                "The new model's classes, in index order.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    "RESOLUTION_M",
                    "Model ground resolution (m/pixel)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=1.0,
                    minValue=0.05,
                ),
                "The network works at this resolution; inputs are resampled to it.",
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        p = read_label_parameters(self, parameters, context)
        names_text = self.parameterAsString(parameters, "CLASS_NAMES", context)
        resolution = self.parameterAsDouble(parameters, "RESOLUTION_M", context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...training.coarse import CoarseParams, train_coarse

            names = parse_names(names_text)
            if not names or len(names) < 2:
                raise MapRefinerError("Give at least two class names, e.g. background, building.")
            image = image_path(p["image"])
            params = CoarseParams(
                image=image,
                labels=label_source(p["labels"], p["field"], p["mode"], p["value_map"]),
                out=Path(p["out"]),
                class_names=names,
                ground_resolution_m=resolution,
                device=p["device"],
                overwrite=True,
                name=f"coarse CNN from {image.name}",
            )
            if p["steps"]:
                params.steps = p["steps"]
            return train_coarse(params, progress=progress, is_cancelled=is_cancelled)

        result = call_engine(feedback, job)
        feedback.pushInfo(
            f"{result.steps} steps, final loss {result.final_loss:.4f}, "
            f"{result.seconds:.0f} s on {result.device}"
        )
        return {"OUTPUT": str(result.model)}


SURVEY_HELP = (
    "Makes one model file that reads every tile of a survey alike. Without it, each tile "
    "refined with the bundled models is judged on its own (which model, and whether its "
    "colours are matched to the training imagery), and neighbouring tiles of one "
    "orthophoto can be read two ways, with a seam between them. This judges once over all "
    "the chosen images and fixes the result in the new model: refine (and fine-tune) every "
    "tile with it, e.g. Refine classification map in batch mode with this model file."
)


class SurveyModelAlgorithm(MapRefinerAlgorithm):
    NAME = "survey_model"
    TITLE = "Survey model: read every tile alike"
    HELP = SURVEY_HELP

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS", "The survey's images (tiles)", QgsProcessing.SourceType.TypeRaster
            )
        )
        for param in model_parameters(
            "Model (empty: a bundled model)",
            "The model whose reading is fixed; empty: the bundled model chosen below (by "
            "default the one the images together choose).",
        ):
            self.addParameter(param)
        self.addParameter(
            with_help(
                QgsProcessingParameterBoolean(
                    "MATCH_COLOURS",
                    "Match the colours of imagery unlike the model's training imagery",
                    defaultValue=True,
                ),
                "Where the images together look unlike the model's training imagery, every "
                "one is read with the same stretch onto its colours. Untick to read every "
                "image as it is.",
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT", "Survey model", MODEL_FILTER)
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layers = self.parameterAsLayerList(parameters, "INPUTS", context)
        choice = read_model_parameters(self, parameters, context)
        match_colours = self.parameterAsBoolean(parameters, "MATCH_COLOURS", context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...engine import vocabulary as vocab
            from ...engine.modelfile.header import DEFAULT_MODEL_PATH
            from ...engine.modelfile.survey import survey_model

            if not layers:
                raise MapRefinerError("Choose the survey's images (one raster layer or more).")
            images = [image_path(layer) for layer in layers]  # a clear error for a bad one
            return survey_model(
                images,
                Path(out),
                model=None if choice.for_image else Path(choice.path or DEFAULT_MODEL_PATH),
                bands=vocab.parse_bands(choice.bands),
                match_colours=match_colours,
                overwrite=True,
                progress=progress,
                is_cancelled=is_cancelled,
            )

        reading = call_engine(feedback, job)
        for line in reading.describe().splitlines():
            feedback.pushInfo(line)
        return {"OUTPUT": str(reading.path)}
