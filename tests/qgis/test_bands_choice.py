"""The dialog's Bands: the bands a colour model reads, by default the image's own, as the
layer shows them when chosen, one band as grey for a grey image; the refine, the
fine-tune and the slider read what was chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
)

from map_refiner.ui.dialog.bands_box import band_choices
from map_refiner.ui.dialog.correction_layer import create_correction_layer
from map_refiner.ui.dialog.dialog import MapRefinerDialog
from map_refiner.ui.dialog.model_info import read_model_summary
from map_refiner.ui.settings import DialogDefaults


def _copy(src: Path, out: Path, bands: list[int], colours: str | None) -> Path:
    """``src``'s ``bands`` in that order, their colours named (``colours``) or not."""
    options = [f"-b {b}" for b in bands]
    interp = colours or ",".join(["undefined"] * len(bands))
    gdal.Translate(str(out), str(src), options=" ".join(options) + f" -colorinterp {interp}")
    return out


def _layer(path: Path, project, name: str = "scene") -> QgsRasterLayer:  # noqa: ANN001
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    project.addMapLayer(layer)
    return layer


def _show(layer: QgsRasterLayer, red: int, green: int, blue: int) -> None:
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))


def _dialog(project, layer, model: Path) -> MapRefinerDialog:  # noqa: ANN001
    return MapRefinerDialog(project, DialogDefaults(model_path=str(model)), layer)


def _keys(dialog: MapRefinerDialog) -> list[str]:
    combo = dialog.bands_box.combo
    return [combo.itemData(i).key for i in range(combo.count())]


def _choose(dialog: MapRefinerDialog, key: str) -> None:
    combo = dialog.bands_box.combo
    index = _keys(dialog).index(key)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_the_image_s_own_bands_by_default_and_the_shown_ones_when_chosen(
    rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """An image stored blue-green-red without colour names, shown 3, 2, 1 by its user:
    offered beside the image's own 1, 2, 3, not chosen for the user; chosen, the refine,
    the fine-tune and the slider read 3, 2, 1."""
    bgr = _copy(rgb_path, tmp_path / "bgr.tif", [3, 2, 1], None)
    layer = _layer(bgr, qgis_new_project)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    assert _keys(dialog) == ["image"]  # QGIS shows 1, 2, 3: nothing else to offer
    assert not dialog.bands_box.combo.isEnabled()
    assert dialog.refine_job().params.bands is None

    _show(layer, 3, 2, 1)  # the user's symbology: the dialog follows it while open
    assert _keys(dialog) == ["image", "shown"]
    assert "3, 2, 1 as red, green, blue" in dialog.bands_box.combo.itemText(1)
    assert dialog.refine_job().params.bands is None  # still the image's own
    assert dialog.bands_box.note.text() == "the layer shows other bands as its colours"
    _choose(dialog, "shown")
    assert dialog.refine_job().params.bands == [3, 2, 1]
    assert dialog.bands_box.note.text() == ""
    _correction(dialog, layer, qgis_new_project)
    assert dialog.finetune_job().bands == [3, 2, 1]

    _show(layer, 1, 2, 3)  # shown as stored again: the choice is gone, and comes back
    assert _keys(dialog) == ["image"] and dialog.refine_job().params.bands is None
    _show(layer, 3, 2, 1)
    assert dialog.refine_job().params.bands == [3, 2, 1]


def _correction(dialog: MapRefinerDialog, image: QgsRasterLayer, project) -> None:  # noqa: ANN001
    """A correction layer with one building over the image's top-left corner, chosen."""
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle

    summary = dialog.model.summary
    labels = create_correction_layer(image, summary.class_names, summary.colours, project)
    e = image.extent()
    feature = QgsFeature(labels.fields())
    feature.setGeometry(
        QgsGeometry.fromRect(
            QgsRectangle(e.xMinimum(), e.yMaximum() - 9, e.xMinimum() + 9, e.yMaximum())
        )
    )
    feature["class"] = "building"
    assert labels.addFeature(feature)
    dialog.labels.set_layer(labels)
    dialog.labels.set_mode("sparse")


def test_a_grey_image_is_read_as_grey_where_it_would_be_refused(
    tiny_model, qgis_new_project, make_rgb, tmp_path
) -> None:  # noqa: ANN001
    grey = _copy(make_rgb(tmp_path / "rgb.tif"), tmp_path / "grey.tif", [2], "gray")
    layer = _layer(grey, qgis_new_project)
    assert isinstance(layer.renderer(), QgsSingleBandGrayRenderer)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    assert _keys(dialog) == ["grey"]  # one band: the model's 1, 2, 3 are not there
    assert dialog.refine_job().params.bands == [1, 1, 1]


def test_grey_is_offered_for_a_colour_image_shown_grey_but_not_chosen(
    rgb_layer, tiny_model, qgis_new_project
) -> None:  # noqa: ANN001
    rgb_layer.setRenderer(QgsSingleBandGrayRenderer(rgb_layer.dataProvider(), 2))
    dialog = _dialog(qgis_new_project, rgb_layer, tiny_model)
    assert _keys(dialog) == ["image", "grey"]
    assert dialog.refine_job().params.bands is None
    _choose(dialog, "grey")
    assert dialog.refine_job().params.bands == [2, 2, 2]


def test_named_colours_are_the_default_and_quite_another_display_is_offered(
    rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """Blue-green-red with its colours named: read 3, 2, 1 by default (as the CLI reads
    it), although QGIS shows it 1, 2, 3 (so those are offered as shown)."""
    named = _copy(rgb_path, tmp_path / "bgr_named.tif", [3, 2, 1], "blue,green,red")
    layer = _layer(named, qgis_new_project)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    assert _keys(dialog) == ["image", "shown"]
    assert "3, 2, 1 as red, green, blue" in dialog.bands_box.combo.itemText(0)
    assert dialog.refine_job().params.bands is None


def test_nothing_to_choose_without_a_raster_file_or_a_colour_model(
    rgb_layer, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    summary = read_model_summary(tiny_model)
    assert band_choices(None, summary) == [] and band_choices(rgb_layer, None) == []
    xyz = QgsRasterLayer(
        "type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png&zmax=19&zmin=0", "tiles", "wms"
    )
    assert band_choices(xyz, summary) == []  # fetched as red, green, blue
    from dataclasses import replace

    four = replace(summary, bands=(1, 2, 3, 4), band_names=("red", "green", "blue", "nir"))
    assert band_choices(rgb_layer, four) == []


def test_a_refine_and_a_round_on_the_bands_shown_read_the_image_as_its_original(
    plugin, qgis_new_project, tiny_model, make_rgb, tmp_path, wait_for_tasks, qgis_iface
) -> None:  # noqa: ANN001
    """Refined through the plugin's task, a blue-green-red copy read as the layer shows
    it (3, 2, 1) gives the original's class map, and the slider's maps follow; a round
    fitted so remembers the bands (ModelConfig.bands)."""
    from map_refiner.engine.modelfile.io import load_model
    from map_refiner.ui.settings import save_defaults

    original = make_rgb(tmp_path / "original.tif", size=96, seed=3)
    bgr = _copy(original, tmp_path / "bgr.tif", [3, 2, 1], None)
    qgis_new_project.setFileName(str(tmp_path / "project.qgz"))
    layers = [_layer(p, qgis_new_project, p.stem) for p in (original, bgr)]
    _show(layers[1], 3, 2, 1)
    save_defaults(DialogDefaults(model_path=str(tiny_model), device="cpu"))
    dialog = plugin.controller.ensure_dialog()
    maps = []
    for layer, key in zip(layers, ("image", "shown")):
        dialog.input_combo.setLayer(layer)
        _choose(dialog, key)
        job = dialog.refine_job()
        plugin.controller.start_refine(job)
        wait_for_tasks(timeout=120)
        assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
        ds = gdal.Open(str(job.params.out))
        maps.append(ds.ReadAsArray())
    assert job.params.bands == [3, 2, 1] and maps[0].std() > 0
    np.testing.assert_array_equal(maps[0], maps[1])
    assert plugin.controller.iteration_flow().source.bands == (3, 2, 1)  # Recompute reads them

    _correction(dialog, layers[1], qgis_new_project)
    dialog.labels.steps_spin.setValue(2)
    round_job = dialog.finetune_job()
    plugin.controller.start_finetune(round_job)
    wait_for_tasks(timeout=120)
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    assert load_model(round_job.out)[1].bands == [3, 2, 1]


def test_a_paletted_image_offers_its_colours(
    rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """A one-band paletted image (a PNG-8 made a GeoTIFF) is read as the red, green and
    blue of its colour table (rasters.read.open_image): the dialog offers those as the
    image's own bands, and the refine reads them with no bands chosen."""
    from helpers_engine import write_paletted

    write_paletted(tmp_path / "pct.tif", rgb_path)
    layer = _layer(tmp_path / "pct.tif", qgis_new_project)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    assert _keys(dialog) == ["image"]
    assert "1, 2, 3 as red, green, blue" in dialog.bands_box.combo.itemText(0)
    assert dialog.refine_job().params.bands is None


def test_the_colour_match_switch_reaches_the_refine_and_the_round(
    rgb_path, tiny_model, qgis_new_project
) -> None:  # noqa: ANN001
    """Ticked by default; unticked, the refine reads the image as it is and the round's
    fine-tune saves a model that never matches (RefineParams.match_colours, finetune)."""
    layer = _layer(rgb_path, qgis_new_project)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    _correction(dialog, layer, qgis_new_project)
    assert dialog.match_colours_check.isChecked()
    assert dialog.refine_job().params.match_colours and dialog.finetune_job().match_colours
    dialog.match_colours_check.setChecked(False)
    assert not dialog.refine_job().params.match_colours
    assert not dialog.finetune_job().match_colours


def test_four_bands_that_name_no_colours_offer_a_satellite_product_s_order(
    rgb_path, tiny_model, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    """Blue, green, red, infrared without colour names (a Planet or Maxar file): QGIS shows
    1, 2, 3 and the refine reads them unless told; the box offers 3, 2, 1 in one click,
    and once the layer is shown so, that is the shown choice (not offered twice)."""
    bgrn = _copy(rgb_path, tmp_path / "bgrn.tif", [3, 2, 1, 1], None)
    layer = _layer(bgrn, qgis_new_project)
    dialog = _dialog(qgis_new_project, layer, tiny_model)
    assert _keys(dialog) == ["image", "product"]
    label = dialog.bands_box.combo.itemText(1)
    assert "satellite product of 4 bands: bands 3, 2, 1 as red, green, blue" in label
    assert dialog.refine_job().params.bands is None
    assert "name no colours" in dialog.bands_box.note.text()
    _choose(dialog, "product")
    assert dialog.refine_job().params.bands == [3, 2, 1]
    assert dialog.bands_box.note.text() == ""
    _correction(dialog, layer, qgis_new_project)
    assert dialog.finetune_job().bands == [3, 2, 1]
    _show(layer, 3, 2, 1)
    assert _keys(dialog) == ["image", "shown"]
    named = _copy(rgb_path, tmp_path / "rgbn.tif", [1, 2, 3, 1], "red,green,blue,undefined")
    assert _keys(_dialog(qgis_new_project, _layer(named, qgis_new_project, "n"), tiny_model)) == [
        "image"
    ]
