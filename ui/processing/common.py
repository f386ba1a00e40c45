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
