"""The dialog's widgets become the right RefineParams; defaults come back next time."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsRasterLayer, QgsVectorLayer

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from map_refiner.ui.dialog.dialog import MapRefinerDialog
from map_refiner.ui.jobs.refine_job import build_refine_job
from map_refiner.ui.settings import DialogDefaults, load_defaults, save_defaults


def _dialog(project, layer=None, **defaults) -> MapRefinerDialog:  # noqa: ANN001
    return MapRefinerDialog(project, DialogDefaults(**defaults), layer)


def test_widgets_become_refine_params(
    rgb_layer, rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    assert dialog.input_combo.currentLayer() is rgb_layer
    assert dialog.iterations_spin.value() == 2  # the tiny model's default
    assert "background" in dialog.model.info_label.text()
    assert "0.6 m/pixel" in dialog.model.info_label.text()
    dialog.iterations_spin.setValue(7)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.scores_check.setChecked(True)
    out = tmp_path / "result.tif"
    dialog.output_widget.setFilePath(str(out))

    job = dialog.refine_job()
    p = job.params
    assert (p.image, p.out, p.model_path) == (rgb_path, out, tiny_model)
    assert (p.iterations, p.device, p.overwrite) == (7, "cpu", False)
    assert p.scores == tmp_path / "result_scores.tif"
    assert job.source_name == "scene"


def test_output_defaults_beside_input_with_suffix(
    rgb_layer, rgb_path, tiny_model, qgis_new_project
) -> None:  # noqa: ANN001
    (rgb_path.parent / "scene_refined.tif").touch()
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    assert Path(dialog.output_widget.filePath()) == rgb_path.parent / "scene_refined_2.tif"
    job = dialog.refine_job()
    assert job.params.out != job.params.image and job.params.scores is None


def test_output_goes_beside_a_saved_project(
    rgb_layer, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    folder = tmp_path / "project"
    folder.mkdir()
    qgis_new_project.setFileName(str(folder / "p.qgz"))
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    assert Path(dialog.output_widget.filePath()) == folder / "scene_refined.tif"


def test_the_model_chosen_for_the_image_is_the_dialog_s_first_choice(
    rgb_layer, qgis_new_project
) -> None:  # noqa: ANN001
    """Opened afresh, the dialog leaves the bundled model to the image's look (the
    engine chooses: RefineParams.choose_model); the bundled default is a choice of its
    own, and each is remembered as itself."""
    dialog = _dialog(qgis_new_project, rgb_layer)
    assert dialog.model.auto_radio.isChecked() and dialog.model.chooses_for_image()
    assert dialog.model.model_path() is None
    job = dialog.refine_job()
    assert job.params.model_path is None and job.params.choose_model
    assert "as the image decides" in dialog.model.info_label.text()
    assert dialog.current_defaults().model_path == ""
    dialog.model.bundled_radio.setChecked(True)
    assert dialog.model.model_path() is None and not dialog.model.chooses_for_image()
    assert not dialog.refine_job().params.choose_model
    assert "as the image decides" not in dialog.model.info_label.text()
    remembered = dialog.current_defaults().model_path
    assert Path(remembered) == DEFAULT_MODEL_PATH
    again = _dialog(qgis_new_project, rgb_layer, model_path=remembered)
    assert again.model.bundled_radio.isChecked() and not again.model.file_radio.isChecked()


def test_the_general_model_is_a_bundled_choice(rgb_layer, qgis_new_project) -> None:  # noqa: ANN001
    dialog = _dialog(qgis_new_project, rgb_layer)
    dialog.model.general_radio.setChecked(True)
    assert dialog.model.model_path() == GENERAL_MODEL_PATH
    assert not dialog.model.file_widget.isEnabled()
    assert "general" in dialog.model.info_label.text()
    assert dialog.refine_job().params.model_path == GENERAL_MODEL_PATH
    # remembered as its file, it comes back as the general choice, not as "a file"
    again = _dialog(qgis_new_project, rgb_layer, model_path=str(GENERAL_MODEL_PATH))
    assert again.model.general_radio.isChecked()
    assert not again.model.file_radio.isChecked()
    again.model.bundled_radio.setChecked(True)
    assert again.model.model_path() is None
    assert not again.refine_job().params.choose_model


def test_a_missing_general_model_cannot_be_chosen(
    rgb_layer, qgis_new_project, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    from map_refiner.ui.dialog import model_widget

    monkeypatch.setattr(model_widget, "GENERAL_MODEL_PATH", tmp_path / "general.safetensors")
    dialog = _dialog(qgis_new_project, rgb_layer)
    assert not dialog.model.general_radio.isEnabled()
    assert "missing" in dialog.model.general_radio.toolTip()
    assert dialog.model.auto_radio.isChecked()  # the engine then takes the default


def test_incomplete_dialog_says_what_is_missing(qgis_new_project, tiny_model) -> None:  # noqa: ANN001
    dialog = _dialog(qgis_new_project, None, model_path=str(tiny_model))
    with pytest.raises(MapRefinerError, match="Choose a raster layer"):
        dialog.refine_job()


def test_a_raster_that_is_no_file_is_refused_with_a_hint(tmp_path) -> None:  # noqa: ANN001
    layer = QgsRasterLayer("wms://nowhere", "web tiles", "wms")
    with pytest.raises(MapRefinerError, match="online layer: refine it from the Map Refiner"):
        build_refine_job(layer, None, 1, "cpu", str(tmp_path / "o.tif"), False)


def test_output_must_be_a_geotiff(rgb_layer, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(MapRefinerError, match="GeoTIFF"):
        build_refine_job(rgb_layer, None, 1, "cpu", str(tmp_path / "o.png"), False)
    job = build_refine_job(rgb_layer, None, 1, "cpu", str(tmp_path / "o"), False)
    assert job.params.out == tmp_path / "o.tif"


def test_a_prior_layer_of_a_geopackage_is_named_to_the_engine(rgb_layer, tmp_path) -> None:  # noqa: ANN001
    """QGIS shows one layer of a GeoPackage of several; the refine starts from that one."""
    from osgeo import ogr

    from map_refiner.ui.jobs.refine_job import PriorChoice

    gpkg = tmp_path / "osm.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    for name in ("roads", "buildings"):
        ds.CreateLayer(name, None, ogr.wkbPolygon)
    ds = None
    layer = QgsVectorLayer(f"{gpkg}|layername=buildings", "buildings", "ogr")
    assert layer.isValid()
    job = build_refine_job(
        rgb_layer, None, 1, "cpu", str(tmp_path / "o.tif"), False, prior=PriorChoice(layer)
    )
    assert (job.params.prior, job.params.prior_layer) == (gpkg, "buildings")


def test_settings_restore_the_dialog(rgb_layer, tiny_model, qgis_new_project) -> None:  # noqa: ANN001
    save_defaults(
        DialogDefaults(
            model_path=str(tiny_model),
            iterations=9,
            device="cpu",
            write_scores=True,
            add_coarse=True,
            label_mode="full",  # the earlier name of "tile", still in users' settings
        )
    )
    dialog = MapRefinerDialog(qgis_new_project, load_defaults(), rgb_layer)
    assert dialog.model.model_path() == tiny_model
    assert dialog.iterations_spin.value() == 9
    assert dialog.device_combo.currentData() == "cpu"
    assert dialog.scores_check.isChecked() and dialog.coarse_check.isChecked()
    job = dialog.refine_job()
    assert job.params.coarse == job.params.out.with_name(job.params.out.stem + "_coarse.tif")
    assert dialog.current_defaults().add_coarse
    assert dialog.labels.mode() == "tile"
    assert dialog.current_defaults().iterations == 9


def test_label_layer_takes_the_remembered_field(rgb_layer, tiny_model, qgis_new_project) -> None:  # noqa: ANN001
    polygons = QgsVectorLayer(
        "Polygon?crs=EPSG:26914&field=kind:string&field=label:string", "labels", "memory"
    )
    qgis_new_project.addMapLayer(polygons)
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model), label_field="label")
    dialog.labels.layer_combo.setLayer(polygons)  # as the user picks it
    assert dialog.labels.layer() is polygons
    assert dialog.labels.field() == "label"
    dialog.labels.set_layer(polygons, "")
    assert dialog.labels.field() == ""  # no field: every polygon is class 1


def test_label_layer_without_the_remembered_field_takes_one_named_as_a_class(
    rgb_layer, tiny_model, qgis_new_project
) -> None:  # noqa: ANN001
    """A correction layer from elsewhere names its class field 'Klasse' or 'Class': left
    empty, every polygon would be read as class 1 (the engine refuses such a layer)."""
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model), label_field="class")
    for fields, want in [
        ("field=id:integer&field=Klasse:string", "Klasse"),
        ("field=Class:string", "Class"),
        ("field=name:string", ""),
    ]:
        layer = QgsVectorLayer(f"Polygon?crs=EPSG:26914&{fields}", "corrections", "memory")
        qgis_new_project.addMapLayer(layer)
        dialog.labels.layer_combo.setLayer(layer)  # as the user picks it
        assert dialog.labels.field() == want, fields


def _polygons(path: Path) -> Path:
    """One polygon over the top-left quarter of the scene (UTM 14N), with a class field."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("osm", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("kind", ogr.OFTString))
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetField("kind", "building")
    x0, y1 = 620000.0, 3350000.0
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0} {y1 - 14.4},{x0 + 14.4} {y1 - 14.4},{x0 + 14.4} {y1},{x0} {y1},"
            f"{x0} {y1 - 14.4}))"
        )
    )
    lyr.CreateFeature(feat)
    ds = None
    return path


def test_start_from_a_map_you_have(
    rgb_layer, rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """ "Start from": empty is the model's CNN; a polygon layer with its class field, or a
    class raster with its value map, becomes the refine's prior (no slider then)."""
    from osgeo import gdal

    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    assert dialog.prior_combo.currentLayer() is None and dialog.refine_job().params.prior is None
    assert dialog.refine_job().show_iterations
    assert not dialog.prior_field.isVisibleTo(dialog) and not dialog.prior_values.isVisibleTo(
        dialog
    )
    assert dialog.prior_hint.isVisibleTo(dialog)  # what empty means, said beside it

    osm = QgsVectorLayer(str(_polygons(tmp_path / "osm.gpkg")), "osm", "ogr")
    qgis_new_project.addMapLayer(osm)
    dialog.prior_combo.setLayer(osm)
    assert dialog.prior_field.isVisibleTo(dialog) and not dialog.prior_values.isVisibleTo(dialog)
    assert not dialog.prior_hint.isVisibleTo(dialog)
    dialog.prior_field.setField("kind")
    job = dialog.refine_job()
    assert job.params.prior == tmp_path / "osm.gpkg"
    assert job.params.prior_class_field == "kind" and job.params.prior_value_map is None
    assert not job.show_iterations

    mask = tmp_path / "mask.tif"
    gdal.Translate(str(mask), str(rgb_path), bandList=[1])
    raster = QgsRasterLayer(str(mask), "mask")
    qgis_new_project.addMapLayer(raster)
    dialog.prior_combo.setLayer(raster)
    assert dialog.prior_values.isVisibleTo(dialog) and not dialog.prior_field.isVisibleTo(dialog)
    dialog.prior_values.setText("0:0,255:1")
    p = dialog.refine_job().params
    assert (p.prior, p.prior_value_map, p.prior_class_field) == (mask, {0: 0, 255: 1}, None)
    dialog.prior_values.setText("yes:1")
    with pytest.raises(MapRefinerError, match="maps raster values"):
        dialog.refine_job()
    dialog.prior_combo.setLayer(rgb_layer)
    with pytest.raises(MapRefinerError, match="another map than the image"):
        dialog.refine_job()

    # a 0/255 mask gets its value map filled in (the engine refuses it without one);
    # another layer replaces the suggestion, and what the user types stays
    import numpy as np

    binary = tmp_path / "binary.tif"
    gdal.Translate(str(binary), str(mask), scaleParams=[[0, 255, 0, 255]], outputType=gdal.GDT_Byte)
    ds = gdal.Open(str(binary), gdal.GA_Update)
    band = ds.GetRasterBand(1)
    band.WriteArray(np.where(band.ReadAsArray() > 127, 255, 0).astype(np.uint8))
    ds = None
    zero_255 = QgsRasterLayer(str(binary), "buildings 0/255")
    qgis_new_project.addMapLayer(zero_255)
    dialog.prior_values.setText("")
    dialog.prior_combo.setLayer(zero_255)
    assert dialog.prior_values.text() == "0:0,255:1"
    assert dialog.refine_job().params.prior_value_map == {0: 0, 255: 1}
    dialog.prior_combo.setLayer(raster)  # many values: nothing to suggest
    assert dialog.prior_values.text() == ""
    dialog.prior_values.setText("1:1")
    dialog.prior_combo.setLayer(zero_255)
    assert dialog.prior_values.text() == "1:1"


def test_the_dialog_says_the_snap_model_refines_a_map_you_have(
    rgb_layer, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """Under the bundled default model, choosing a map to start from says that the
    bundled snap model will refine it (the refine takes it: pipeline.prepare_pass); a
    model file chosen by hand is used as it is, and says nothing of the kind."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QTextDocument

    from map_refiner.engine.modelfile.header import SNAP_MODEL_PATH

    if not SNAP_MODEL_PATH.exists():
        pytest.skip("the bundled snap model is not in this checkout")
    dialog = _dialog(qgis_new_project, rgb_layer)
    dialog.model.bundled_radio.setChecked(True)
    osm = QgsVectorLayer(str(_polygons(tmp_path / "osm.gpkg")), "osm", "ogr")
    qgis_new_project.addMapLayer(osm)
    assert "snap model" not in dialog.model_note.text()
    dialog.prior_combo.setLayer(osm)
    assert not dialog.model_note.isHidden()
    assert "the bundled snap model refines it" in dialog.model_note.text()
    # shown as rich text: the escaped apostrophe reads as one, not as "&#x27;"
    assert dialog.model_note.textFormat() == Qt.TextFormat.RichText
    shown = QTextDocument()
    shown.setHtml(dialog.model_note.text())
    assert "the image's edges" in shown.toPlainText()
    dialog.prior_combo.setLayer(None)
    assert dialog.model_note.isHidden()
    dialog.prior_combo.setLayer(osm)
    dialog.model.set_model_path(str(tiny_model))
    assert "snap model" not in dialog.model_note.text()


def test_a_refine_from_polygons_runs_in_the_task(
    plugin, rgb_layer, rgb_path, tiny_model, qgis_new_project, tmp_path, wait_for_tasks
) -> None:  # noqa: ANN001
    """The controller's refine from a polygon layer equals the engine's, and is not the
    CNN's own map."""
    import numpy as np
    from osgeo import gdal

    from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

    osm = QgsVectorLayer(str(_polygons(tmp_path / "osm.gpkg")), "osm", "ogr")
    qgis_new_project.addMapLayer(osm)
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    dialog.prior_combo.setLayer(osm)
    dialog.output_widget.setFilePath(str(tmp_path / "from_osm.tif"))
    plugin.controller.start_refine(dialog.refine_job())
    wait_for_tasks()
    got = gdal.Open(str(tmp_path / "from_osm.tif")).ReadAsArray()
    refine_raster(
        RefineParams(
            image=rgb_path,
            out=tmp_path / "e.tif",
            model_path=tiny_model,
            prior=tmp_path / "osm.gpkg",
        )
    )
    np.testing.assert_array_equal(got, gdal.Open(str(tmp_path / "e.tif")).ReadAsArray())
    refine_raster(RefineParams(image=rgb_path, out=tmp_path / "cnn.tif", model_path=tiny_model))
    assert (got != gdal.Open(str(tmp_path / "cnn.tif")).ReadAsArray()).any()  # the prior counted
    assert qgis_new_project.mapLayersByName("scene — refined by tiny test model (2 it.)")


def _raster_at(folder: Path, name: str, pixel: float, epsg: int = 26914) -> QgsRasterLayer:
    """A small RGB layer of ``pixel``-sized pixels (CRS units) in ``epsg``."""
    from conftest import write_rgb
    from osgeo import gdal, osr

    path = write_rgb(folder / f"{name}.tif", size=32)
    ds = gdal.Open(str(path), gdal.GA_Update)
    x0, y0 = (-97.74, 30.27) if epsg == 4326 else (620000.0, 3350000.0)
    ds.SetGeoTransform((x0, pixel, 0.0, y0, 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds = None
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    return layer


def test_outline_detail_reaches_refine_params(tiny_model, qgis_new_project, tmp_path) -> None:  # noqa: ANN001
    fine = _raster_at(tmp_path, "drone", 0.15)
    qgis_new_project.addMapLayer(fine)
    dialog = _dialog(qgis_new_project, fine, model_path=str(tiny_model))
    assert dialog.detail.spin.isEnabled() and dialog.detail.spin.value() == -1
    assert dialog.detail.spin.text() == "auto"
    assert dialog.refine_job().params.detail_iterations is None  # the model's own
    assert "finer grid" in dialog.detail.spin.toolTip()
    assert "the model's own" in dialog.detail.spin.toolTip()
    assert "auto: none for this model" in dialog.detail.note.text()  # no detail RNN
    dialog.model.set_model_path(None)  # the bundled model has one, of 2 iterations
    assert "auto: the model's 2" in dialog.detail.note.text()
    assert dialog.refine_job().params.detail_iterations is None
    dialog.model.set_model_path(str(tiny_model))
    dialog.detail.spin.setValue(0)
    assert dialog.refine_job().params.detail_iterations == 0  # off
    dialog.detail.spin.setValue(2)
    assert dialog.refine_job().params.detail_iterations == 2
    assert dialog.current_defaults().detail_choice == 2


@pytest.mark.parametrize(
    "pixel,epsg,offered",
    [
        (0.3, 26914, True),  # 2x finer than the tiny model's 0.6 m: offered
        (0.32, 26914, False),
        (0.5, 26914, False),  # finer, but not 2x: detail iterations lose IoU there
        (0.6, 26914, False),
        (0.15 / 111320, 4326, True),  # degrees: measured on the ground
    ],
)
def test_outline_detail_is_off_for_a_raster_not_2x_finer(
    pixel, epsg, offered, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    layer = _raster_at(tmp_path, "image", pixel, epsg)
    qgis_new_project.addMapLayer(layer)
    dialog = _dialog(qgis_new_project, layer, model_path=str(tiny_model), detail_choice=2)
    assert dialog.detail.spin.isEnabled() == offered
    assert dialog.refine_job().params.detail_iterations == (2 if offered else 0)
    if not offered:
        assert dialog.detail.spin.value() == 0
        assert "not 2x finer than the model's 0.6 m grid" in dialog.detail.spin.toolTip()
        assert dialog.current_defaults().detail_choice == 2  # remembered all the same


def test_outline_detail_follows_the_chosen_raster(
    rgb_layer, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """Off for the 0.6 m raster, the number chosen comes back for a drone image; saved
    and restored with the other options."""
    fine = _raster_at(tmp_path, "drone", 0.075)
    qgis_new_project.addMapLayer(fine)
    save_defaults(DialogDefaults(model_path=str(tiny_model), detail_choice=1))
    dialog = MapRefinerDialog(qgis_new_project, load_defaults(), rgb_layer)
    assert not dialog.detail.spin.isEnabled()
    assert "off for this raster" in dialog.detail.note.text()
    dialog.input_combo.setLayer(fine)
    assert dialog.detail.spin.isEnabled() and dialog.detail.spin.value() == 1
    dialog.detail.spin.setValue(3)
    dialog.input_combo.setLayer(rgb_layer)
    assert dialog.refine_job().params.detail_iterations == 0
    save_defaults(dialog.current_defaults())
    assert load_defaults().detail_choice == 3
    dialog.model.set_model_path(str(tmp_path / "missing.safetensors"))
    dialog.input_combo.setLayer(fine)
    assert not dialog.detail.spin.isEnabled()  # no usable model: no resolution to compare
    dialog.model.set_model_path(str(tiny_model))
    assert dialog.detail.iterations() == 3


def test_the_fine_grid_is_the_engine_s_until_chosen_and_clamped_as_it_clamps(
    tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """The fine grid's pixel size beside Outline detail: the engine's own grid (None to the
    engine) until changed, between the image's own pixels and half the model's, back to
    the engine's for another raster; hidden where the option is off."""
    drone = _raster_at(tmp_path, "drone", 0.075)
    aerial = _raster_at(tmp_path, "aerial", 0.2)
    coarse = _raster_at(tmp_path, "coarse", 0.6)
    for layer in (drone, aerial, coarse):
        qgis_new_project.addMapLayer(layer)
    dialog = _dialog(qgis_new_project, drone, model_path=str(tiny_model), detail_choice=2)
    grid = dialog.detail.grid
    assert grid.isEnabled() and grid.value() == pytest.approx(0.15)  # model / 4
    assert (grid.minimum(), grid.maximum()) == pytest.approx((0.075, 0.3))
    assert "--detail-resolution" in grid.toolTip()
    assert dialog.refine_job().params.detail_resolution_m is None
    grid.setValue(0.3)
    assert dialog.refine_job().params.detail_resolution_m == pytest.approx(0.3)
    grid.setValue(0.01)  # finer than the image: its own pixels, as the engine takes it
    assert dialog.refine_job().params.detail_resolution_m == pytest.approx(0.075)
    grid.setValue(0.6)  # not 2x finer than the model: half its pixel at most
    assert dialog.refine_job().params.detail_resolution_m == pytest.approx(0.3)
    dialog.detail.spin.setValue(0)
    assert not grid.isEnabled() and dialog.refine_job().params.detail_resolution_m is None
    dialog.detail.spin.setValue(2)
    dialog.input_combo.setLayer(aerial)  # the engine's grid is this image's own pixels
    assert grid.value() == pytest.approx(0.2)
    assert (grid.minimum(), grid.maximum()) == pytest.approx((0.2, 0.3))
    assert dialog.refine_job().params.detail_resolution_m is None
    grid.setValue(0.25)
    grid.clear()  # the clear button: the engine's grid again
    assert dialog.refine_job().params.detail_resolution_m is None
    dialog.input_combo.setLayer(coarse)
    assert grid.isHidden() and dialog.refine_job().params.detail_resolution_m is None


def test_a_kept_iteration_has_the_detail_iterations_only_at_the_last(rgb_layer, tmp_path) -> None:  # noqa: ANN001
    """As the slider shows them: iterations before the last are the model grid's maps."""
    from map_refiner.ui.jobs.refine_job import keep_iteration_job

    job = build_refine_job(
        rgb_layer, None, 3, "cpu", str(tmp_path / "o.tif"), False, detail_iterations=2
    )
    assert job.params.detail_iterations == 2
    assert keep_iteration_job(job, 1).params.detail_iterations == 0
    assert keep_iteration_job(job, 3).params.detail_iterations == 2


def test_the_existing_map_s_offset_search_reaches_the_engine(
    rgb_layer, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """With a map to start from, the dialog shows how far its offset is looked for
    (the engine's 10 m unless changed) and whether the image's edges may undo its move
    (ticked); without one, both are hidden."""
    from osgeo import ogr

    gpkg = tmp_path / "osm.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    ds.CreateLayer("buildings", None, ogr.wkbPolygon)
    ds = None
    prior = QgsVectorLayer(f"{gpkg}|layername=buildings", "buildings", "ogr")
    qgis_new_project.addMapLayer(prior)
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    dialog.show()
    assert not dialog.prior_search.isVisible()
    dialog.prior_combo.setLayer(prior)
    assert dialog.prior_search.isVisible() and dialog.prior_search.value() == 10.0
    assert dialog.refine_job().params.prior_search_m == 10.0
    dialog.prior_search.setValue(20.0)
    assert dialog.refine_job().params.prior_search_m == 20.0
    assert dialog.prior_edges.isVisible() and dialog.prior_edges.isChecked()
    assert dialog.refine_job().params.prior_edges is True
    dialog.prior_edges.setChecked(False)
    assert dialog.refine_job().params.prior_edges is False
    dialog.prior_combo.setLayer(None)
    assert not dialog.prior_search.isVisible() and not dialog.prior_edges.isVisible()
    assert dialog.refine_job().params.prior_search_m is None
    dialog.close()


def test_a_refine_whose_model_may_misread_the_imagery_warns(
    plugin,
    rgb_layer,
    tiny_model,
    qgis_new_project,
    qgis_iface,
    tmp_path,
    wait_for_tasks,
    monkeypatch,
) -> None:  # noqa: ANN001
    """When the image's edges doubt the model (RefineResult.prior_misread), the result's
    line stays in the message bar as a warning instead of a passing success."""
    from dataclasses import replace

    from qgis.core import Qgis

    from map_refiner.engine.refine import pipeline

    real = pipeline.refine_raster

    def doubting(params, **kw):  # noqa: ANN001, ANN003, ANN202
        note = "left in place: the model may misread this imagery"
        return replace(real(params, **kw), prior_note=note, prior_misread=True)

    monkeypatch.setattr(pipeline, "refine_raster", doubting)
    osm = QgsVectorLayer(str(_polygons(tmp_path / "osm.gpkg")), "osm", "ogr")
    qgis_new_project.addMapLayer(osm)
    dialog = _dialog(qgis_new_project, rgb_layer, model_path=str(tiny_model))
    dialog.prior_combo.setLayer(osm)
    dialog.output_widget.setFilePath(str(tmp_path / "doubted.tif"))
    bar = qgis_iface.messageBar()
    plugin.controller.start_refine(dialog.refine_job())
    wait_for_tasks()
    warned = " ".join(bar.get_messages(Qgis.MessageLevel.Warning))
    assert "prior map left in place: the model may misread this imagery" in warned
    assert not any("doubted.tif" in m for m in bar.get_messages(Qgis.MessageLevel.Success))


def test_a_crs_set_on_the_layer_alone_is_the_one_the_refine_reads(
    plugin, tiny_model, qgis_new_project, tmp_path, wait_for_tasks
) -> None:  # noqa: ANN001
    """A file without a CRS whose layer was given one in QGIS (Set Layer CRS) refines, and
    its map lies where QGIS shows the image; the file is left as it was (session 50: the
    engine, which reads the file, refused it for want of a pixel size)."""
    import hashlib

    from osgeo import gdal
    from qgis.core import QgsCoordinateReferenceSystem

    from map_refiner.engine.refine.pipeline import refine_raster
    from map_refiner.ui.sources import CRS_FOLDER

    layer = _raster_at(tmp_path, "nocrs", 0.6)
    ds = gdal.Open(layer.source(), gdal.GA_Update)
    ds.SetProjection("")
    ds = None
    src = Path(layer.source())
    layer = QgsRasterLayer(str(src), "nocrs")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    qgis_new_project.addMapLayer(layer)
    out = tmp_path / "refined.tif"
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:0"))  # as loaded: no CRS
    unknown = build_refine_job(layer, tiny_model, 1, "cpu", str(out), False)
    assert unknown.params.image == src
    with pytest.raises(MapRefinerError, match="no coordinate reference system"):
        refine_raster(unknown.params)
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:26914"))  # Set Layer CRS
    dialog = _dialog(qgis_new_project, layer, model_path=str(tiny_model))
    dialog.output_widget.setFilePath(str(out))
    job = dialog.refine_job()
    assert job.params.image.parent == CRS_FOLDER and job.params.out == out
    plugin.controller.start_refine(job)
    wait_for_tasks()
    refined = gdal.Open(str(out))
    assert "26914" in refined.GetProjection().replace('"', "")
    assert refined.GetGeoTransform() == gdal.Open(str(src)).GetGeoTransform()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob("*.vrt"))  # kept apart from the user's files


def test_an_image_without_georeferencing_takes_its_pixel_size_in_the_dialog(
    plugin, rgb_layer, tiny_model, qgis_new_project, tmp_path, wait_for_tasks
) -> None:  # noqa: ANN001
    """A plain photo (no georeferencing) shows the pixel size box; the size given reaches
    the refine and its slider, and the map lies on the photo's pixels. A georeferenced
    layer shows no box and passes none."""
    import numpy as np
    from helpers_engine import scene
    from osgeo import gdal

    from map_refiner.engine.rasters.read import UNREFERENCED_GEOTRANSFORM

    photo = tmp_path / "photo.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(photo), 80, 64, 3, gdal.GDT_Byte)
    for i, band in enumerate(scene(64, 80, seed=3).astype(np.uint8)):
        ds.GetRasterBand(i + 1).WriteArray(band)
    ds = None
    layer = QgsRasterLayer(str(photo), "photo")
    qgis_new_project.addMapLayer(layer)
    dialog = _dialog(qgis_new_project, layer, model_path=str(tiny_model))
    assert dialog.pixel_size.needed and not dialog.pixel_size.isHidden()
    out = tmp_path / "refined.tif"
    dialog.output_widget.setFilePath(str(out))
    assert dialog.refine_job().params.input_resolution_m is None  # not given yet
    dialog.pixel_size.spin.setValue(0.3)
    job = dialog.refine_job()
    assert job.params.input_resolution_m == pytest.approx(0.3)
    plugin.controller.start_refine(job)
    wait_for_tasks()
    assert gdal.Open(str(out)).GetGeoTransform() == UNREFERENCED_GEOTRANSFORM
    from test_bands_choice import _correction

    _correction(dialog, layer, qgis_new_project)  # a polygon drawn over the photo
    assert dialog.finetune_job().input_resolution_m == pytest.approx(0.3)
    assert dialog.train_coarse_job().params.input_resolution_m == pytest.approx(0.3)
    dialog.input_combo.setLayer(rgb_layer)  # georeferenced: no box, no size passed
    assert dialog.pixel_size.isHidden() and dialog.refine_job().params.input_resolution_m is None
