"""Map layers for the slider and "draw here next": the per-iteration class map, the
uncertainty, and the ranked regions as labelled rectangles."""

from __future__ import annotations

from collections.abc import Sequence

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFillSymbol,
    QgsGeometry,
    QgsPalLayerSettings,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QColor

from ..layers import unit_ramp_renderer

# Transparent where the model is sure, then yellow -> orange -> magenta.
UNCERTAINTY_RAMP = (
    (0.0, (255, 255, 178, 0)),
    (0.15, (254, 204, 92, 90)),
    (0.5, (253, 141, 60, 190)),
    (0.8, (240, 59, 32, 230)),
    (1.0, (189, 0, 130, 255)),
)
REGION_COLOUR = "0,200,255"


def uncertainty_renderer(layer: QgsRasterLayer, band: int) -> QgsSingleBandPseudoColorRenderer:
    return unit_ramp_renderer(layer, band, [(v, QColor(*c), f"{v:g}") for v, c in UNCERTAINTY_RAMP])


def regions_layer(crs: QgsCoordinateReferenceSystem, name: str) -> QgsVectorLayer:
    """A memory layer of rectangles with ``rank`` and ``score``, labelled by rank: the
    dock's list on the map (uncertain places, or a round's largest changes)."""
    layer = QgsVectorLayer("Polygon", name, "memory")
    layer.setCrs(crs)
    layer.dataProvider().addAttributes(
        [QgsField("rank", QVariant.Int), QgsField("score", QVariant.Double)]
    )
    layer.updateFields()
    style_as_ranked(layer)
    return layer


def style_as_ranked(layer: QgsVectorLayer) -> None:
    """Dashed cyan outlines labelled by their ``rank`` field: the dock's list on the map,
    and Processing's list of a round's largest changes."""
    layer.setRenderer(
        QgsSingleSymbolRenderer(
            QgsFillSymbol.createSimple(
                {
                    "color": "0,0,0,0",
                    "outline_color": REGION_COLOUR + ",255",
                    "outline_width": "0.7",
                    "outline_style": "dash",
                }
            )
        )
    )
    settings = QgsPalLayerSettings()
    settings.fieldName = "rank"
    settings.placement = QgsPalLayerSettings.Placement.OverPoint
    fmt = QgsTextFormat()
    fmt.setColor(QColor(0, 200, 255))
    fmt.setSize(11)
    fmt.buffer().setEnabled(True)
    settings.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


def set_regions(
    layer: QgsVectorLayer, ranked: Sequence[tuple[int, float]], rects: Sequence[QgsRectangle]
) -> list[QgsFeature]:
    """Replace the layer's rectangles with ``rects`` (in the layer's CRS), each with its
    (rank, score) from ``ranked`` (an uncertainty, or a change's area in m²)."""
    provider = layer.dataProvider()
    provider.truncate()
    features = []
    for (rank, score), rect in zip(ranked, rects):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(rect))
        feature.setAttributes([rank, round(score, 3)])
        features.append(feature)
    provider.addFeatures(features)
    layer.updateExtents()
    layer.triggerRepaint()
    return features
