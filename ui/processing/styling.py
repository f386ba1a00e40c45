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


class ClassMapStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(
        self,
        names: Sequence[str],
        colours: Sequence[tuple[int, int, int]],
        renderer: Callable = paletted_renderer,
    ) -> None:
        super().__init__()
        self.names = list(names)
        self.colours = list(colours)
        self.renderer = renderer  # (layer, names, colours) -> the layer's renderer

    def postProcessLayer(
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> None:
        if isinstance(layer, QgsRasterLayer):
            layer.setRenderer(self.renderer(layer, self.names, self.colours))
            layer.triggerRepaint()


def style_on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    names: Sequence[str],
    colours: Sequence[tuple[int, int, int]],
    renderer: Callable = paletted_renderer,
) -> None:
    """The layer Processing loads from ``path`` named ``name`` and drawn by ``renderer``
    (a class map's palette unless told otherwise)."""
    _on_load(context, path, name, ClassMapStyler(names, colours, renderer))


class VectorStyler(QgsProcessingLayerPostProcessorInterface):
    """A vector layer styled by ``style`` (which sets its renderer, its labels...)."""

    def __init__(self, style: Callable[[QgsVectorLayer], None]) -> None:
        super().__init__()
        self.style = style

    def postProcessLayer(
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> None:
        if isinstance(layer, QgsVectorLayer):
            self.style(layer)
            layer.triggerRepaint()


def vector_style_on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    style: Callable[[QgsVectorLayer], None],
) -> None:
    """The vector layer Processing loads from ``path`` named ``name`` and styled by
    ``style`` (compare's flags by status, the largest changes as the dock's list)."""
    _on_load(context, path, name, VectorStyler(style))


def _on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    styler: QgsProcessingLayerPostProcessorInterface,
) -> None:
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    _ALIVE[:] = _ALIVE[-7:] + [styler]
    details.setPostProcessor(styler)
