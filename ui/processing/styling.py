"""Styling a result layer that Processing loads into the project when it finishes, and
placing it above the layer it was made from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..layers import paletted_renderer

# Processing keeps only a pointer to post-processors: keep them alive here.
_ALIVE: list[QgsProcessingLayerPostProcessorInterface] = []


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """A loaded layer of the kind ``kind`` styled by ``style`` (which sets its renderer,
    its labels...)."""

    def __init__(
        self, style: Callable[..., None], kind: type = QgsMapLayer, above: str = ""
    ) -> None:
        super().__init__()
        self.style = style
        self.kind = kind
        self.above = above  # the source of the layer it goes above ("": where it is put)

    def postProcessLayer(
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> None:
        if isinstance(layer, self.kind):
            self.style(layer)
            layer.triggerRepaint()
        if self.above:
            place_above(layer, self.above)


def results_group() -> str:
    """The group Processing's settings load results into ("" where none is set)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:  # Processing's Python plugin not loaded
        return ""
    return str(ProcessingConfig.getSetting(ProcessingConfig.RESULTS_GROUP_NAME) or "")


def place_above(layer: QgsMapLayer, source: str) -> None:
    """``layer``, just loaded, moved right above the project's layer read from ``source``
    (QGIS puts a result above the *selected* layer: a batch of tiles refined would leave
    each map under the other tiles' images). Left where it is when Processing's settings
    gather results in a group, or no layer of the project reads ``source``."""
    project = QgsProject.instance()
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    inputs = [
        other
        for other in project.mapLayers().values()
        if other.id() != layer.id() and other.source() == source
    ]
    target = root.findLayer(inputs[0].id()) if inputs else None
    if node is None or target is None or results_group():
        return
    parent = target.parent()
    parent.insertChildNode(parent.children().index(target), node.clone())
    node.parent().removeChildNode(node)


def style_on_load(
    context: QgsProcessingContext,
    path: str,
    name: str,
    names: Sequence[str],
    colours: Sequence[tuple[int, int, int]],
    renderer: Callable = paletted_renderer,
    above: str = "",
) -> None:
    """The raster layer Processing loads from ``path`` named ``name``, drawn by
    ``renderer`` (a class map's palette unless told otherwise) and placed right above the
    project's layer read from ``above`` (place_above; "": where Processing puts it)."""

    def style(layer: QgsMapLayer) -> None:
        layer.setRenderer(renderer(layer, list(names), list(colours)))

    _on_load(context, path, name, LayerStyler(style, QgsRasterLayer, above))


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
