"""The Processing provider; registering it imports no torch."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..icons import plugin_icon
from .compare_algorithm import CompareAlgorithm
from .evaluate_algorithm import ChangesAlgorithm, EvaluateAlgorithm
from .finetune_algorithm import FinetuneAlgorithm
from .model_algorithms import SurveyModelAlgorithm, TrainCoarseAlgorithm
from .refine_algorithm import RefineAlgorithm
from .snap_outlines_algorithm import SnapOutlinesAlgorithm
from .vectorize_algorithm import VectorizeAlgorithm

ALGORITHMS = (
    RefineAlgorithm,
    VectorizeAlgorithm,
    EvaluateAlgorithm,
    CompareAlgorithm,
    ChangesAlgorithm,
    SnapOutlinesAlgorithm,
    FinetuneAlgorithm,
    TrainCoarseAlgorithm,
    SurveyModelAlgorithm,
)


class MapRefinerProvider(QgsProcessingProvider):
    def id(self) -> str:  # noqa: A003 - QGIS API
        return "map_refiner"

    def name(self) -> str:
        return "Map Refiner"

    def longName(self) -> str:  # noqa: N802
        return "Map Refiner (Maggiori et al. 2017 CNN + RNN refinement)"

    def icon(self) -> QIcon:
        return plugin_icon()

    def loadAlgorithms(self) -> None:  # noqa: N802
        for alg in ALGORITHMS:
            self.addAlgorithm(alg())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]
