"""Result layers: the class map with a paletted renderer, probabilities in a group."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt import sip
from qgis.PyQt.QtGui import QColor

from ..engine.errors import MapRefinerError

Colour = tuple[int, int, int]


#: A custom layer property naming what a layer is to Map Refiner.
ROLE_KEY = "map_refiner/role"
CORRECTIONS_ROLE = "corrections"
#: Classes drawn transparent on a class map, so that the image shows through.
SEE_THROUGH = ("background",)


#: A custom layer property: the model file a class map was refined with ("" bundled).
MODEL_KEY = "map_refiner/model"
#: A custom layer property of a changes layer: the image (layer name) it shows changes of.
CHANGES_OF_KEY = "map_refiner/changes_of"
#: A custom layer property of a changes layer: the previous class map it was made against
#: (the file a change is turned back to: ui/turn_back.py).
PREVIOUS_MAP_KEY = "map_refiner/previous_map"
#: A model name longer than this is cut in layer names (the layer's title keeps it whole).
NAME_CHARS = 40
#: A correction round's model name (training/corrections/finetune.py).
ROUND_NAME = re.compile(r"^(?P<image>.*) — (?P<round>round \d+) \(\d+ corrections?\)$")


def short_model_name(source_name: str, model_name: str) -> str:
    """The model as a layer name says it: a round of this image is ``round 2``, a round of
    another ``other — round 1`` (the count of corrections is in the group's name and the
    title), any other name cut to NAME_CHARS."""
    match = ROUND_NAME.match(model_name)
    if match:
        image, number = match["image"], match["round"]
        return number if image == source_name else f"{image} — {number}"
    model_name = without_product_name(model_name)
    if len(model_name) <= NAME_CHARS:
        return model_name
    return model_name[: NAME_CHARS - 1].rstrip() + "…"


def refined_layer_name(source_name: str, iterations: int, model_name: str | None = None) -> str:
    """``<source> — refined (5 it.)`` with the bundled model; with another model its
    short name says which (``<source> — refined by round 2 (5 it.)``), so that the name
    reads whole in the Layers panel; refined_layer_title has it all."""
    by = f" by {short_model_name(source_name, model_name)}" if model_name else ""
    return f"{source_name} — refined{by} ({iterations} it.)"


def refined_layer_title(source_name: str, iterations: int, model_name: str | None = None) -> str:
    """The whole story, for the layer's title (the Layers panel's tooltip shows it):
    ``<source> refined by tanzania — round 2 (7 corrections), 5 RNN iterations``."""
    return (
        f"{source_name} refined by {model_name or 'the bundled model'}, {iterations} RNN iterations"
    )


def refine_group_name(source_name: str, model_name: str | None = None) -> str:
    """``<source> — Map Refiner`` with the bundled model; with another model its name,
    less the source's (``<source> — Map Refiner: round 2 (7 corrections)``), so that the
    groups of several refines of one image can be told apart when folded."""
    if not model_name:
        return f"{source_name} — Map Refiner"
    short = without_product_name(model_name.removeprefix(f"{source_name} — "))
    return f"{source_name} — Map Refiner: {short}"


def without_product_name(model_name: str) -> str:
    """A bundled model's name without the product's (``Map Refiner general (...)`` ->
    ``general (...)``): the group and the plugin already say Map Refiner."""
    return model_name.removeprefix("Map Refiner ") or model_name


def coarse_layer_name(source_name: str) -> str:
    return f"{source_name} — coarse (CNN)"


def paletted_renderer(
    layer: QgsRasterLayer, names: Sequence[str], colours: Sequence[Colour], band: int = 1
) -> QgsPalettedRasterRenderer:
    classes = [
        QgsPalettedRasterRenderer.Class(
            i, QColor(*colour, 0 if name.lower() in SEE_THROUGH else 255), name
        )
        for i, (name, colour) in enumerate(zip(names, colours))
    ]
    return QgsPalettedRasterRenderer(layer.dataProvider(), band, classes)


def class_renderer(
    field: str, names: Sequence[str], colours: Sequence[Colour], fill_alpha: int = 255
) -> QgsCategorizedSymbolRenderer:
    """Polygons coloured by class name, as in the class map's legend."""
    categories = []
    for name, (r, g, b) in zip(names, colours):
        symbol = QgsFillSymbol.createSimple(
            {
                "color": f"{r},{g},{b},{fill_alpha}",
                "outline_color": f"{r},{g},{b},255",
                "outline_width": "0.4",
            }
        )
        categories.append(QgsRendererCategory(name, symbol, name))
    return QgsCategorizedSymbolRenderer(field, categories)


#: How ``compare``'s flags are drawn: what needs a look stands out, "kept" recedes.
FLAG_COLOURS: dict[str, Colour] = {
    "kept": (160, 160, 160),
    "moved": (255, 140, 0),
    "reshaped": (230, 200, 0),
    "not seen": (220, 30, 30),
    "new": (30, 110, 255),
}


def flags_renderer() -> QgsCategorizedSymbolRenderer:
    """``compare``'s flags by status, see-through fills with solid outlines."""
    return class_renderer("status", list(FLAG_COLOURS), list(FLAG_COLOURS.values()), 90)


def probability_renderer(
    layer: QgsRasterLayer, band: int, colour: Colour
) -> QgsSingleBandPseudoColorRenderer:
    """0 → transparent, 1 → the class colour."""
    return unit_ramp_renderer(
        layer, band, [(0.0, QColor(*colour, 0), "0"), (1.0, QColor(*colour, 255), "1")]
    )


def unit_ramp_renderer(
    layer: QgsRasterLayer, band: int, stops: list[tuple[float, QColor, str]]
) -> QgsSingleBandPseudoColorRenderer:
    """A band of values in [0, 1] drawn with an interpolated ramp through ``stops``."""
    ramp = QgsColorRampShader(0.0, 1.0)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList(
        [QgsColorRampShader.ColorRampItem(v, c, label) for v, c, label in stops]
    )
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    return renderer


def open_raster_layer(path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    if not layer.isValid():
        raise MapRefinerError(f"QGIS cannot open the result {path}; see the log for details.")
    return layer


def class_map_layer(
    path: Path, name: str, names: Sequence[str], colours: Sequence[Colour]
) -> QgsRasterLayer:
    layer = open_raster_layer(path, name)
    layer.setRenderer(paletted_renderer(layer, names, colours))
    return layer


def changes_layer_name(source_name: str, previous_label: str) -> str:
    """``<source> — changes since round 1``: what a refine with another model changed."""
    return f"{source_name} — changes since {previous_label}"


def changes_layer(
    path: Path, name: str, names: Sequence[str], colours: Sequence[Colour]
) -> QgsRasterLayer:
    """The changes raster (engine/scoring/changes.py): each "became <class>" value in its
    colour, unchanged pixels (0, the nodata value) transparent."""
    layer = open_raster_layer(path, name)
    layer.setRenderer(changes_renderer(layer, names, colours))
    return layer


def changes_renderer(
    layer: QgsRasterLayer, names: Sequence[str], colours: Sequence[Colour]
) -> QgsPalettedRasterRenderer:
    """Each "became <class>" value of a changes raster in its colour (engine/scoring/
    changes.change_legend); 0, unchanged, is not drawn."""
    from ..engine.scoring.changes import change_legend

    labels, rgba = change_legend(names, colours)
    classes = [
        QgsPalettedRasterRenderer.Class(value, QColor(*rgba[value]), labels[value])
        for value in range(1, len(labels))
    ]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def probability_layers(
    path: Path, source_name: str, names: Sequence[str], colours: Sequence[Colour]
) -> list[QgsRasterLayer]:
    layers = []
    for band, (name, colour) in enumerate(zip(names, colours), start=1):
        layer = open_raster_layer(path, f"{source_name} — P({name})")
        layer.setRenderer(probability_renderer(layer, band, colour))
        layers.append(layer)
    return layers


def hide_layers(project: QgsProject, key: str, value: str) -> None:
    """Untick every layer whose custom property ``key`` is ``value``."""
    for node in project.layerTreeRoot().findLayers():
        layer = node.layer()
        if layer is not None and layer.customProperty(key) == value:
            node.setItemVisibilityChecked(False)


def show_parent_changes(project: QgsProject, parent: Path | None) -> None:
    """After Undo round: the newest changes layer of a map refined with the round's parent
    (unticked when the round's map came) is ticked again."""
    model = str(parent or "")
    nodes = [
        node
        for node in project.layerTreeRoot().findLayers()
        if node.layer() is not None
        and node.layer().customProperty(CHANGES_OF_KEY) is not None
        and node.layer().customProperty(MODEL_KEY) == model
    ]
    if nodes:  # the tree lists newer groups first
        nodes[0].setItemVisibilityChecked(True)


def keep_corrections_on_top(project: QgsProject) -> None:
    """Move every correction layer (``ROLE_KEY``) to the top of the layer tree, in its
    order, so that what the user draws is never hidden under a result."""
    root = project.layerTreeRoot()
    nodes = [
        n
        for n in root.findLayers()
        if n.layer() is not None and n.layer().customProperty(ROLE_KEY) == CORRECTIONS_ROLE
    ]
    for node in reversed(nodes):
        parent = node.parent()
        if parent is root and root.children().index(node) == nodes.index(node):
            continue
        clone = node.clone()
        root.insertChildNode(0, clone)
        parent.removeChildNode(node)


def add_in_group(
    project: QgsProject,
    group_name: str,
    layers: Sequence[QgsRasterLayer],
    visible: int = 1,
    parent: QgsLayerTreeGroup | None = None,
) -> QgsLayerTreeGroup:
    """A new group on top of the layer tree (or of ``parent``); only the first
    ``visible`` layers are checked."""
    group = (parent or project.layerTreeRoot()).insertGroup(0, group_name)
    nodes = []
    for i, layer in enumerate(layers):
        project.addMapLayer(layer, False)
        nodes.append(group.addLayer(layer))
        nodes[-1].setItemVisibilityChecked(i < visible)
    # The Layers panel shows a node's expanded state only when it changes after insertion:
    # unfold the group and the class legend, fold the probabilities.
    for node, expanded in [(group, True)] + [(n, i < visible) for i, n in enumerate(nodes)]:
        node.setExpanded(not expanded)
        node.setExpanded(expanded)
    return group


def group_of(project: QgsProject, layer_id: str | None) -> QgsLayerTreeGroup | None:
    """The group a layer sits in, or None (no such layer, or at the top of the tree)."""
    root = project.layerTreeRoot()
    node = root.findLayer(layer_id) if layer_id else None
    parent = node.parent() if node is not None else None
    return parent if isinstance(parent, QgsLayerTreeGroup) and parent is not root else None


def remove_layers(project: QgsProject, layer_ids: Sequence[str]) -> None:
    """The layers leave the project, and so does every group they leave empty."""
    root = project.layerTreeRoot()
    parents = [group_of(project, i) for i in layer_ids]
    project.removeMapLayers(list(layer_ids))
    for group in parents:  # several layers may share a group: it goes once
        while (
            group is not None
            and not sip.isdeleted(group)
            and group is not root
            and not group.children()
        ):
            up = group.parent()
            up.removeChildNode(group)
            group = up if isinstance(up, QgsLayerTreeGroup) else None
