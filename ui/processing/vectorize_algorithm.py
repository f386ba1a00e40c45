"""Processing algorithm ``map_refiner:vectorize``: class map to polygons."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..sources import layer_file
from .common import MapRefinerAlgorithm, call_engine, parse_names, with_help

HELP = (
    "One polygon per connected region of a class in a Map Refiner class map, with "
    "fields class_id, class and area_m2, in the map's CRS. Writes a Shapefile (.shp) or "
    "a GeoPackage (.gpkg). No-data pixels (255) are skipped. The classes named under "
    "'Regularise' (e.g. building) get right angles and parallel edges where the outline "
    "is nearly so, instead of the plain simplification."
)


class VectorizeAlgorithm(MapRefinerAlgorithm):
    NAME = "vectorize"
    TITLE = "Class map to polygons"
    HELP = HELP
    INPUT, CLASSES, SIMPLIFY, MIN_AREA, OUTPUT, COUNT = (
        "INPUT",
        "CLASSES",
        "SIMPLIFY_M",
        "MIN_AREA_M2",
        "OUTPUT",
        "FEATURE_COUNT",
    )
    REGULARIZE, REGULARIZE_M = "REGULARIZE", "REGULARIZE_M"
    SHARED_BORDERS, MERGE_SMALL = "SHARED_BORDERS", "MERGE_SMALL_M2"
    EVERY_EDGE = "REGULARIZE_EVERY_EDGE"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.INPUT, "Class map"),
                "A refined class map (one band, 0..n-1 = classes).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.CLASSES,
                    "Only these classes (names or ids, comma separated)",
                    optional=True,
                ),
                "Empty: every class.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.SIMPLIFY,
                    "Simplify tolerance (m)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=0.0,
                    minValue=0.0,
                ),
                "0 keeps the pixel outlines.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterBoolean(
                    self.SHARED_BORDERS, "Simplify shared borders once", defaultValue=False
                ),
                "Each border simplified once for both its sides: neighbouring classes keep "
                "meeting with no gap or overlap (needs a tolerance; not with regularising).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.MERGE_SMALL,
                    "Merge regions smaller than (m²) into their neighbour",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=0.0,
                    minValue=0.0,
                ),
                "Before polygonising: a minimum area that leaves no hole. 0 merges nothing.",
            )
        )
        # 0, as `map-refiner vectorize --min-area`, not the dialog's 2 x 2 model pixels:
        # this algorithm takes any class map and no model, and a parameter's default is
        # fixed when the algorithm is built, so it cannot follow a model; scripts and
        # models get every polygon unless they ask.
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.MIN_AREA,
                    "Drop polygons smaller than (m²)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=0.0,
                    minValue=0.0,
                ),
                "0 keeps every polygon.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.REGULARIZE,
                    "Regularise these classes' outlines (names or ids, comma separated)",
                    optional=True,
                ),
                "e.g. building: right angles and parallel edges where nearly so. Empty: none.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.REGULARIZE_M,
                    "Regularisation tolerance (m)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=0.0,
                    minValue=0.0,
                ),
                "How far a regularised outline may cut across the map's. 0: 1 m, or two "
                "pixels of a map coarser than 0.5 m.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterBoolean(
                    self.EVERY_EDGE, "Regularise every edge", defaultValue=False
                ),
                "Turn every edge onto the building's axes (all corners right angles), not "
                "only the edges that nearly are.",
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Polygons", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of polygons"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        classes = parse_names(self.parameterAsString(parameters, self.CLASSES, context))
        simplify = self.parameterAsDouble(parameters, self.SIMPLIFY, context)
        min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        regular = parse_names(self.parameterAsString(parameters, self.REGULARIZE, context))
        regular_m = self.parameterAsDouble(parameters, self.REGULARIZE_M, context)
        shared = self.parameterAsBoolean(parameters, self.SHARED_BORDERS, context)
        every_edge = self.parameterAsBoolean(parameters, self.EVERY_EDGE, context)
        merge_small = self.parameterAsDouble(parameters, self.MERGE_SMALL, context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...engine.vectors.vectorize import vectorize

            ids = [int(c) if c.isdigit() else c for c in classes] if classes else None
            regular_ids = [int(c) if c.isdigit() else c for c in regular] if regular else None
            return vectorize(
                layer_file(layer),
                out,
                classes=ids,
                simplify_m=simplify,
                min_area_m2=min_area,
                regularize=regular_ids,
                regularize_m=regular_m or None,
                regularize_every_edge=every_edge,
                shared_borders=shared,
                merge_small_m2=merge_small,
                overwrite=True,
                progress=progress,
                is_cancelled=is_cancelled,
            )

        result = call_engine(feedback, job, needs_torch=False)
        feedback.pushInfo(
            f"{result.feature_count} polygons ({result.removed_small} small ones dropped)"
        )
        return {self.OUTPUT: str(result.path), self.COUNT: result.feature_count}
