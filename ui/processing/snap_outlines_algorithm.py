"""Processing algorithm ``map_refiner:snap_outlines``: correction polygons moved onto the
image's edges, stretch by stretch, as a new layer to look at and fine-tune on."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from ..sources import image_path, layer_file, layer_in_file
from .common import MapRefinerAlgorithm, call_engine, parse_names, with_help

HELP = (
    "Moves each object polygon of a correction layer onto the edges the image shows "
    "within 1.5 m of its outline, stretch by stretch: in where it was drawn past the "
    "object, out where it was drawn inside it. Stretches with no clear edge nearby, "
    "background polygons and the classes you keep stay as drawn; fields are kept and a "
    "'snapped' field says which outlines moved. The correction layer itself is not "
    "changed: look at the new layer, edit it if needed, and fine-tune on it. A "
    "fine-tune makes the same move on its own (its 'Learn the outlines moved onto the "
    "image's edges', on by default) while the refined map shows your polygons as drawn; "
    "this tool is for when you want the drawn layer itself on the edges "
    "(docs/results_corrections.md, Sessions 33 and 34)."
)


class SnapOutlinesAlgorithm(MapRefinerAlgorithm):
    NAME = "snap_outlines"
    TITLE = "Snap correction outlines to the image's edges"
    HELP = HELP
    INPUT, CORRECTIONS, FIELD, KEEP, OUTPUT = (
        "INPUT",
        "CORRECTIONS",
        "CLASS_FIELD",
        "KEEP",
        "OUTPUT",
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Image they were drawn on"))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.CORRECTIONS,
                "Correction polygons",
                [QgsProcessing.SourceType.TypeVectorPolygon],
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.FIELD,
                "Class field",
                defaultValue="class",
                parentLayerParameterName=self.CORRECTIONS,
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.KEEP, "Classes left as drawn", defaultValue="background"
                ),
                "Comma-separated class names whose polygons are not moved (a false object "
                "drawn as background need not end on an edge).",
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Snapped corrections", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        image = image_path(self.parameterAsRasterLayer(parameters, self.INPUT, context))
        corrections = self.parameterAsVectorLayer(parameters, self.CORRECTIONS, context)
        fields = self.parameterAsFields(parameters, self.FIELD, context)
        keep = parse_names(self.parameterAsString(parameters, self.KEEP, context)) or []
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...training.corrections.snap_outlines import snap_outlines

            return snap_outlines(
                image,
                layer_file(corrections),
                out,
                class_field=fields[0] if fields else "class",
                keep=keep,
                layer=layer_in_file(corrections),
                overwrite=True,
                progress=progress,
                is_cancelled=is_cancelled,
            )

        result = call_engine(feedback, job, needs_torch=False)
        feedback.pushInfo(result.message())
        if context.willLoadLayerOnCompletion(out):
            details = context.layerToLoadOnCompletionDetails(out)
            details.name = f"{corrections.name()} — snapped"
        return {self.OUTPUT: str(result.path)}
