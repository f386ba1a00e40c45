"""Processing algorithm ``map_refiner:changes``: where a newer class map of an image
differs from an older one (engine/scoring/changes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..layers import changes_layer_name, changes_renderer
from ..sources import layer_file
from .common import MapRefinerAlgorithm, call_engine, with_help
from .styling import style_on_load

HELP = (
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
    HELP = HELP
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
