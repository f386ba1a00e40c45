"""What the user draws stays visible: correction layers on top of every result, the
class map's background transparent, the uncertainty layer see-through, and a result
named after the model that made it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qgis.core import QgsRasterLayer

from map_refiner.ui.dialog.correction_layer import create_correction_layer
from map_refiner.ui.dialog.model_info import model_label
from map_refiner.ui.jobs.refine_job import RefineJob
from map_refiner.ui.layers import (
    keep_corrections_on_top,
    refine_group_name,
    refined_layer_name,
    refined_layer_title,
)


def _top_names(project) -> list[str]:  # noqa: ANN001
    return [n.name() for n in project.layerTreeRoot().children()]


def test_a_refine_result_lands_under_the_correction_layer(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from map_refiner.engine.refine.pipeline import RefineParams

    raster = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb", "gdal")
    qgis_new_project.addMapLayer(raster)
    corrections = create_correction_layer(
        raster, ["background", "building"], [(0, 0, 0), (200, 40, 40)], qgis_new_project, tmp_path
    )
    assert _top_names(qgis_new_project)[0] == corrections.name()
    for i, scores in enumerate((None, tmp_path / "s.tif")):  # a plain layer, then a group
        params = RefineParams(
            image=austin_rgb,
            out=tmp_path / f"r{i}.tif",
            model_path=tiny_model,
            iterations=1,
            device="cpu",
            scores=scores,
        )
        plugin.controller.start_refine(RefineJob(params, "austin_dev_rgb"))
        wait_for_tasks()
        names = _top_names(qgis_new_project)
        assert names[0] == "austin_dev_rgb — corrections", names
        assert names[1].startswith("austin_dev_rgb — "), names  # the new result, under it
    assert qgis_new_project.mapLayer(corrections.id()) is corrections  # moved, not removed
    assert corrections.isEditable()


def test_keep_corrections_on_top_keeps_their_order_and_nothing_else_moves(
    rgb_layer, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    names, colours = ["background", "building"], [(0, 0, 0), (200, 40, 40)]
    a = create_correction_layer(rgb_layer, names, colours, qgis_new_project, tmp_path)
    b = create_correction_layer(rgb_layer, names, colours, qgis_new_project, tmp_path)
    other = QgsRasterLayer(rgb_layer.source(), "other", "gdal")
    qgis_new_project.addMapLayer(other, False)
    qgis_new_project.layerTreeRoot().insertLayer(0, other)
    keep_corrections_on_top(qgis_new_project)
    ids = [n.layerId() for n in qgis_new_project.layerTreeRoot().findLayers()]
    assert ids[:2] == [b.id(), a.id()] and ids[2] == other.id()
    keep_corrections_on_top(qgis_new_project)  # already in place: unchanged
    assert [n.layerId() for n in qgis_new_project.layerTreeRoot().findLayers()] == ids


def test_the_class_map_shows_the_image_through_its_background(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from map_refiner.engine.refine.pipeline import RefineParams

    params = RefineParams(
        image=austin_rgb, out=tmp_path / "r.tif", model_path=tiny_model, iterations=1, device="cpu"
    )
    plugin.controller.start_refine(RefineJob(params, "austin_dev_rgb"))
    wait_for_tasks()
    layer = qgis_new_project.mapLayersByName("austin_dev_rgb — refined by tiny test model (1 it.)")[
        0
    ]
    alpha = {c.label: c.color.alpha() for c in layer.renderer().classes()}
    assert alpha == {"background": 0, "building": 255}


def test_result_names_say_which_model_made_them(tiny_model: Path) -> None:
    assert model_label(None) is None
    from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH

    assert model_label(DEFAULT_MODEL_PATH) is None  # the bundled file chosen explicitly
    assert model_label(tiny_model) == "tiny test model"
    assert refined_layer_name("img", 5) == "img — refined (5 it.)"
    # short enough to read whole in the Layers panel: a round of this image is its round,
    # of another image that image's round; the title (the panel's tooltip) says it all
    assert (
        refined_layer_name("img", 5, "img — round 2 (7 corrections)")
        == "img — refined by round 2 (5 it.)"
    )
    assert (
        refined_layer_name("img", 5, "other — round 12 (1 correction)")
        == "img — refined by other — round 12 (5 it.)"
    )
    assert refined_layer_title("img", 5, "img — round 2 (7 corrections)") == (
        "img refined by img — round 2 (7 corrections), 5 RNN iterations"
    )
    assert refined_layer_title("img", 5) == "img refined by the bundled model, 5 RNN iterations"
    long = "coarse CNN from a_very_long_orthophoto_name_2026.tif"
    cut = refined_layer_name("img", 5, long)
    assert cut == f"img — refined by {long[:39]}… (5 it.)"
    # each refine's group says which model, so folded groups can be told apart
    assert refine_group_name("img") == "img — Map Refiner"
    assert (
        refine_group_name("img", "img — round 2 (7 corrections)")
        == "img — Map Refiner: round 2 (7 corrections)"
    )
    assert refine_group_name("img", "other — round 1 (3 corrections)") == (
        "img — Map Refiner: other — round 1 (3 corrections)"
    )
    # a bundled model's name does not say Map Refiner twice
    general = "Map Refiner general (buildings, new sensors)"
    assert (
        refine_group_name("img", general) == "img — Map Refiner: general (buildings, new sensors)"
    )
    assert refined_layer_name("img", 5, general) == (
        "img — refined by general (buildings, new sensors) (5 it.)"
    )


def test_one_class_map_on_screen_until_the_slider_moves(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    """The slider's copy of the map showed over the refined layer, the same map twice."""
    from test_iteration_slider import refine_with_slider

    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 3
    )
    root = qgis_new_project.layerTreeRoot()
    node = root.findLayer(flow._layer("classes").id())
    refined = root.findLayer(flow.refined_layer_id)
    assert flow.dock.slider.value() == 3 and not node.isVisible()  # the refined layer shows it
    assert refined.isVisible()
    flow.dock.slider.setValue(1)
    assert node.isVisible()  # another iteration: the slider's layer alone
    assert not refined.isVisible()
    flow.dock.slider.setValue(3)
    assert not node.isVisible() and refined.isVisible()


def _class_maps_on_screen(project, flow) -> list[str]:  # noqa: ANN001
    """The visible layers in the refine's group that draw a class map."""
    ids = {flow.refined_layer_id, flow._layer("classes").id()}
    return [
        n.layerId()
        for n in project.layerTreeRoot().findLayers()
        if n.layerId() in ids and n.isVisible()
    ]


def _rendered_alpha(project, layer: QgsRasterLayer, image: QgsRasterLayer) -> np.ndarray:  # noqa: ANN001
    """The canvas's rasters but the image, drawn on the layer's own grid: each pixel's alpha."""
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    root = project.layerTreeRoot()
    layers = [
        n.layer()
        for n in root.findLayers()
        if n.isVisible() and n.layerId() != image.id() and isinstance(n.layer(), QgsRasterLayer)
    ]
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(layer.width(), layer.height()))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage().convertToFormat(job.renderedImage().Format.Format_ARGB32)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    argb = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return argb[:, : layer.width(), 3].copy()


def test_the_canvas_shows_only_the_slider_s_iteration(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    """Away from the refine's iteration the refined map was left visible under the
    slider's copy: both transparent around their buildings, the canvas drew both maps."""
    from osgeo import gdal
    from test_iteration_slider import refine_with_slider

    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 3
    )
    view = flow._layer("classes")
    ds = gdal.Open(view.source())
    maps = {t: ds.GetRasterBand(t + 1).ReadAsArray() for t in (0, 1, 3)}
    assert (maps[0] != maps[3]).any()  # iterations 0 and 3 differ, or the test shows nothing
    refined, view_id = flow.refined_layer_id, view.id()
    for t, drawn in ((0, view_id), (3, refined), (1, view_id), (3, refined)):
        flow.dock.slider.setValue(t)
        assert _class_maps_on_screen(qgis_new_project, flow) == [drawn], t
        on_screen = _rendered_alpha(qgis_new_project, view, rgb_layer) > 0
        np.testing.assert_array_equal(on_screen, maps[t] != 0, err_msg=f"iteration {t}")
    flow.dock.slider.setValue(0)
    flow.dock.keep_button.click()  # Keep adds iteration 0 as a map: still that map alone
    wait_for_tasks()
    assert qgis_new_project.mapLayersByName("scene — refined by tiny test model (0 it.)")
    assert _class_maps_on_screen(qgis_new_project, flow) == [view_id]
    np.testing.assert_array_equal(
        _rendered_alpha(qgis_new_project, view, rgb_layer) > 0, maps[0] != 0
    )


def test_the_refined_layer_comes_back_with_the_slider_s_copy_gone(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    """Never the refined layer hidden with no view in its place; a layer the user
    unticked stays unticked."""
    from test_iteration_slider import refine_with_slider

    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 2
    )
    root = qgis_new_project.layerTreeRoot()
    first = root.findLayer(flow.refined_layer_id)
    flow.dock.slider.setValue(0)
    assert not first.itemVisibilityChecked()
    flow = refine_with_slider(  # a new refine: the first map is shown again
        plugin, rgb_layer, tiny_model, tmp_path / "r2.tif", wait_until, wait_for_tasks, 2
    )
    assert first.itemVisibilityChecked()
    second = root.findLayer(flow.refined_layer_id)
    flow.dock.slider.setValue(0)
    assert not second.itemVisibilityChecked()
    qgis_new_project.removeMapLayer(flow._layer("classes").id())  # the copy removed by hand
    assert second.itemVisibilityChecked()

    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r3.tif", wait_until, wait_for_tasks, 2
    )
    third = root.findLayer(flow.refined_layer_id)
    third.setItemVisibilityChecked(False)  # the user hides the refined map
    flow.dock.slider.setValue(0)
    flow.dock.slider.setValue(2)
    assert not third.itemVisibilityChecked()  # and it stays hidden
    third.setItemVisibilityChecked(True)
    flow.dock.slider.setValue(1)
    assert not third.itemVisibilityChecked()
    flow.clear("gone")  # the dock emptied (Undo round): the refined map shows again
    assert third.itemVisibilityChecked()
    assert flow._layer("classes") is None


def test_the_iterations_view_sits_inside_the_refines_group(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    """One group per refine: the slider's layers are not a second group beside it."""
    from test_iteration_slider import refine_with_slider

    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 2
    )
    root = qgis_new_project.layerTreeRoot()
    view = root.findGroup("scene — iterations")
    refine = view.parent()
    assert refine is not root and refine.name() == "scene — Map Refiner: tiny test model"
    first, second = refine.children()[:2]
    assert first is view  # above the refined map, so another iteration shows over it
    assert "refined by tiny test model" in second.layer().name()
    tops = [n.name() for n in root.children()]
    assert (
        "scene — iterations" not in tops and tops.count("scene — Map Refiner: tiny test model") == 1
    )
    flow.recompute()  # other iterations: the new view goes to the same place
    wait_until(lambda: flow.task is None and flow.result is not None, 300)
    wait_for_tasks()
    view = root.findGroup("scene — iterations")
    assert (
        view.parent() is not root and view.parent().name() == "scene — Map Refiner: tiny test model"
    )
    assert [g.name() for g in root.findGroups(True)].count("scene — iterations") == 1


def test_the_layers_panel_tooltip_names_the_model_in_full(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """The panel shows the short name; hovering it shows the model's whole name and file."""
    from qgis.core import QgsLayerTreeModel
    from qgis.PyQt.QtCore import Qt

    from map_refiner.engine.modelfile.io import load_model, save_model
    from map_refiner.engine.refine.pipeline import RefineParams

    net, cfg = load_model(tiny_model)
    cfg.name = "austin_dev_rgb — round 3 (11 corrections)"
    tuned = save_model(net, cfg, tmp_path / "austin_dev_rgb_round3.safetensors")
    params = RefineParams(
        image=austin_rgb, out=tmp_path / "r.tif", model_path=tuned, iterations=1, device="cpu"
    )
    plugin.controller.start_refine(RefineJob(params, "austin_dev_rgb"))
    wait_for_tasks()
    (layer,) = qgis_new_project.mapLayersByName("austin_dev_rgb — refined by round 3 (1 it.)")
    model = QgsLayerTreeModel(qgis_new_project.layerTreeRoot())
    node = qgis_new_project.layerTreeRoot().findLayer(layer.id())
    tip = model.data(model.node2index(node), Qt.ItemDataRole.ToolTipRole)
    assert "austin_dev_rgb refined by austin_dev_rgb — round 3 (11 corrections)" in tip, tip
    assert "austin_dev_rgb_round3.safetensors" in tip, tip
