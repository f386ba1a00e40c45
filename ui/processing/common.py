"""Small helpers shared by the algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterDefinition


def with_help(
    param: QgsProcessingParameterDefinition, help_text: str
) -> QgsProcessingParameterDefinition:
    param.setHelp(help_text)
    return param


def parse_names(text: str) -> list[str] | None:
    """``"background, building"`` -> ``["background", "building"]``; empty -> None."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


#: The bundled models Processing offers when no model file is given (BUNDLED).
BUNDLED_CHOICES = ("default", "general (drones, satellites, other sensors)")


def bundled_model_parameter() -> QgsProcessingParameterDefinition:
    from qgis.core import QgsProcessingParameterEnum

    return with_help(
        QgsProcessingParameterEnum(
            "BUNDLED",
            "Bundled model, when no model file is given",
            options=list(BUNDLED_CHOICES),
            defaultValue=0,
            optional=True,
        ),
        "default: best on aerial photos like the US orthophotos it learnt from; general: "
        "every layer retrained with turned, flipped, rescaled and recoloured patches, "
        "usually the better start on drone, satellite and other imagery "
        "(resources/models/GENERAL_MODEL_CARD.md). A model file overrides this.",
    )


def chosen_model(model_file: str, bundled: int) -> str:
    """The model file given, else the general model's file when chosen, else "" (the
    default, or the snap model with a map to start from)."""
    if model_file or bundled != 1:
        return model_file
    from ...engine.modelfile.header import GENERAL_MODEL_PATH

    return str(GENERAL_MODEL_PATH)
