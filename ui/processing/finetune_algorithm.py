"""Processing algorithm ``map_refiner:finetune``: the RNN fine-tuned on label polygons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
)

from ...engine import vocabulary as vocab
from ..jobs.training_jobs import label_source
from ..sources import image_path
from .common import (
    INPUT_RESOLUTION,
    MapRefinerAlgorithm,
    advanced,
    call_engine,
    input_resolution_parameter,
    model_parameters,
    optional_number,
    read_model_parameters,
    with_help,
)
from .training_params import label_parameters, read_label_parameters

#: What learns (engine.vocabulary.ADAPT_MODES, in that order), as the list shows it.
ADAPT_CHOICES = (
    ("rnn", "The RNN alone (the paper's fine-tune)"),
    ("head+rnn", "The RNN and the CNN's last layer (default: best on imagery new to the model)"),
    ("deep+rnn", "Also the CNN's third layer"),
    ("deeper+rnn", "Also the CNN's second and third layers"),
    ("norm+head+rnn", "The RNN, the CNN's last layer and the image's colours"),
)


def _switch(name: str, label: str, default: bool, text: str) -> QgsProcessingParameterBoolean:
    """An advanced yes/no parameter with its help."""
    return advanced(  # type: ignore[return-value]
        with_help(QgsProcessingParameterBoolean(name, label, defaultValue=default), text)
    )


HELP = (
    "Fine-tunes a model on a few correction polygons drawn over an image and saves a new "
    "model file (the base model is only read). A third of the polygons are held out: the "
    "fitted networks are adopted only when they get those more right than the base model, "
    "else the base networks are kept. The new model keeps every drawn polygon, so refining "
    "this image shows what was drawn. A fit that passed that check but changed much more of "
    "the map than was drawn is dropped too; its networks are then saved beside the new "
    "model as <name>_dropped_fit.safetensors (DROPPED_FIT), to refine with and judge. "
    "A base model fine-tuned on this image before (an earlier round) is fitted again from "
    "the model this image's first round started from, on every polygon of the layer (the "
    "layer is the whole set: a polygon deleted from it goes); when that fit is not "
    "adopted, the earlier round's networks are kept."
)


class FinetuneAlgorithm(MapRefinerAlgorithm):
    NAME = "finetune"
    TITLE = "Fine-tune on correction polygons"
    HELP = HELP

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        for param in model_parameters(
            "Base model (empty: bundled default)",
            "The model that is fine-tuned; empty: the bundled model chosen below.",
        ):
            self.addParameter(param)
        for param in label_parameters("Default: 60 on a CPU (150 on a GPU), then a refit."):
            self.addParameter(param)
        adapt = with_help(
            QgsProcessingParameterEnum(
                "ADAPT",
                "What learns",
                options=[label for _, label in ADAPT_CHOICES],
                defaultValue=1,
            ),
            "The default fits the RNN and the CNN's last layer. Deeper fits learn more from "
            "the same polygons on imagery the model already reads well and less on a sensor "
            "it never saw (docs/results_corrections.md, Session 29); learning the image's "
            "colours too did no better than the default (Session 30).",
        )
        self.addParameter(advanced(adapt))
        band = with_help(
            QgsProcessingParameterNumber(
                "EDGE_BAND",
                "Outlines drawn within (m)",
                type=QgsProcessingParameterNumber.Type.Double,
                defaultValue=vocab.EDGE_BAND_M,
                minValue=0.0,
                maxValue=vocab.MAX_EDGE_BAND_M,
            ),
            "How far your polygons' outlines may be off the objects' edges: the fit leaves "
            "that band inside each polygon out (the refined map still shows the polygons "
            "whole). 0 (default): every drawn pixel counts. A band gave rough outlines back "
            "most of their gain on imagery the model reads and cost on imagery new to it; "
            "drawing just inside the edges did better (docs/results_corrections.md, "
            "Session 31).",
        )
        self.addParameter(advanced(band))
        self.addParameter(
            _switch(
                "OUTLINE_EDGES",
                "Leave out what an outline overdrew past the image's edges",
                vocab.OUTLINE_EDGES,
                "Where a polygon's outline runs past an object's edge that the image shows "
                "clearly inside it, the fit leaves the overdrawn strip out (the refined map "
                "still shows the polygons whole); outlines on or inside the edges keep every "
                "pixel (docs/results_corrections.md, Session 32).",
            )
        )
        self.addParameter(
            _switch(
                "SNAP_OUTLINES",
                "Learn the outlines moved onto the image's edges",
                vocab.SNAP_OUTLINES,
                "The fit learns each object polygon with its outline moved onto the edges the "
                "image shows within 1.5 m, as 'Snap correction outlines' moves it (background "
                "polygons as drawn); the refined map still shows the polygons as drawn "
                "(docs/results_corrections.md, Session 34).",
            )
        )
        gate = with_help(
            QgsProcessingParameterNumber(
                "CHANGE_GATE",
                "Keep a change away from the polygons only where the fit is this sure",
                type=QgsProcessingParameterNumber.Type.Double,
                defaultValue=vocab.CHANGE_GATE,
                minValue=0.0,
                maxValue=0.999,
            ),
            "An adopted fit's map keeps a change from the starting model's map only where the "
            "fit gives the new class at least this probability; the model file then holds the "
            "starting model's networks too and its refines run both. 0: every change kept "
            "(docs/results_corrections.md, Session 38).",
        )
        self.addParameter(advanced(gate))
        self.addParameter(
            _switch(
                "CHANGES_TO_DRAWN",
                "With polygons all of one class, keep changes to that class only",
                vocab.CHANGES_TO_DRAWN,
                "With the gate, a round whose polygons are all of one class (only missed "
                "buildings, say) keeps changes to that class only: nothing drawn showed it "
                "where that class is wrong, so it takes none of it away elsewhere "
                "(docs/results_corrections.md, Session 39).",
            )
        )
        self.addParameter(
            _switch(
                "MATCH_COLOURS",
                "Match the colours of imagery unlike the model's training imagery",
                True,
                "The bundled models read an image that looks like none of their training "
                "imagery with each band stretched onto the training imagery's colours. "
                "Untick to fit on the image as it is: the new model then never matches an "
                "image's colours (as map-refiner finetune --no-colour-match; refine it with "
                "MATCH_COLOURS unticked too).",
            )
        )
        self.addParameter(input_resolution_parameter())
        self.addOutput(
            QgsProcessingOutputFile(
                "DROPPED_FIT", "Model with the fit the flip check dropped (empty: none)"
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        p = read_label_parameters(self, parameters, context)
        choice = read_model_parameters(self, parameters, context)
        adapt = self.parameterAsEnum(parameters, "ADAPT", context)
        band = self.parameterAsDouble(parameters, "EDGE_BAND", context)
        edges = self.parameterAsBoolean(parameters, "OUTLINE_EDGES", context)
        snap = self.parameterAsBoolean(parameters, "SNAP_OUTLINES", context)
        change_gate = self.parameterAsDouble(parameters, "CHANGE_GATE", context)
        to_drawn = self.parameterAsBoolean(parameters, "CHANGES_TO_DRAWN", context)
        match_colours = self.parameterAsBoolean(parameters, "MATCH_COLOURS", context)
        resolution = optional_number(self, parameters, INPUT_RESOLUTION, context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...training.corrections.finetune import finetune
            from ...training.corrections.fit import FitParams

            params = FitParams(
                adapt=ADAPT_CHOICES[adapt][0],
                steps=p["steps"] or None,
                edge_band_m=band,
                outline_edges=edges,
                snap_outlines=snap,
                change_gate=change_gate,
                change_to_drawn=to_drawn,
            )
            return finetune(
                image_path(p["image"]),
                label_source(p["labels"], p["field"], p["mode"], p["value_map"]),
                Path(p["out"]),
                base_model=Path(choice.path) if choice.path else None,
                params=params,
                device=p["device"],
                bands=vocab.parse_bands(choice.bands),  # a bad list: the engine's one-line error
                overwrite=True,
                progress=progress,
                is_cancelled=is_cancelled,
                choose_base=choice.for_image,
                match_colours=match_colours,
                input_resolution_m=resolution,
            )

        result = call_engine(feedback, job)
        feedback.pushInfo(result.message)
        feedback.pushInfo(f"{result.steps} steps, {result.seconds:.0f} s on {result.device}")
        dropped = str(result.dropped_fit) if result.dropped_fit is not None else ""
        return {"OUTPUT": str(result.model), "DROPPED_FIT": dropped}
