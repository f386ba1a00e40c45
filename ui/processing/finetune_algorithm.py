"""Processing algorithm ``map_refiner:finetune``: the RNN fine-tuned on label polygons."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingParameterFile)

from ..sources import raster_path
from ..jobs.training_jobs import label_source
from .common import with_help
from .engine_call import call_engine
from .training_params import label_parameters, read_label_parameters

HELP = ("Fine-tunes the refinement RNN of a model on a few polygons drawn over an image "
        "(Maggiori et al. 2017 train it on a small, accurately labelled tile) and saves a new "
        "model file; the base model is only read. Only the window around the polygons is read.")


class FinetuneAlgorithm(QgsProcessingAlgorithm):
    def name(self) -> str:
        return "finetune"

    def displayName(self) -> str:  # noqa: N802
        return "Fine-tune the RNN on label polygons"

    def shortHelpString(self) -> str:  # noqa: N802
        return HELP

    def createInstance(self) -> "FinetuneAlgorithm":  # noqa: N802
        return FinetuneAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(with_help(QgsProcessingParameterFile(
            "MODEL", "Base model (empty: bundled default)", extension="safetensors",
            optional=True), "The model whose RNN is fine-tuned."))
        for param in label_parameters("Default 150."):
            self.addParameter(param)

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        p = read_label_parameters(self, parameters, context)
        model = self.parameterAsFile(parameters, "MODEL", context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...training.rnn import finetune

            extra = {"steps": p["steps"]} if p["steps"] else {}
            return finetune(raster_path(p["image"]), label_source(p["labels"], p["field"],
                                                                  p["mode"]),
                            Path(p["out"]), base_model=Path(model) if model else None,
                            device=p["device"], overwrite=True, progress=progress,
                            is_cancelled=is_cancelled, **extra)

        result = call_engine(feedback, job)
        feedback.pushInfo(f"{result.steps} steps, final loss {result.final_loss:.4f}, "
                          f"{result.seconds:.0f} s on {result.device}")
        return {"OUTPUT": str(result.model)}
