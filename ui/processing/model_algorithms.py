"""Processing algorithm ``map_refiner:train_coarse``: a new coarse CNN from reference polygons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...engine.errors import MapRefinerError
from ..jobs.training_jobs import label_source
from ..sources import raster_path
from .common import MapRefinerAlgorithm, call_engine, parse_names, with_help
from .training_params import label_parameters, read_label_parameters

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
            image = raster_path(p["image"])
            params = CoarseParams(
                image=image,
                labels=label_source(p["labels"], p["field"], p["mode"]),
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
