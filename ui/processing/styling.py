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
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    styler = ClassMapStyler(names, colours, renderer)
    _ALIVE[:] = _ALIVE[-7:] + [styler]
    details.setPostProcessor(styler)


class RankedStyler(QgsProcessingLayerPostProcessorInterface):
    """Ranked polygons (the list of a round's largest changes) as the dock draws its list:
    dashed outlines labelled by rank."""

    def postProcessLayer(
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> None:
        from ..iterations.uncertainty_layers import style_as_ranked

        if isinstance(layer, QgsVectorLayer):
            style_as_ranked(layer)
            layer.triggerRepaint()


def ranked_on_load(context: QgsProcessingContext, path: str, name: str) -> None:
    """The ranked-polygons layer Processing loads from ``path``, named ``name``."""
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    styler = RankedStyler()
    _ALIVE[:] = _ALIVE[-7:] + [styler]
    details.setPostProcessor(styler)
