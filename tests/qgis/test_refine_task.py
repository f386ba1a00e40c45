"""Refining through the plugin's task: styled layers on success, nothing on cancel."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsPalettedRasterRenderer, QgsSingleBandPseudoColorRenderer

from map_refiner.ui.jobs.refine_job import RefineJob

GROUP = "austin_dev_rgb — Map Refiner: tiny test model"  # a refine's group names its model


def _layer_children(group):  # noqa: ANN001, ANN202
    """The group's own layers (not those of its subgroups, such as the iterations view)."""
    from qgis.core import QgsLayerTree

    return [n for n in group.children() if QgsLayerTree.isLayer(n)]


def _job(
    image: Path,
    out: Path,
    model: Path,
    scores: bool = False,
    iterations: int = 2,
    name: str = "austin_dev_rgb",
) -> RefineJob:
    from map_refiner.engine.refine.pipeline import RefineParams

    return RefineJob(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            iterations=iterations,
            device="cpu",
            scores=out.with_name("scores.tif") if scores else None,
        ),
        name,
    )


def test_refine_adds_a_paletted_layer_with_class_names(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    out = tmp_path / "refined.tif"
    plugin.controller.start_refine(_job(austin_rgb, out, tiny_model))
    wait_for_tasks()

    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    layers = qgis_new_project.mapLayersByName("austin_dev_rgb — refined by tiny test model (2 it.)")
    assert len(layers) == 1 and out.exists()
    layer = layers[0]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [(c.value, c.label) for c in renderer.classes()] == [(0, "background"), (1, "building")]
    assert renderer.classes()[1].color.getRgb()[:3] == (200, 40, 40)
    assert layer.crs().authid() == "EPSG:26914"
    assert (layer.width(), layer.height()) == (500, 500)
    assert plugin.controller.tasks == []


def test_scores_come_as_a_group_of_probability_layers(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    plugin.controller.start_refine(_job(austin_rgb, tmp_path / "r.tif", tiny_model, scores=True))
    wait_for_tasks()
    group = qgis_new_project.layerTreeRoot().findGroup(GROUP)
    assert group is not None
    assert group.children()[0].name() == "austin_dev_rgb — iterations"  # the slider's view
    nodes = _layer_children(group)
    assert [node.layer().name() for node in nodes] == [
        "austin_dev_rgb — refined by tiny test model (2 it.)",
        "austin_dev_rgb — P(background)",
        "austin_dev_rgb — P(building)",
    ]
    assert [node.isVisible() for node in nodes] == [True, False, False]
    prob = nodes[2].layer()
    assert isinstance(prob.renderer(), QgsSingleBandPseudoColorRenderer)
    assert prob.renderer().band() == 2


def test_coarse_map_joins_the_group_unchecked(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from dataclasses import replace

    job = _job(austin_rgb, tmp_path / "r.tif", tiny_model)
    job.params = replace(job.params, coarse=tmp_path / "r_coarse.tif")
    plugin.controller.start_refine(job)
    wait_for_tasks()
    group = qgis_new_project.layerTreeRoot().findGroup(GROUP)
    assert group is not None
    nodes = _layer_children(group)
    assert [n.layer().name() for n in nodes] == [
        "austin_dev_rgb — refined by tiny test model (2 it.)",
        "austin_dev_rgb — coarse (CNN)",
    ]
    assert [n.isVisible() for n in nodes] == [True, False]
    coarse = nodes[1].layer()
    assert isinstance(coarse.renderer(), QgsPalettedRasterRenderer)
    assert coarse.source() == str(tmp_path / "r_coarse.tif")


def test_cancel_stops_the_job_and_leaves_no_output(
    plugin,
    austin_rgb,
    tiny_model,
    tmp_path,
    qgis_iface,
    qgis_new_project,
    wait_for_tasks,
    monkeypatch,
) -> None:  # noqa: ANN001
    import threading

    from map_refiner.ui import controller as controller_module

    job = _job(austin_rgb, tmp_path / "never.tif", tiny_model, scores=True)
    job.params.tile_size = 64  # several tiles, so the cancel lands mid-run
    real_run = controller_module.run_refine
    progress_seen = []
    started = threading.Event()  # the task exists before its job reports progress
    holder = {}

    # The job is wrapped before the task is queued: swapping task.job after
    # start_refine raced with QGIS starting the task at once (seen in CI: the real
    # job ran to the end before the swap).
    def cancelling_run(refine_job, progress, is_cancelled):  # noqa: ANN001, ANN202
        def progress_then_cancel(fraction: float) -> None:
            started.wait(30)
            progress_seen.append(fraction)
            progress(fraction)
            holder["task"].cancel()  # as the Cancel button does, after the first tile

        return real_run(refine_job, progress_then_cancel, is_cancelled)

    monkeypatch.setattr(controller_module, "run_refine", cancelling_run)
    holder["task"] = plugin.controller.start_refine(job)
    started.set()
    wait_for_tasks()

    assert len(progress_seen) == 1 and progress_seen[0] < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert qgis_new_project.mapLayers() == {}
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    assert any(
        "Cancelled" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)
    )


def test_engine_error_is_one_message_bar_line(
    plugin, austin_rgb, tmp_path, qgis_iface, wait_for_tasks
) -> None:  # noqa: ANN001
    bad_model = tmp_path / "broken.safetensors"
    bad_model.write_bytes(b"not a model")
    plugin.controller.start_refine(_job(austin_rgb, tmp_path / "o.tif", bad_model))
    wait_for_tasks()
    errors = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert len(errors) == 1 and "not a readable Map Refiner model" in errors[0]
    assert not (tmp_path / "o.tif").exists()


def test_export_to_shapefile_after_refine(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from qgis.core import QgsCategorizedSymbolRenderer, QgsRasterLayer

    from map_refiner.ui.jobs.vectorize_job import build_vectorize_job

    image_layer = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(image_layer)
    plugin.controller.start_refine(_job(austin_rgb, tmp_path / "refined.tif", tiny_model))
    wait_for_tasks()
    # the image itself: its latest refined map this session
    job = build_vectorize_job(image_layer, plugin.controller.refined, qgis_new_project, tmp_path)
    assert job.classmap.path == tmp_path / "refined.tif"
    assert job.classmap.names == ["background", "building"]
    # the refined layer: a class map, read from its paletted renderer
    refined_layer = qgis_new_project.mapLayersByName(
        "austin_dev_rgb — refined by tiny test model (2 it.)"
    )[0]
    from_layer = build_vectorize_job(refined_layer, {}, qgis_new_project, tmp_path)
    assert from_layer.classmap == job.classmap
    assert job.out == tmp_path / "refined_polygons.gpkg"

    plugin.controller.start_vectorize(job)
    wait_for_tasks()
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    polygons = qgis_new_project.mapLayersByName("austin_dev_rgb — polygons")[0]
    assert polygons.featureCount() > 0
    assert isinstance(polygons.renderer(), QgsCategorizedSymbolRenderer)
    assert [c.value() for c in polygons.renderer().categories()] == ["background", "building"]
    # which model made each polygon; no probabilities were kept, so no mean_prob
    assert {f["source"] for f in polygons.getFeatures()} == {"tiny test model: 2 RNN iterations"}
    assert polygons.fields().indexOf("mean_prob") == -1


def test_export_after_a_refine_with_probabilities_gives_their_mean(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from qgis.core import QgsRasterLayer

    from map_refiner.ui.jobs.vectorize_job import build_vectorize_job

    image_layer = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(image_layer)
    job = _job(austin_rgb, tmp_path / "refined.tif", tiny_model, scores=True)
    plugin.controller.start_refine(job)
    wait_for_tasks()
    export = build_vectorize_job(image_layer, plugin.controller.refined, qgis_new_project, tmp_path)
    assert export.classmap.scores == job.params.scores
    plugin.controller.start_vectorize(export)
    wait_for_tasks()
    polygons = qgis_new_project.mapLayersByName("austin_dev_rgb — polygons")[0]
    means = [f["mean_prob"] for f in polygons.getFeatures()]
    assert means and all(0.5 <= m <= 1.0 for m in means)  # each polygon's own, winning class


def test_export_leaves_out_background_and_slivers_unless_asked(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """It wrote one huge background polygon plus 0.09 m² slivers."""
    from qgis.core import QgsRasterLayer

    from map_refiner.ui.jobs.vectorize_job import DEFAULT_MIN_AREA_M2, build_vectorize_job

    image_layer = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(image_layer)
    plugin.controller.start_refine(_job(austin_rgb, tmp_path / "refined.tif", tiny_model))
    wait_for_tasks()
    counts = {}
    for name, kw in (
        ("default", {}),
        ("all", {"include_background": True, "min_area_m2": 0.0}),
    ):
        job = build_vectorize_job(
            image_layer, plugin.controller.refined, qgis_new_project, tmp_path, **kw
        )
        job.out = tmp_path / f"{name}.shp"
        plugin.controller.start_vectorize(job)
        wait_for_tasks()
        layer = qgis_new_project.mapLayersByName("austin_dev_rgb — polygons")[-1]
        feats = list(layer.getFeatures())
        counts[name] = len(feats)
        classes = {f["class"] for f in feats}
        smallest = min(f["area_m2"] for f in feats)
        if name == "default":
            assert classes == {"building"} and smallest >= DEFAULT_MIN_AREA_M2
        else:
            assert classes == {"background", "building"} and smallest < 0.1
        qgis_new_project.removeMapLayer(layer.id())
    assert counts["default"] < counts["all"]


def test_the_dialog_export_options_reach_the_job(plugin, qgis_new_project) -> None:  # noqa: ANN001
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    assert not dialog.export_background_check.isChecked()
    assert dialog.min_area_spin.value() == 1.44  # 2 x 2 pixels of the bundled 0.6 m model


def test_a_refine_that_chose_the_general_model_is_named_and_recomputed_as_it(
    plugin, austin_rgb, tmp_path, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """The dialog's first choice leaves the bundled model to the image: Austin's tile gets
    the default model, the same tile under a warm colour cast the general one; the
    message says which and why, and the job the controller keeps (Keep iteration,
    Recompute, the rounds) names the model the refine used."""
    from dataclasses import replace

    import numpy as np
    from osgeo import gdal

    from map_refiner.engine.modelfile.header import GENERAL_MODEL_PATH

    src = gdal.Open(str(austin_rgb))
    arr = src.ReadAsArray().astype(np.float32) * np.array([1.25, 1.0, 0.75])[:, None, None]
    warm = tmp_path / "warm.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(warm), src.RasterXSize, src.RasterYSize, 3)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    ds.WriteArray(np.clip(arr, 0, 255).astype(np.uint8))
    ds = None
    for image, general in ((austin_rgb, False), (warm, True)):
        job = _job(image, tmp_path / f"{image.stem}_out.tif", None, iterations=1)
        plugin.controller.start_refine(replace(job, params=replace(job.params, choose_model=True)))
        wait_for_tasks()
        kept = plugin.controller.last_refine
        assert kept is not None and not kept.params.choose_model
        assert kept.params.model_path == (GENERAL_MODEL_PATH if general else None)
        assert kept.slider is not None and kept.slider.model_path == kept.params.model_path
        said = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
        assert ("the bundled general model" if general else "the bundled default model") in said
    named = [layer.name() for layer in qgis_new_project.mapLayers().values()]
    assert any(n.startswith("austin_dev_rgb — refined (") for n in named)  # the default
    by_general = [n for n in named if n.startswith("austin_dev_rgb — refined by")]
    assert by_general and all("general" in n.lower() for n in by_general)


def test_a_refine_with_another_model_shows_what_it_changed(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """After a refine with another model (a correction round's, or the other bundled one)
    the new group has a changes layer on top, checked, each "became <class>" in a colour
    that shows on the class map, and the message says how much changed; a refine with the
    same model again, or Keep iteration, adds none."""
    from osgeo import gdal

    from map_refiner.engine.scoring.changes import CHANGE_COLOURS, CHANGE_PALE

    controller = plugin.controller
    first = tmp_path / "first.tif"
    controller.start_refine(_job(austin_rgb, first, tiny_model, iterations=1))
    wait_for_tasks()
    second = tmp_path / "second.tif"
    controller.start_refine(_job(austin_rgb, second, None, iterations=1))  # the bundled one
    wait_for_tasks()
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    said = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
    assert "against the map of tiny test model, " in said and "% of the map changed" in said
    name = "austin_dev_rgb — changes since tiny test model"
    (layer,) = qgis_new_project.mapLayersByName(name)
    changes = tmp_path / "second_changes.tif"
    assert layer.source() == str(changes)
    old = gdal.Open(str(first)).ReadAsArray()
    new = gdal.Open(str(second)).ReadAsArray()
    written = gdal.Open(str(changes)).ReadAsArray()
    assert ((written > 0) == (old != new)).all() and (
        written[old != new] == new[old != new] + 1
    ).all()
    classes = layer.renderer().classes()
    assert [(c.value, c.label) for c in classes] == [
        (1, "became background"),
        (2, "became building"),
    ]
    assert classes[0].color.getRgb()[:3] == CHANGE_PALE
    assert classes[1].color.getRgb()[:3] == CHANGE_COLOURS[0]
    assert "% of the map changed" in layer.title()
    group = qgis_new_project.layerTreeRoot().findGroup("austin_dev_rgb — Map Refiner")
    nodes = _layer_children(group)
    assert [n.layer().name() for n in nodes[:2]] == [name, "austin_dev_rgb — refined (1 it.)"]
    assert nodes[0].isVisible() and nodes[1].isVisible()

    assert gdal.Open(str(changes)).GetRasterBand(1).GetDescription() == (
        "second.tif against first.tif"
    )
    controller.start_refine(_job(austin_rgb, tmp_path / "third.tif", None, iterations=1))
    wait_for_tasks()
    assert len(qgis_new_project.mapLayersByName(name)) == 1  # same model: nothing new
    assert not (tmp_path / "third_changes.tif").exists()
    said = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)[-1]
    assert "changed" not in said
    # back to the first model: a newer changes layer, the older one unticked so that its
    # colours do not show through where the newest map is background
    controller.start_refine(_job(austin_rgb, tmp_path / "fourth.tif", tiny_model, iterations=1))
    wait_for_tasks()
    (newer,) = qgis_new_project.mapLayersByName("austin_dev_rgb — changes since the bundled model")
    root = qgis_new_project.layerTreeRoot()
    assert root.findLayer(newer.id()).isVisible()
    assert not root.findLayer(layer.id()).itemVisibilityChecked()


def test_undo_round_ticks_the_parents_changes_again(
    plugin, austin_rgb, tiny_model, tmp_path, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """Maps by three models in turn (the last two as a round and its parent): the newest
    changes layer is the one ticked; undoing the round removes its changes layer and
    ticks the parent's again."""
    import torch

    from map_refiner.engine.modelfile.config import ModelConfig, make_classes
    from map_refiner.engine.modelfile.io import build_model, save_model
    from map_refiner.ui.rounds import Round

    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        cfg = ModelConfig(
            classes=make_classes(["background", "building"]),
            ground_resolution_m=0.6,
            default_iterations=1,
            name=f"model {seed}",
        )
        models.append(save_model(build_model(cfg), cfg, tmp_path / f"m{seed}.safetensors"))
    controller = plugin.controller
    for i, model in enumerate([tiny_model, *models]):
        controller.start_refine(_job(austin_rgb, tmp_path / f"map{i}.tif", model, iterations=1))
        wait_for_tasks()
    parents, rounds = (
        qgis_new_project.mapLayersByName(f"austin_dev_rgb — changes since {n}")
        for n in ("tiny test model", "model 1")
    )
    root = qgis_new_project.layerTreeRoot()
    assert len(parents) == len(rounds) == 1
    assert not root.findLayer(parents[0].id()).itemVisibilityChecked()
    assert root.findLayer(rounds[0].id()).itemVisibilityChecked()
    controller.rounds.append(Round(models[1], "model 2", austin_rgb, models[0], True, 1.0, 0.5))
    controller.undo_round()
    assert qgis_new_project.mapLayersByName("austin_dev_rgb — changes since model 1") == []
    assert root.findLayer(parents[0].id()).itemVisibilityChecked()
