"""State follows the project: Project ▸ New empties the iterations dock and forgets
the old project's maps; a fine-tuned model is not carried into a new project silently."""

from __future__ import annotations

from pathlib import Path

from test_iteration_slider import refine_with_slider

from map_refiner.ui.settings import DialogDefaults, save_defaults


def test_a_new_project_empties_the_iterations_dock(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 2
    )
    dock = flow.dock
    assert dock.regions_list.count() > 0 and plugin.controller.refined
    folder = flow.result.job.folder
    qgis_new_project.clear()  # what Project ▸ New does
    assert flow.result is None and flow.layer_ids == {} and flow.rects == []
    assert dock.regions_list.count() == 0 and dock.slider.maximum() == 0
    assert not dock.keep_button.isEnabled() and "No iterations" in dock.title_label.text()
    assert plugin.controller.refined == {} and plugin.controller.last_refine is None
    assert not folder.exists()  # the slider's maps of the old raster are gone
    flow.zoom_to(0)  # a click on a (now absent) region does nothing


def test_a_fine_tuned_model_is_not_carried_into_a_new_project(
    plugin, tiny_model, tmp_path, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    from map_refiner.engine.modelfile.io import load_model, save_model

    net, cfg = load_model(tiny_model)
    cfg.name = "scene — round 1 (3 corrections)"
    cfg.training["finetune"] = [{"image": "scene.tif", "round": 1, "parent": "bundled"}]
    tuned = save_model(net, cfg, tmp_path / "round1.safetensors")
    save_defaults(DialogDefaults(model_path=str(tuned)))
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    assert dialog.model.model_path() == tuned
    qgis_new_project.clear()
    assert dialog.model.model_path() is None  # the bundled model again ...
    texts = [w.text() for w in dialog.message_bar.items()]
    assert any("round1.safetensors" in t and "bundled" in t for t in texts), texts  # ... said


def test_a_plain_model_stays_chosen_across_projects(plugin, tiny_model, qgis_new_project) -> None:  # noqa: ANN001
    save_defaults(DialogDefaults(model_path=str(tiny_model)))
    plugin.controller.show_dialog()
    qgis_new_project.clear()
    assert plugin.controller.dialog.model.model_path() == Path(tiny_model)


def test_stale_messages_go_with_the_project(
    plugin, qgis_iface, qgis_new_project, monkeypatch
) -> None:  # noqa: ANN001
    """(pytest-qgis's message bar records pushes and does not forget them on clear, so
    the call itself is what is checked.)"""
    bar = qgis_iface.messageBar()
    cleared = []
    monkeypatch.setattr(bar, "clearWidgets", lambda: cleared.append(True))
    qgis_new_project.clear()
    assert cleared == [True]


def test_a_round_says_why_its_networks_were_kept() -> None:
    from map_refiner.ui.rounds import Round

    common = dict(model=Path("r.safetensors"), name="img — round 1 (5 corrections)")
    common.update(image=Path("img.tif"), parent=None, tuned_score=1.0, base_score=0.94)
    assert "fit adopted" in Round(adopted=True, flip_ratio=0.1, **common).describe()
    dropped = Round(adopted=False, flip_ratio=0.8, **common)
    line = dropped.describe()
    assert "changed too much elsewhere" in line and "100 %" in line and "94 %" in line
    tip = dropped.details()  # the line's tooltip: the whole sentence, where from, the file
    assert "100 % of your held-out polygons right (the starting model: 94 %)" in tip
    assert "from the bundled model" in tip and "r.safetensors" in tip
    assert "too much" not in Round(adopted=False, flip_ratio=None, **common).describe()
    # adopted although the fit changed much of the sure map: the check stood aside
    unguarded = Round(adopted=True, flip_ratio=4.2, unguarded=True, **common)
    assert "check the undrawn map" in unguarded.describe()
    assert "no guide" in unguarded.details() and "4.2 times" in unguarded.details()
    # one polygon per class: nothing held out, the general model judged the fit
    judged = dict(common, tuned_score=None, base_score=None)
    partner = Round(adopted=True, partner_agreement=0.73, **judged)
    assert "checked by the general model: 73 % agree" in partner.describe()
    assert "not checked" not in partner.describe() and "Undo round" in partner.details()
    assert "not checked" in Round(adopted=False, **judged).describe()
    # a round of the general model's lineage is judged by the default model
    by_default = Round(adopted=True, partner_agreement=0.61, partner="default", **judged)
    assert "checked by the default model: 61 % agree" in by_default.describe()
    assert "bundled default model" in by_default.details()
    # the partner agreed, but the fit changed more of the sure map than that vouches for
    # (session 53): dropped, and the tooltip does not send the user to Undo round
    flipped = dict(judged, dropped_fit=Path("r_dropped_fit.safetensors"))
    over = Round(adopted=False, partner_agreement=0.96, flip_ratio=8.5, **flipped)
    assert "96 % agree, fit dropped: changed too much elsewhere" in over.describe()
    tip = over.details()
    assert "8.5 times as much of the starting model's sure map" in tip
    assert "Undo round" not in tip and "r_dropped_fit.safetensors" in tip
    erased = Round(
        adopted=False,
        flip_ratio=0.3,
        erased="building",
        dropped_fit=Path("r_dropped_fit.safetensors"),
        **common,
    )
    assert "fit dropped: it erased most building pixels" in erased.describe()
    assert "too much" not in erased.describe()
    assert "removed nearly all building pixels" in erased.details()
    taken = erased.with_dropped_fit("img — round 1 (5 corrections, dropped fit)")
    assert "removed nearly all building pixels" in taken.details()
    # a later round, fitted again from where the image's rounds started (session 52)
    later = dict(common, name="img — round 2 (9 corrections)", parent=Path("r1.safetensors"))
    again = Round(adopted=False, flip_ratio=None, fitted_from="Map Refiner default", **later)
    tip = again.details()
    assert "from r1.safetensors (fitted again, on every polygon drawn so far, from Map " in tip
    assert "(that model: 94 %)" in tip and "the last round's networks kept" in tip
    assert "starting" not in tip


def test_the_dialog_says_which_image_a_fine_tuned_model_is_for_and_why(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """A model chosen for one image is never silently used for another."""
    from conftest import write_rgb
    from qgis.core import QgsRasterLayer

    from map_refiner.engine.modelfile.io import load_model, save_model

    net, cfg = load_model(tiny_model)
    cfg.name = "scene — round 1 (3 corrections)"
    cfg.training["finetune"] = [{"image": "scene.tif", "round": 1, "parent": "bundled"}]
    tuned = save_model(net, cfg, tmp_path / "scene_round1.safetensors")
    other = QgsRasterLayer(str(write_rgb(tmp_path / "other.tif", seed=1)), "other")
    qgis_new_project.addMapLayer(other)
    save_defaults(DialogDefaults(model_path=str(tuned)))
    plugin.controller.iface.setActiveLayer(rgb_layer)
    plugin.controller.show_dialog()  # as after a restart: the model comes from the settings
    dialog = plugin.controller.dialog
    dialog.input_combo.setLayer(rgb_layer)
    note = dialog.model_note
    assert not note.isHidden()
    assert "Fine-tuned on scene.tif: its drawn polygons show" in note.text(), note.text()
    assert "Remembered from your last use." in note.text()  # ... and why it is chosen
    dialog.input_combo.setLayer(other)  # another image: said, in red
    assert "not on this raster (other.tif)" in note.text() and "b00020" in note.text()
    assert "only its networks apply here" in note.text()
    dialog.model.set_model_path(str(tiny_model))  # a plain model, chosen by the user
    assert note.isHidden()
    dialog.model.set_model_path(str(tuned), "Selected by Fine-tune.")
    assert "Selected by Fine-tune." in note.text()
    dialog.model.bundled_radio.setChecked(True)  # by hand: the bundled model, no note
    assert note.isHidden()
    dialog.model.file_radio.setChecked(True)  # and the file again: no "why" any more
    assert "Selected" not in note.text() and "not on this raster" in note.text()


def test_a_long_model_note_pushes_the_rows_below_it_down(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """The note wraps onto more lines in a shown dialog: the dialog grows rather than
    drawing the note over the model's resolution line."""
    from qgis.PyQt.QtWidgets import QApplication

    from map_refiner.engine.modelfile.io import load_model, save_model

    net, cfg = load_model(tiny_model)
    cfg.name = "elsewhere — round 1 (3 corrections)"
    cfg.training["finetune"] = [{"image": "elsewhere.tif", "round": 1, "parent": "bundled"}]
    tuned = save_model(net, cfg, tmp_path / "elsewhere_round1.safetensors")
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    dialog.input_combo.setLayer(rgb_layer)
    dialog.adjustSize()
    dialog.resize(800, dialog.height())
    QApplication.processEvents()
    dialog.model.set_model_path(str(tuned), "Selected by Undo round: the model it started from.")
    QApplication.processEvents()
    info, note = dialog.model.info_label, dialog.model_note
    info_bottom = info.mapTo(dialog, info.rect().bottomLeft()).y()
    note_top = note.mapTo(dialog, note.rect().topLeft()).y()
    assert note.height() >= note.heightForWidth(note.width()), (note.height(), note.width())
    assert note_top > info_bottom and info.height() >= info.heightForWidth(info.width())
    dialog.hide()


def test_a_model_tuned_tile_after_tile_keeps_each_tiles_polygons_in_its_note(
    plugin, rgb_layer, tiny_model, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """A round on the next tile keeps the earlier tile's polygons (kept.OTHER_IMAGES):
    the dialog says they show on that tile, not in red that only the networks apply."""
    from conftest import write_rgb
    from qgis.core import QgsRasterLayer

    from map_refiner.engine.modelfile.io import load_model, save_model

    def entry(name: str) -> dict:
        return {
            "image": name,
            "width": 8,
            "height": 8,
            "geotransform": [0.0, 1.0, 0.0, 8.0, 0.0, -1.0],
            "crs": "",
            "shapes": [{"class": 1, "feature": 0, "wkt": "POLYGON((1 1,2 1,2 2,1 2,1 1))"}],
        }

    net, cfg = load_model(tiny_model)
    cfg.name = "scene — round 1 (1 correction)"
    cfg.training["finetune"] = [{"image": "scene.tif", "round": 1, "parent": "other_round1"}]
    cfg.corrections = {**entry("scene.tif"), "other_images": [entry("other.tif")]}
    tuned = save_model(net, cfg, tmp_path / "scene_round1.safetensors")
    other = QgsRasterLayer(str(write_rgb(tmp_path / "other.tif", seed=1)), "other")
    third = QgsRasterLayer(str(write_rgb(tmp_path / "third.tif", seed=2)), "third")
    qgis_new_project.addMapLayer(other)
    qgis_new_project.addMapLayer(third)
    save_defaults(DialogDefaults(model_path=str(tuned)))
    plugin.controller.iface.setActiveLayer(rgb_layer)
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    note = dialog.model_note
    dialog.input_combo.setLayer(other)
    assert "before that on this raster (other.tif)" in note.text(), note.text()
    assert "b00020" not in note.text()
    dialog.input_combo.setLayer(third)  # an image it keeps nothing of: red, as before
    assert "not on this raster (third.tif)" in note.text() and "b00020" in note.text()
