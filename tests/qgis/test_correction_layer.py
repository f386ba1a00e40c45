""" "New correction layer": a GeoPackage beside the project with a class drop-down."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsCategorizedSymbolRenderer, QgsWkbTypes

from map_refiner.ui.dialog.correction_layer import create_correction_layer


def test_layer_has_the_class_drop_down(rgb_layer, rgb_path, qgis_new_project) -> None:  # noqa: ANN001
    layer = create_correction_layer(
        rgb_layer, ["background", "building"], [(235, 235, 225), (200, 40, 40)], qgis_new_project
    )
    assert Path(layer.source().split("|")[0]) == rgb_path.parent / "scene_corrections.gpkg"
    assert layer.geometryType() == QgsWkbTypes.GeometryType.PolygonGeometry
    assert layer.crs() == rgb_layer.crs()
    assert layer.isEditable()
    assert qgis_new_project.mapLayer(layer.id()) is layer
    setup = layer.editorWidgetSetup(layer.fields().indexOf("class"))
    assert setup.type() == "ValueMap"
    assert setup.config() == {"map": [{"background": "background"}, {"building": "building"}]}
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert [c.value() for c in renderer.categories()] == ["background", "building"]


def test_never_overwrites_and_prefers_the_project_folder(
    rgb_layer, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    folder = tmp_path / "project"
    folder.mkdir()
    qgis_new_project.setFileName(str(folder / "p.qgz"))
    names, colours = ["a", "b"], [(1, 2, 3), (4, 5, 6)]
    first = create_correction_layer(rgb_layer, names, colours, qgis_new_project)
    second = create_correction_layer(rgb_layer, names, colours, qgis_new_project)
    assert first.source().startswith(str(folder / "scene_corrections.gpkg"))
    assert second.source().startswith(str(folder / "scene_corrections_2.gpkg"))


def test_action_selects_it_as_the_dialog_label_layer(
    plugin, rgb_layer, tiny_model, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    from map_refiner.ui.settings import DialogDefaults, save_defaults

    save_defaults(DialogDefaults(model_path=str(tiny_model)))
    qgis_iface.setActiveLayer(rgb_layer)
    plugin.actions[1].trigger()  # "New correction layer"
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    label_layer = plugin.controller.dialog.labels.layer()
    assert label_layer is not None and label_layer.name() == "scene — corrections"
    assert plugin.controller.dialog.labels.field() == "class"
    assert plugin.controller.dialog.labels.mode() == "sparse"  # a correction layer is sparse
    assert qgis_iface.activeLayer() is label_layer
    # the message says how to draw: the whole object, inside its edges
    # (docs/results_corrections.md, Session 31: outlines a metre over the edges cost most
    # of what a round teaches; Session 44: patches of objects taught next to nothing)
    said = " ".join(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success))
    assert "round the whole object, just inside its edges" in said, said


def test_snap_action_opens_processing_filled_with_the_layers_in_use(
    qgis_processing, plugin, rgb_layer, tiny_model, qgis_iface, qgis_new_project, monkeypatch
) -> None:  # noqa: ANN001
    """*Snap correction outlines…* opens Processing's dialog for map_refiner:snap_outlines
    with the raster and the correction layer in use (the new correction layer is active
    after *New correction layer*)."""
    import processing

    from map_refiner.ui.settings import DialogDefaults, save_defaults

    opened = []
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda *a: opened.append(a))
    save_defaults(DialogDefaults(model_path=str(tiny_model)))
    qgis_iface.setActiveLayer(rgb_layer)
    plugin.actions[1].trigger()  # "New correction layer": now the active layer
    corrections = qgis_iface.activeLayer()
    snap = [a for a in plugin.actions if a.text() == "Snap correction outlines…"][0]
    snap.trigger()
    assert opened == [
        (
            "map_refiner:snap_outlines",
            {"INPUT": rgb_layer.id(), "CORRECTIONS": corrections.id()},
        )
    ]
