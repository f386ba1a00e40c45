"""Processing algorithms that judge class maps: ``map_refiner:evaluate`` (a class map scored
against a reference) and ``map_refiner:changes`` (where a newer class map of an image
differs from an older one, engine/scoring/changes.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ...engine.scoring.turn_back import REVIEW_TOP
from ...engine.vocabulary import VALUE_MAP_EXAMPLE, parse_value_map
from ..iterations.uncertainty_layers import style_as_ranked
from ..layers import changes_layer_name, changes_renderer
from ..sources import layer_file
from .common import MapRefinerAlgorithm, call_engine, parse_names, with_help
from .styling import style_on_load, vector_style_on_load

HELP = (
    "Overall accuracy, per-class IoU and mean IoU of a class map against a reference "
    "raster, on the reference's grid (the prediction is warped onto it when they "
    "differ). Value maps turn raster values into class indices, e.g. "
    f"{VALUE_MAP_EXAMPLE} for a 0/255 building mask; without one, values are class indices."
)


class EvaluateAlgorithm(MapRefinerAlgorithm):
    NAME = "evaluate"
    TITLE = "Score a class map against a reference"
    HELP = HELP
    PREDICTION, REFERENCE, NAMES, REF_MAP, PRED_MAP, OUTPUT = (
        "PREDICTION",
        "REFERENCE",
        "CLASS_NAMES",
        "REFERENCE_VALUE_MAP",
        "PREDICTION_VALUE_MAP",
        "OUTPUT",
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.PREDICTION, "Class map"),
                "The map to score, e.g. a refined class map.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.REFERENCE, "Reference"),
                "Accurate labels as a raster.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.NAMES,
                    "Class names (comma separated, in index order)",
                    defaultValue="background, building",
                ),
                "One name per class index.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.REF_MAP, "Reference value map (value:class, …)", optional=True
                ),
                f"e.g. {VALUE_MAP_EXAMPLE}; unmapped values are not scored.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    self.PRED_MAP, "Class map value map (value:class, …)", optional=True
                ),
                "Usually empty: a Map Refiner class map already holds class indices.",
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT,
                "Scores (JSON)",
                "JSON files (*.json)",
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("OVERALL_ACCURACY", "Overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber("MEAN_IOU", "Mean IoU"))
        self.addOutput(QgsProcessingOutputString("TABLE", "Scores as text"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        prediction = self.parameterAsRasterLayer(parameters, self.PREDICTION, context)
        reference = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        names_text = self.parameterAsString(parameters, self.NAMES, context)
        ref_text = self.parameterAsString(parameters, self.REF_MAP, context)
        pred_text = self.parameterAsString(parameters, self.PRED_MAP, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)

        def job(_progress, _is_cancelled):  # noqa: ANN001, ANN202
            from ...engine.errors import MapRefinerError
            from ...engine.scoring.metrics import evaluate_rasters

            names = parse_names(names_text)
            if not names or len(names) < 2:
                raise MapRefinerError("Give at least two class names, e.g. background, building.")
            return evaluate_rasters(
                layer_file(prediction),
                layer_file(reference),
                names,
                reference_value_map=parse_value_map(ref_text),
                prediction_value_map=parse_value_map(pred_text),
            )

        scores = call_engine(feedback, job, needs_torch=False)
        table = scores.format_table()
        feedback.pushInfo(table)
        if out:
            with open(out, "w", encoding="utf-8") as f:
                json.dump(scores.to_dict(), f, indent=2)
        return {
            self.OUTPUT: out or None,
            "OVERALL_ACCURACY": scores.overall_accuracy,
            "MEAN_IOU": scores.mean_iou,
            "TABLE": table,
        }


CHANGES_HELP = (
    "Where a newer class map of an image differs from an older one: after a correction "
    "round, what the round changed in the map, including where you did not draw. The "
    "output holds 1 + the class a pixel became, 0 (no data, drawn transparent) where its "
    "class stayed; it lies on the newer map's grid (the older map is read onto it). The "
    "log says how much of the map changed and what each class gained and lost. Both maps "
    "must be class maps of the same classes (Map Refiner's refined maps name theirs). "
    "Optionally the largest changes as polygons, the largest first (the iterations dock's "
    "review list): rank, class (what each change was: select the wrong ones and paste them "
    "into a correction layer to turn them back), became, pixels, area_m2, cut."
)


class ChangesAlgorithm(MapRefinerAlgorithm):
    NAME = "changes"
    TITLE = "What changed between two class maps"
    HELP = CHANGES_HELP
    BEFORE, AFTER, OUTPUT = "BEFORE", "AFTER", "OUTPUT"
    LARGEST, LARGEST_COUNT = "LARGEST", "LARGEST_COUNT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.BEFORE, "Older class map"),
                "e.g. the map refined before a correction round.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.AFTER, "Newer class map"),
                "e.g. the map refined with the round's model; the output takes its grid.",
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Changes"))
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.LARGEST_COUNT,
                    "How many of the largest changes to list",
                    QgsProcessingParameterNumber.Type.Integer,
                    defaultValue=REVIEW_TOP,
                    minValue=1,
                    maxValue=1000,
                ),
                "Connected changes (one class to one other, 8-connected) of at least 16 pixels.",
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.LARGEST,
                "Largest changes",
                QgsProcessing.SourceType.TypeVectorPolygon,
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("CHANGED_SHARE", "Share of the map changed"))
        self.addOutput(QgsProcessingOutputString("SUMMARY", "What changed, as text"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        before = self.parameterAsRasterLayer(parameters, self.BEFORE, context)
        after = self.parameterAsRasterLayer(parameters, self.AFTER, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        largest = self.parameterAsOutputLayer(parameters, self.LARGEST, context) or None
        count = self.parameterAsInt(parameters, self.LARGEST_COUNT, context)
        listed: list[int] = []

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from osgeo import gdal

            from ...engine.scoring.changes import map_changes
            from ...engine.scoring.turn_back import largest_changes, write_changes_list

            share = 0.8 if largest else 1.0
            found = map_changes(
                layer_file(before),
                layer_file(after),
                Path(out),
                overwrite=True,  # Processing's file dialog asked already
                progress=lambda f: progress(share * f),
                is_cancelled=is_cancelled,
            )
            if largest and found.out is not None:
                changes = largest_changes(
                    found.out, layer_file(before), top=count, is_cancelled=is_cancelled
                )
                srs = gdal.Open(str(found.out)).GetProjection()  # the changes raster's
                write_changes_list(changes, srs, largest, [found.out], overwrite=True)
                listed.append(len(changes))
            return found

        found = call_engine(feedback, job, needs_torch=False)
        if listed:
            feedback.pushInfo(f"Listed the {listed[0]} largest changes in {largest}")
            name = f"{after.name()} — largest changes since {before.name()}"
            vector_style_on_load(context, largest, name, style_as_ranked)
        feedback.pushInfo(f"{after.name()} against {before.name()}: {found.summary()}")
        style_on_load(
            context,
            out,
            changes_layer_name(after.name(), before.name()),
            found.class_names,
            found.colours,
            changes_renderer,
        )
        return {
            self.OUTPUT: out,
            self.LARGEST: largest,
            "CHANGED_SHARE": found.changed_share,
            "SUMMARY": found.summary(),
        }
