"""Small helpers shared by the algorithms, and running an engine job from one
(``call_engine``): feedback as the two callbacks, MapRefinerError as
QgsProcessingException, details in the log; a bug (any other exception) as one line
too, its traceback in the crash log the command line uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
)

from ...cli_crash import summary, write_crash_log
from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ..installer.deps import check_dependencies
from ..jobs.torch_library import load_torch_library


class MapRefinerAlgorithm(QgsProcessingAlgorithm):
    """What every Map Refiner algorithm tells Processing about itself: its id (``NAME``),
    title (``TITLE``) and help (``HELP``), set by each subclass, and a fresh copy."""

    NAME = ""
    TITLE = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.TITLE

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def createInstance(self) -> MapRefinerAlgorithm:  # noqa: N802
        return type(self)()


def with_help(
    param: QgsProcessingParameterDefinition, help_text: str
) -> QgsProcessingParameterDefinition:
    param.setHelp(help_text)
    return param


def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """``param`` shown under the dialog's Advanced parameters."""
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return param


def parse_names(text: str) -> list[str] | None:
    """``"background, building"`` -> ``["background", "building"]``; empty -> None."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


#: What Processing's BUNDLED choice calls each bundled model (header.BUNDLED_MODELS'
#: names; a model missing here is offered under its own name).
BUNDLED_LABELS = {"general": "general (drones, satellites, other sensors)"}
#: BUNDLED's last option, after the bundled models (its default): the bundled model the
#: engine chooses for the image (engine/modelfile/bundled_choice.py).
CHOSEN_LABEL = "chosen for the image (default or general)"


def bundled_names() -> list[str]:
    """The bundled models' names in BUNDLED's order (the default first)."""
    from ...engine.modelfile.header import BUNDLED_MODELS

    return list(BUNDLED_MODELS)


def bands_parameter() -> QgsProcessingParameterDefinition:
    """The bands the model reads, in its order (advanced; empty: the model's own, or the
    bands the image names red, green and blue): vocab.parse_bands."""
    from qgis.core import QgsProcessingParameterString

    return advanced(
        with_help(
            QgsProcessingParameterString(
                "BANDS", "Bands to read, in the model's order (e.g. 3,2,1)", optional=True
            ),
            "1-based band numbers, comma-separated, in the order the model reads them (red, "
            "green, blue for the bundled models). Empty: the bands the image names red, green "
            "and blue, else 1,2,3. For an image stored blue-green-red without colour names: "
            "3,2,1; for a grey image: 1,1,1.",
        )
    )


def model_parameters(label: str, text: str) -> list[QgsProcessingParameterDefinition]:
    """MODEL (a .safetensors file, optional: ``label``, help ``text``), then BUNDLED (the
    bundled model when no file is given) and BANDS (advanced): how an algorithm names the
    model it reads (chosen_model, chooses_for_image)."""
    from qgis.core import QgsProcessingParameterFile

    model = QgsProcessingParameterFile("MODEL", label, extension="safetensors", optional=True)
    return [with_help(model, text), bundled_model_parameter(), bands_parameter()]


INPUT_RESOLUTION = "INPUT_RESOLUTION"


def input_resolution_parameter() -> QgsProcessingParameterDefinition:
    """INPUT_RESOLUTION (advanced, optional): the input's pixel size on the ground, for an
    image whose georeferencing does not give it (read_input_resolution)."""
    from qgis.core import QgsProcessingParameterNumber

    return advanced(
        with_help(
            QgsProcessingParameterNumber(
                INPUT_RESOLUTION,
                "Input pixel size on the ground, metres (empty: from its georeferencing)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0001,
                maxValue=100000.0,
            ),
            "For an image whose file has no georeferencing or no CRS (a plain drone photo): "
            "its pixel size on the ground, which the model needs; its maps lie on the "
            "image's pixels as QGIS shows it. Given for a georeferenced image, it replaces "
            "the size its georeferencing gives. As map-refiner --input-resolution.",
        )
    )


def optional_number(
    alg: QgsProcessingAlgorithm,
    parameters: dict,
    name: str,
    context: QgsProcessingContext,
    integer: bool = False,
) -> float | None:
    """An optional number parameter's value, None when it is left empty (Processing reads
    an empty one as 0)."""
    if parameters.get(name) is None:
        return None
    if integer:
        return alg.parameterAsInt(parameters, name, context)
    return alg.parameterAsDouble(parameters, name, context)


def bundled_model_parameter() -> QgsProcessingParameterDefinition:
    from qgis.core import QgsProcessingParameterEnum

    return with_help(
        QgsProcessingParameterEnum(
            "BUNDLED",
            "Bundled model, when no model file is given",
            options=[BUNDLED_LABELS.get(n, n) for n in bundled_names()] + [CHOSEN_LABEL],
            defaultValue=len(bundled_names()),
            optional=True,
        ),
        "default: best on aerial photos like the US orthophotos it learnt from; general: "
        "every layer retrained with turned, flipped, rescaled and recoloured patches, "
        "usually the better start on drone, satellite and other imagery "
        "(resources/models/GENERAL_MODEL_CARD.md); chosen for the image (the default "
        "choice): where the image's colours are like those of a scene the default model "
        "learnt from, the model that reads that scene's held-out half better, else the "
        "general model (always for pixels of 0.45 m or more, satellite-like), as the log "
        "says. A model file overrides this.",
    )


def chooses_for_image(model_file: str, bundled: int) -> bool:
    """Whether no model file is given and BUNDLED asks for the model chosen for the image
    (RefineParams.choose_model, finetune's choose_base)."""
    return not model_file and bundled == len(bundled_names())


def chosen_model(model_file: str, bundled: int) -> str:
    """The model file given, else the chosen bundled model's file, else "" (the default,
    the model the engine chooses for the image (chooses_for_image), or the snap model
    with a map to start from)."""
    names = bundled_names()
    if model_file or not (0 < bundled < len(names)):
        return model_file
    from ...engine.modelfile.header import BUNDLED_MODELS

    return str(BUNDLED_MODELS[names[bundled]])


@dataclass(frozen=True)
class ModelChoice:
    """What model_parameters' MODEL, BUNDLED and BANDS say, read as every algorithm that
    declares them reads them."""

    path: str  # the model file (chosen_model); "" for the engine's own choice
    for_image: bool  # the bundled model chosen for the image (chooses_for_image)
    bands: str  # as typed: parsed in the engine task (a bad list is its one-line error)


def read_model_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> ModelChoice:
    """model_parameters' values for ``alg``'s run."""
    model_file = alg.parameterAsFile(parameters, "MODEL", context)
    bundled = alg.parameterAsEnum(parameters, "BUNDLED", context)
    return ModelChoice(
        chosen_model(model_file, bundled),
        chooses_for_image(model_file, bundled),
        alg.parameterAsString(parameters, "BANDS", context),
    )


def call_engine(
    feedback: QgsProcessingFeedback,
    job: Callable[[ProgressFn, CancelFn], Any],
    needs_torch: bool = True,
) -> Any:
    """``job(progress, is_cancelled)`` with the engine's errors made Processing's.

    Vectorizing and scoring use GDAL and numpy only, so they run without torch.
    """
    try:
        if needs_torch:
            check_dependencies()
            load_torch_library()  # Processing runs algorithms in a task: off the GIL
        return job(lambda f: feedback.setProgress(100.0 * f), feedback.isCanceled)
    except MapRefinerError as exc:
        if exc.details:
            feedback.pushDebugInfo(exc.details)
        raise QgsProcessingException(exc.message) from exc
    except QgsProcessingException:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        raise QgsProcessingException(internal_error(exc)) from None


def internal_error(exc: BaseException) -> str:
    """The line Processing shows for a bug, after writing its traceback to a crash log."""
    try:
        where = f"the details are in {write_crash_log(exc, 'in QGIS Processing')}"
    except OSError as log_exc:
        where = f"no crash log could be written ({log_exc.strerror or log_exc})"
    return (
        f"Map Refiner hit an internal error ({summary(exc)}); {where}. "
        "Please report it with that file."
    )
