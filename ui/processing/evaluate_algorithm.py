"""Processing algorithms that judge class maps: ``map_refiner:evaluate`` (a class map scored
against a reference) and ``map_refiner:changes`` (where a newer class map of an image
differs from an older one, engine/scoring/changes.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ...engine.vocabulary import VALUE_MAP_EXAMPLE, parse_value_map
from ..layers import changes_layer_name, changes_renderer
from ..sources import layer_file
from .common import MapRefinerAlgorithm, call_engine, parse_names, with_help
from .styling import style_on_load

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
    "must be class maps of the same classes (Map Refiner's refined maps name theirs)."
)


class ChangesAlgorithm(MapRefinerAlgorithm):
    NAME = "changes"
    TITLE = "What changed between two class maps"
    HELP = CHANGES_HELP
    BEFORE, AFTER, OUTPUT = "BEFORE", "AFTER", "OUTPUT"

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

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...engine.scoring.changes import map_changes

            return map_changes(
                layer_file(before),
                layer_file(after),
                Path(out),
                overwrite=True,  # Processing's file dialog asked already
                progress=progress,
                is_cancelled=is_cancelled,
            )

        found = call_engine(feedback, job, needs_torch=False)
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
            "CHANGED_SHARE": found.changed_share,
            "SUMMARY": found.summary(),
        }
