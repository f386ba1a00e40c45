"""Styling a result layer that Processing loads into the project when it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..layers import paletted_renderer

# Processing keeps only a pointer to post-processors: keep them alive here.
_ALIVE: list[QgsProcessingLayerPostProcessorInterface] = []


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """A loaded layer of the kind ``kind`` styled by ``style`` (which sets its renderer,
    its labels...)."""

    def __init__(self, style: Callable[..., None], kind: type = QgsMapLayer) -> None:
        super().__init__()
        self.style = style
        self.kind = kind

    def postProcessLayer(
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> None:
        if isinstance(layer, self.kind):
            self.style(layer)
            layer.triggerRepaint()


def style_on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    names: Sequence[str],
    colours: Sequence[tuple[int, int, int]],
    renderer: Callable = paletted_renderer,
) -> None:
    """The raster layer Processing loads from ``path`` named ``name`` and drawn by
    ``renderer`` (a class map's palette unless told otherwise)."""

    def style(layer: QgsMapLayer) -> None:
        layer.setRenderer(renderer(layer, list(names), list(colours)))

    _on_load(context, path, name, LayerStyler(style, QgsRasterLayer))


def vector_style_on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    style: Callable[[QgsVectorLayer], None],
) -> None:
    """The vector layer Processing loads from ``path`` named ``name`` and styled by
    ``style`` (compare's flags by status, the largest changes as the dock's list)."""
    _on_load(context, path, name, LayerStyler(style, QgsVectorLayer))


def _on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    styler: LayerStyler,
) -> None:
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    _ALIVE[:] = _ALIVE[-7:] + [styler]
    details.setPostProcessor(styler)
