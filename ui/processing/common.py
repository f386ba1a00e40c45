"""Small helpers shared by the algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterDefinition

from ...engine.errors import MapRefinerError


def with_help(
    param: QgsProcessingParameterDefinition, help_text: str
) -> QgsProcessingParameterDefinition:
    param.setHelp(help_text)
    return param


def parse_names(text: str) -> list[str] | None:
    """``"background, building"`` -> ``["background", "building"]``; empty -> None."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


def parse_value_map(text: str) -> dict[str, int] | None:
    """``"0=0, 255=1"`` -> ``{"0": 0, "255": 1}`` (raster value -> class index)."""
    if not (text or "").strip():
        return None
    mapping: dict[str, int] = {}
    for item in text.split(","):
        value, sep, index = item.partition("=")
        if not sep or not value.strip() or not index.strip().isdigit():
            raise MapRefinerError(
                f"Cannot read {item.strip()!r} in the value map; write "
                "value=class pairs such as 0=0,255=1."
            )
        mapping[value.strip()] = int(index)
    return mapping
