"""Parameters shared by the fine-tune and train-coarse algorithms."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ...engine.vocabulary import DEVICES, LABEL_MODE_TEXT, LABEL_MODES, parse_value_map
from .common import advanced, with_help

MODEL_FILTER = "Map Refiner models (*.safetensors)"


def label_parameters(steps_help: str) -> list[QgsProcessingParameterDefinition]:
    return [
        with_help(
            QgsProcessingParameterRasterLayer("INPUT", "Image"),
            "The raster the labels were drawn on.",
        ),
        with_help(
            QgsProcessingParameterVectorLayer(
                "LABELS", "Label polygons", [QgsProcessing.SourceType.TypeVectorPolygon]
            ),
            "A polygon layer saved in a file (GeoPackage, Shapefile …).",
        ),
        with_help(
            QgsProcessingParameterField(
                "CLASS_FIELD", "Class field", parentLayerParameterName="LABELS", optional=True
            ),
            "Class names or indices; empty: every polygon is class 1 (refused where another "
            "field names the model's other classes).",
        ),
        advanced(
            with_help(
                QgsProcessingParameterString(
                    "VALUE_MAP", "Class field's values (value:class, …)", optional=True
                ),
                "The class field's values as class indices, every value to read listed, e.g. "
                "Gebaeude:1,Hintergrund:0 for a field in another language; empty: the field "
                "holds the model's class names or indices.",
            )
        ),
        with_help(
            QgsProcessingParameterEnum(
                "MODE",
                "Labels are",
                options=[LABEL_MODE_TEXT[mode] for mode in LABEL_MODES],
                defaultValue=0,
            ),
            "Sparse: unlabelled pixels are ignored.",
        ),
        with_help(
            QgsProcessingParameterNumber(
                "STEPS",
                "Training steps (empty: default)",
                QgsProcessingParameterNumber.Type.Integer,
                optional=True,
                minValue=1,
            ),
            steps_help,
        ),
        with_help(
            QgsProcessingParameterEnum("DEVICE", "Device", options=list(DEVICES), defaultValue=0),
            "auto takes a CUDA GPU when torch can use one, else the CPU.",
        ),
        QgsProcessingParameterFileDestination("OUTPUT", "New model", MODEL_FILTER),
    ]


def read_label_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> dict[str, Any]:
    steps = parameters.get("STEPS")
    return {
        "image": alg.parameterAsRasterLayer(parameters, "INPUT", context),
        "labels": alg.parameterAsVectorLayer(parameters, "LABELS", context),
        "field": (alg.parameterAsFields(parameters, "CLASS_FIELD", context) or [""])[0],
        "value_map": parse_value_map(alg.parameterAsString(parameters, "VALUE_MAP", context)),
        "mode": LABEL_MODES[alg.parameterAsEnum(parameters, "MODE", context)],
        "steps": None if steps in (None, "") else alg.parameterAsInt(parameters, "STEPS", context),
        "device": DEVICES[alg.parameterAsEnum(parameters, "DEVICE", context)],
        "out": alg.parameterAsFileOutput(parameters, "OUTPUT", context),
    }
