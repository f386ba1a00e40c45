"""Processing algorithm ``map_refiner:compare``: what the image contradicts in a vector
map (a change list a mapper reviews), styled by status when QGIS loads it."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from ..layers import flags_renderer
from ..sources import layer_file, layer_in_file
from .common import MapRefinerAlgorithm, call_engine, with_help
from .styling import vector_style_on_load

HELP = (
    "Compares a vector map you already have (OSM buildings, a cadastre, an older survey) "
    "with a refined class map of the same area, and writes a change list: each feature "
    "of the compared class is kept, moved (dx_m, dy_m, shift_m say where to), reshaped or "
    "not seen in the image; each refined object no feature touches is new. The layer is "
    "styled by status; filter it on the status field to review one kind of change."
)


class CompareAlgorithm(MapRefinerAlgorithm):
    NAME = "compare"
    TITLE = "Flag what the image contradicts in a vector map"
    HELP = HELP
    PRIOR, FIELD, REFINED, CLASS, MOVED, SEARCH, MIN_AREA, OUTPUT = (
        "PRIOR",
        "PRIOR_CLASS_FIELD",
        "REFINED",
        "CLASS",
        "MOVED_M",
        "SEARCH_M",
        "MIN_AREA_M2",
        "OUTPUT",
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.PRIOR, "Vector map you have", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterField(
                    self.FIELD,
                    "Its class field",
                    parentLayerParameterName=self.PRIOR,
                    optional=True,
                ),
                "Empty: every feature is of the compared class.",
            )
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFINED, "Refined class map"))
        self.addParameter(
            QgsProcessingParameterString(self.CLASS, "Compared class", defaultValue="building")
        )
        for key, label, default, helptext in (
            (self.MOVED, "Moved from (m)", 1.0, "A shift at least this large is a move."),
            (self.SEARCH, "Search distance (m)", 4.0, "How far a feature's object is looked for."),
            (self.MIN_AREA, "Smallest new object (m²)", 2.0, "Smaller specks are never new."),
        ):
            self.addParameter(
                with_help(
                    QgsProcessingParameterNumber(
                        key,
                        label,
                        QgsProcessingParameterNumber.Type.Double,
                        defaultValue=default,
                        minValue=0.0,
                        maxValue=1e4,
                    ),
                    helptext,
                )
            )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Flags", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        prior = self.parameterAsVectorLayer(parameters, self.PRIOR, context)
        fields = self.parameterAsFields(parameters, self.FIELD, context)
        refined = self.parameterAsRasterLayer(parameters, self.REFINED, context)
        class_name = self.parameterAsString(parameters, self.CLASS, context)
        moved = self.parameterAsDouble(parameters, self.MOVED, context)
        search = self.parameterAsDouble(parameters, self.SEARCH, context)
        min_area = self.parameterAsDouble(parameters, self.MIN_AREA, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...engine.vectors.compare import CompareParams, compare

            return compare(
                layer_file(prior),
                layer_file(refined),
                out,
                CompareParams(
                    class_name=class_name,
                    prior_class_field=fields[0] if fields else None,
                    prior_layer=layer_in_file(prior),
                    moved_m=moved,
                    search_m=search,
                    min_area_m2=min_area,
                ),
                overwrite=True,
                progress=progress,
                is_cancelled=is_cancelled,
            )

        result = call_engine(feedback, job, needs_torch=False)
        feedback.pushInfo(result.summary())
        vector_style_on_load(
            context,
            out,
            f"{prior.name()} — changes seen in {refined.name()}",
            lambda layer: layer.setRenderer(flags_renderer()),
        )
        return {self.OUTPUT: str(result.path)}
