"""The plugin's icons, from SVG files in resources/icons (no compiled Qt resources)."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def plugin_icon() -> QIcon:
    return QIcon(str(ICONS / "map_refiner.svg"))


def correction_layer_icon() -> QIcon:
    return QIcon(str(ICONS / "correction_layer.svg"))
