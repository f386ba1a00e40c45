"""Fine-tune and Train coarse CNN from the dialog, as tasks, on the Austin tile."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from map_refiner.engine.errors import MapRefinerError
from map_refiner.ui.dialog.correction_layer import create_correction_layer
from map_refiner.ui.settings import DialogDefaults, save_defaults


@pytest.fixture
def setup(plugin, austin_rgb, tiny_model, qgis_new_project, tmp_path):  # noqa: ANN001, ANN201
    """A saved project in tmp_path, the Austin image, the dialog on the tiny model."""
    qgis_new_project.setFileName(str(tmp_path / "project.qgz"))
    image = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(image)
    save_defaults(DialogDefaults(model_path=str(tiny_model), device="cpu"))
    dialog = plugin.controller.ensure_dialog()
    dialog.input_combo.setLayer(image)
    dialog.labels.steps_spin.setValue(2)
    return plugin.controller, dialog, image


def _draw(layer: QgsVectorLayer, rect: QgsRectangle, name: str) -> None:
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromRect(rect))
    feature["class"] = name
    assert layer.addFeature(feature)


def test_finetune_on_drawn_corrections(
    setup, qgis_iface, tmp_path, tiny_model, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, image = setup
    summary = dialog.model.summary
    labels = create_correction_layer(
        image, summary.class_names, summary.colours, QgsProject.instance()
    )
    e = image.extent()
    _draw(
        labels,
        QgsRectangle(e.xMinimum() + 10, e.yMinimum() + 10, e.xMinimum() + 40, e.yMinimum() + 40),
        "building",
    )
    _draw(
        labels,
        QgsRectangle(e.xMaximum() - 40, e.yMaximum() - 40, e.xMaximum() - 10, e.yMaximum() - 10),
        "background",
    )
    dialog.labels.set_layer(labels)
    dialog.labels.set_mode("sparse")

    job = dialog.finetune_job()
    assert job.out == tmp_path / "austin_dev_rgb_round1.safetensors"  # image and round
    assert (job.labels.class_field, job.labels.mode, job.steps) == ("class", "sparse", 2)
    assert labels.isModified()
    controller.start_finetune(job)
    wait_for_tasks(timeout=120)

    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    assert job.out.exists()
    assert not labels.isModified() and labels.isEditable()  # edits saved, still editing
    assert QgsVectorLayer(str(job.labels.path), "saved", "ogr").featureCount() == 2
    assert dialog.model.model_path() == job.out
    assert tiny_model.exists()  # the base model is only read
    from map_refiner.engine import vocabulary as vocab
    from map_refiner.engine.modelfile.io import load_model

    # the dialog offers no band: it asks for outlines inside the edges (Session 31)
    assert load_model(job.out)[1].training["finetune"][-1]["edge_band_m"] == vocab.EDGE_BAND_M
    record = load_model(job.out)[1].training["finetune"][-1]
    assert record["outline_edges"] == vocab.OUTLINE_EDGES  # the dialog's round: the default
    assert record["snap_outlines"] == vocab.SNAP_OUTLINES
    assert dialog.labels.rounds_list.count() == 1 and dialog.labels.undo_button.isEnabled()
    item = dialog.labels.rounds_list.item(0)
    assert "not checked" in item.text()  # two polygons: none held out
    tip = item.toolTip()  # the whole story is the line's tooltip
    assert "fine-tuned on austin_dev_rgb.tif from tiny.safetensors" in tip, tip
    assert str(job.out) in tip
    # the line reads whole in a dialog as wide as the screenshots' (800 px)
    dialog.resize(800, dialog.height())
    dialog.show()
    view = dialog.labels.rounds_list
    lines = item.text().split("\n")
    assert lines[0] == "austin_dev_rgb — round 1 (2 corrections)"
    width = view.viewport().width()
    assert all(view.fontMetrics().horizontalAdvance(line) < width for line in lines), width
    dialog.hide()


def test_undo_round_goes_back_to_the_parent_model_and_map(
    setup, qgis_iface, tmp_path, tiny_model, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, image = setup
    _three_corrections(dialog, image)
    dialog.iterations_spin.setValue(1)
    first = dialog.refine_job()
    controller.start_refine(first)  # the parent's map
    wait_for_tasks(timeout=120)
    controller.start_finetune(dialog.finetune_job())
    wait_for_tasks(timeout=120)
    round_model = dialog.model.model_path()
    assert round_model.name == "austin_dev_rgb_round1.safetensors"
    dialog.suggest_output()
    controller.start_refine(dialog.refine_job())  # the round's map
    wait_for_tasks(timeout=120)
    project = QgsProject.instance()
    names = [layer.name() for layer in project.mapLayers().values()]
    by_round = [n for n in names if n == "austin_dev_rgb — refined by round 1 (1 it.)"]
    by_parent = [n for n in names if "refined by tiny test model" in n]
    assert len(by_round) == 1 and len(by_parent) == 1, names
    (renamed,) = project.mapLayersByName(by_round[0])
    renamed.setName("buildings, second try")  # renamed by the user: still the round's map
    renamed = renamed.id()
    groups = [g.name() for g in project.layerTreeRoot().findGroups()]  # one per refine
    assert "austin_dev_rgb — Map Refiner: round 1 (3 corrections)" in groups, groups
    assert "austin_dev_rgb — Map Refiner: tiny test model" in groups, groups
    # what the round's map changed against its parent's: a layer in the round's group,
    # and a line in the round's story
    (changes,) = project.mapLayersByName("austin_dev_rgb — changes since tiny test model")
    from map_refiner.ui.layers import PREVIOUS_MAP_KEY

    assert changes.customProperty(PREVIOUS_MAP_KEY) == str(first.params.out)  # Turn back's
    changes = changes.id()
    tip = dialog.labels.rounds_list.item(0).toolTip()
    assert "Its map, against the map of tiny test model, outside the drawn polygons, " in tip
    assert "% with them)" in tip, tip
    flow = controller.iterations
    assert flow is not None and flow.result is not None  # the round's map in the slider
    view = list(flow.layer_ids.values())

    undone = controller.undo_round()
    assert undone is not None and undone.model == round_model
    assert dialog.model.model_path() == tiny_model  # the parent model, selected again
    names = [layer.name() for layer in project.mapLayers().values()]
    assert not any("round 1" in n for n in names), names  # the round's map is gone ...
    assert project.mapLayer(renamed) is None  # ... under any name
    assert project.mapLayer(changes) is None  # ... with what it changed
    assert any("refined by tiny test model" in n for n in names)  # ... the parent's stays
    # ... and so does the slider's view of it: its iterations and "where to draw next"
    # (the parent's view is shown again: test_undo_round_shows_the_parents_iterations_again)
    assert flow.result is not None and flow.result.job.model_path == tiny_model
    title = flow.dock.title_label.text()
    assert "round 1 (3 corrections) was undone" in title and "No iterations yet" not in title
    assert all(project.mapLayer(i) is None for i in view)
    empty = [g.name() for g in project.layerTreeRoot().findGroups(True) if not g.children()]
    assert empty == []  # no group left behind empty
    assert round_model.exists()  # nothing on disk is deleted
    assert dialog.labels.rounds_list.count() == 0 and not dialog.labels.undo_button.isEnabled()
    # Export uses the parent's map again, not the undone round's
    assert controller.refined[Path(image.source())].path == first.params.out
    assert controller.undo_round() is None  # nothing left to undo: a message, no error
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []


def _three_corrections(dialog, image) -> None:  # noqa: ANN001
    """Two buildings and a background square drawn in a new correction layer, chosen in
    the dialog in sparse mode."""
    summary = dialog.model.summary
    labels = create_correction_layer(
        image, summary.class_names, summary.colours, QgsProject.instance()
    )
    e = image.extent()
    for dx, name in ((10, "building"), (60, "background"), (110, "building")):
        _draw(
            labels,
            QgsRectangle(
                e.xMinimum() + dx, e.yMinimum() + 10, e.xMinimum() + dx + 30, e.yMinimum() + 40
            ),
            name,
        )
    dialog.labels.set_layer(labels)
    dialog.labels.set_mode("sparse")


def _parent_then_round(controller, dialog, image, wait_for_tasks):  # noqa: ANN001, ANN202
    """A refine (2 iterations) with the tiny model, a round on three drawn polygons, a
    refine with the round: the parent's refine job and refined layer."""
    _three_corrections(dialog, image)
    dialog.iterations_spin.setValue(2)
    first = dialog.refine_job()
    controller.start_refine(first)
    wait_for_tasks(timeout=120)
    parent_layer = controller.iterations.refined_layer_id
    controller.start_finetune(dialog.finetune_job())
    wait_for_tasks(timeout=120)
    dialog.suggest_output()
    controller.start_refine(dialog.refine_job())
    wait_for_tasks(timeout=120)
    assert controller.iterations.refined_layer_id != parent_layer  # the round's map shown
    return first, QgsProject.instance().mapLayer(parent_layer)


def test_undo_round_shows_the_parents_iterations_again(
    setup, qgis_iface, tiny_model, wait_for_tasks
) -> None:  # noqa: ANN001
    """Back a round is back where the user was: the parent's map with its slider."""
    controller, dialog, image = setup
    first, parent = _parent_then_round(controller, dialog, image, wait_for_tasks)
    assert parent.name() == "austin_dev_rgb — refined by tiny test model (2 it.)"
    flow = controller.iterations

    controller.undo_round()
    project = QgsProject.instance()
    dock = flow.dock
    # the first refine's view, as it left it: its maps, at its iterations, nothing recomputed
    assert flow.task is None and flow.result is not None
    assert flow.result.job.model_path == tiny_model and flow.refined_layer_id == parent.id()
    assert flow.result.classes_path.exists() and flow.result.uncertainty_path.exists()
    assert dock.slider.isEnabled() and dock.slider.maximum() == 2 and dock.slider.value() == 2
    title = dock.title_label.text()  # which round is shown now, and which map
    assert "austin_dev_rgb — round 1 (3 corrections) was undone: back to tiny test model" in title
    assert parent.name() in title
    classes = flow._layer("classes")
    assert classes is not None and flow._layer("uncertainty") is not None
    # the iterations view is back in the parent's group, its copy hidden at the refine's own
    # iteration (the parent's map shows it)
    root = project.layerTreeRoot()
    group = root.findLayer(parent.id()).parent()
    assert root.findLayer(classes.id()).parent().parent() is group
    assert not root.findLayer(classes.id()).isVisible()
    assert dock.regions_list.count() > 0 and flow.rects
    # the slider works: iteration 0 shows the copy, named after that map's image
    dock.slider.setValue(0)
    assert classes.name() == "austin_dev_rgb — iteration 0 of 2"
    assert root.findLayer(classes.id()).itemVisibilityChecked()
    assert flow._layer("uncertainty").name().endswith("iteration 0")
    # Keep iteration keeps from the parent's refine again
    assert controller.last_refine.params == first.params
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []


def test_after_a_round_the_dock_lists_its_largest_changes_to_turn_back(
    setup, qgis_iface, wait_for_tasks, tmp_path, make_model
) -> None:  # noqa: ANN001
    """After a refine with another model than the image's previous map (a round's), the
    dock's list ranks the new map's largest changes (RefineOutcome.review): each is what a
    click on the changes layer turns back; a row zooms there; its button adds it to the
    correction layer once. (The tiny model's two-step rounds change nothing away from the
    drawn polygons under the change gate: another random model stands for the round.)"""
    from map_refiner.engine.scoring.turn_back import change_region_at

    controller, dialog, image = setup
    _three_corrections(dialog, image)  # the dialog's correction layer
    dialog.iterations_spin.setValue(2)
    first = dialog.refine_job()
    controller.start_refine(first)
    wait_for_tasks(timeout=120)
    parent_layer = controller.iterations.refined_layer_id
    other = make_model(tmp_path / "other.safetensors", seed=1, name="another model")
    dialog.model.set_model_path(str(other))
    dialog.suggest_output()
    controller.start_refine(dialog.refine_job())
    wait_for_tasks(timeout=120)
    flow, project = controller.iterations, QgsProject.instance()
    dock, review = flow.dock, flow.review
    assert review.changes and review.against == "tiny test model"
    assert dock.list_kind() == "changes" and dock.list_combo.isEnabled()
    assert dock.turn_back_button.isVisibleTo(dock) and not dock.turn_back_button.isEnabled()
    pixels = [c.pixels for c in review.changes]
    assert pixels == sorted(pixels, reverse=True) and dock.regions_list.count() == len(pixels)
    assert dock.regions_list.item(0).text().startswith(f"1.  {review.changes[0].area_m2:,.0f}")
    (changes,) = project.mapLayersByName("austin_dev_rgb — changes since tiny test model")
    for listed in review.changes[:3]:  # the polygon a click on it turns back
        at = QgsGeometry.fromWkt(listed.wkt).pointOnSurface().asPoint()
        clicked = change_region_at(changes.source(), first.params.out, at.x(), at.y())
        assert clicked is not None and (clicked.was, clicked.became) == (listed.was, listed.became)
        assert QgsGeometry.fromWkt(clicked.wkt).equals(QgsGeometry.fromWkt(listed.wkt))
    assert flow._layer("regions").featureCount() == len(review.changes)  # on the map too

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(image.crs())  # an earlier test may have left another
    dock.regions_list.setCurrentRow(1)  # a row chosen (a click, or the arrow keys) zooms
    assert canvas.extent().contains(flow.rects[1]) and dock.turn_back_button.isEnabled()
    assert min(canvas.extent().width(), canvas.extent().height()) >= 59.9  # 30 m, doubled
    labels = dialog.labels.layer()
    before = {f.id() for f in labels.getFeatures()}
    dock.turn_back_button.click()
    (added,) = [f for f in labels.getFeatures() if f.id() not in before]
    assert added["class"] == review.changes[1].was
    listed = QgsGeometry.fromWkt(review.changes[1].wkt)
    assert added.geometry().area() == pytest.approx(listed.area(), rel=1e-9)
    assert review.done[1] and "turned back" in dock.regions_list.item(1).text()
    # on to the next row, zoomed to
    assert dock.regions_list.currentRow() == 2 and canvas.extent().contains(flow.rects[2])
    dock.regions_list.setCurrentRow(1)
    assert not dock.turn_back_button.isEnabled()  # once
    flow.turn_back_row(1)
    assert labels.featureCount() == len(before) + 1
    # the marks follow the correction layer: its Undo takes one away, a click with Turn
    # changes back on a listed change adds one
    labels.undoStack().undo()
    QgsApplication.processEvents()
    assert labels.featureCount() == len(before) and not review.done[1]
    assert "turned back" not in dock.regions_list.item(1).text()
    assert dock.turn_back_button.isEnabled()  # row 1 still chosen, back to turn back
    at = QgsGeometry.fromWkt(review.changes[2].wkt).pointOnSurface().asPoint()
    controller.turn_back_flow().pick(at)  # the canvas is in the image's CRS (set above)
    QgsApplication.processEvents()
    assert review.done == [i == 2 for i in range(len(review.changes))]
    dock.turn_back_button.click()  # row 1 again: the next not turned back is row 3
    assert labels.featureCount() == len(before) + 2 and review.done[1]
    assert dock.regions_list.currentRow() == 3
    dock.slider.setValue(0)  # the list is the refine's map's: it stays at every iteration
    assert dock.regions_list.count() == len(review.changes) and review.done[1]
    dock.list_combo.setCurrentIndex(0)  # the uncertain places instead, none chosen yet
    assert dock.regions_list.item(0).text().startswith("1.  uncertainty")
    assert dock.regions_list.currentRow() == -1
    assert not dock.turn_back_button.isVisibleTo(dock)
    dock.list_combo.setCurrentIndex(1)
    assert "turned back" in dock.regions_list.item(1).text()

    # the earlier map's view again (as Undo round shows it): it had nothing to compare
    assert flow.restore(parent_layer, "back")
    assert flow.review.changes == () and dock.list_kind() == "uncertain"
    assert not dock.list_combo.isEnabled() and not dock.turn_back_button.isVisibleTo(dock)
    assert dock.regions_list.item(0).text().startswith("1.  uncertainty")
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []


def test_undo_round_says_when_the_parents_iterations_are_gone(setup, wait_for_tasks) -> None:  # noqa: ANN001
    controller, dialog, image = setup
    _, parent = _parent_then_round(controller, dialog, image, wait_for_tasks)
    flow = controller.iterations
    for view, *_ in flow.earlier.values():  # its maps were deleted from the disk
        view.classes_path.unlink()

    controller.undo_round()
    assert flow.result is None and not flow.dock.slider.isEnabled()
    title = flow.dock.title_label.text()
    assert "round 1 (3 corrections) was undone: back to tiny test model" in title
    assert parent.name() in title and "no longer kept" in title
    assert controller.last_refine is None


def test_train_coarse_from_reference_polygons(
    setup, austin_rgb, qgis_iface, tmp_path, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, _image = setup
    buildings = QgsVectorLayer(
        str(austin_rgb.with_name("austin_dev_buildings.gpkg")), "buildings", "ogr"
    )
    QgsProject.instance().addMapLayer(buildings)
    dialog.labels.set_layer(buildings, "")
    dialog.labels.set_mode("tile")

    job = dialog.train_coarse_job()
    assert job.params.out == tmp_path / "austin_dev_rgb_coarse.safetensors"
    assert job.params.labels.mode == "tile" and job.params.labels.class_field is None
    assert (job.params.class_names, job.params.ground_resolution_m) == (
        ["background", "building"],
        0.6,
    )
    controller.start_train_coarse(job)
    wait_for_tasks(timeout=120)

    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    from map_refiner.engine.modelfile.io import read_model_file

    config, _ = read_model_file(job.params.out)
    assert config.class_names == ["background", "building"] and config.default_iterations == 0
    assert dialog.model.model_path() == job.params.out


def test_training_needs_a_label_layer(setup) -> None:  # noqa: ANN001
    _controller, dialog, _image = setup
    dialog.labels.set_layer(None)
    with pytest.raises(MapRefinerError, match="polygon layer of labels"):
        dialog.finetune_job()


def test_memory_label_layer_is_refused(setup) -> None:  # noqa: ANN001
    _controller, dialog, _image = setup
    scratch = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "scratch", "memory")
    QgsProject.instance().addMapLayer(scratch)
    dialog.labels.set_layer(scratch, "class")
    with pytest.raises(MapRefinerError, match="save it as a GeoPackage"):
        dialog.train_coarse_job()


def test_a_dropped_fit_can_be_taken_and_the_round_still_undone(
    setup, qgis_iface, tiny_model, wait_for_tasks, monkeypatch
) -> None:  # noqa: ANN001
    """A round whose fit the flip check dropped offers it: *Use dropped fit* selects the
    fitted model saved beside the round's, the round's line says so, and Undo round takes
    away the maps of both files and goes back to the parent."""
    from map_refiner.training.corrections import finetune as ft

    monkeypatch.setattr(ft, "should_adopt", lambda base, tuned: True)
    monkeypatch.setattr(ft, "flip_cap", lambda score, per_score: -1.0)  # every fit dropped
    monkeypatch.setattr(ft, "flip_check_applies", lambda ratio, at_least: True)
    controller, dialog, image = setup
    _three_corrections(dialog, image)
    dialog.iterations_spin.setValue(1)
    controller.start_finetune(dialog.finetune_job())
    wait_for_tasks(timeout=120)
    round_model = dialog.model.model_path()
    dropped = round_model.with_name("austin_dev_rgb_round1_dropped_fit.safetensors")
    assert dropped.exists()
    labels = dialog.labels
    assert "fit dropped: changed too much elsewhere" in labels.rounds_list.item(0).text()
    assert dropped.name in labels.rounds_list.item(0).toolTip()
    assert labels.dropped_fit_button.isEnabled()
    dialog.suggest_output()
    controller.start_refine(dialog.refine_job())  # the round's own map (starting networks)
    wait_for_tasks(timeout=120)

    moved = dropped.with_name("elsewhere.safetensors")
    dropped.rename(moved)  # gone from the disk: said, nothing changes
    assert controller.use_dropped_fit() is None
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert dialog.model.model_path() == round_model
    moved.rename(dropped)

    taken = controller.use_dropped_fit()
    assert taken is not None and taken.model == dropped and taken.first_model == round_model
    assert dialog.model.model_path() == dropped
    line = labels.rounds_list.item(0).text()
    assert labels.rounds_list.count() == 1 and "dropped fit taken by you" in line
    assert "round 1 (3 corrections, dropped fit)" in line
    assert not labels.dropped_fit_button.isEnabled()  # taken once
    dialog.suggest_output()
    controller.start_refine(dialog.refine_job())  # the dropped fit's map
    wait_for_tasks(timeout=120)
    project = QgsProject.instance()
    names = [layer.name() for layer in project.mapLayers().values()]
    assert sum("round 1" in n for n in names) >= 2, names  # a map of each file

    undone = controller.undo_round()
    assert undone is not None and dialog.model.model_path() == tiny_model
    names = [layer.name() for layer in project.mapLayers().values()]
    assert not any("round 1" in n for n in names), names
    assert round_model.exists() and dropped.exists()  # nothing on disk is deleted
    assert labels.rounds_list.count() == 0 and not labels.dropped_fit_button.isEnabled()


def test_a_round_that_chose_its_base_names_it_as_its_parent(tmp_path) -> None:  # noqa: ANN001
    """Undo round goes back to the bundled model the fine-tune chose for the image: the
    general model by its file, the default as the dialog names it (None)."""
    from types import SimpleNamespace

    from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
    from map_refiner.training.tile import LabelSource
    from map_refiner.ui.jobs.training_jobs import FinetuneJob, round_parent

    labels = LabelSource(path=tmp_path / "c.gpkg", class_field="class", mode="sparse")
    chose = FinetuneJob(
        tmp_path / "i.tif", labels, tmp_path / "r.safetensors", None, None, "cpu", "", True
    )
    named = FinetuneJob(
        tmp_path / "i.tif",
        labels,
        tmp_path / "r.safetensors",
        tmp_path / "m.safetensors",
        None,
        "cpu",
        "",
    )
    assert round_parent(chose, SimpleNamespace(base_model=GENERAL_MODEL_PATH)) == GENERAL_MODEL_PATH
    assert round_parent(chose, SimpleNamespace(base_model=DEFAULT_MODEL_PATH)) is None
    assert (
        round_parent(named, SimpleNamespace(base_model=tmp_path / "m.safetensors"))
        == named.base_model
    )
