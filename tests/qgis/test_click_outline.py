"""*Outline with a click* (ui/click_outline.py): a click inside an object adds its outline,
grown from the dialog's image, to the correction layer as the class chosen beside the
button; one Undo takes it away; errors say what to do; the button holds the map tool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import Qgis, QgsPointXY, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsMapToolPan
from qgis.PyQt.QtCore import Qt

from map_refiner.ui.click_outline import outline_bands
from map_refiner.ui.dialog.correction_layer import create_correction_layer

GT = (620000.0, 0.6, 0.0, 3350000.0, 0.0, -0.6)  # UTM 14N, as the other fixtures


@pytest.fixture
def roof_layer(tmp_path: Path, qgis_new_project) -> QgsRasterLayer:  # noqa: ANN001
    """Noisy ground with a red roof at rows 20-49, columns 30-69 (18 x 24 m)."""
    rng = np.random.default_rng(0)
    img = np.stack([rng.normal(m, 8, (100, 100)) for m in (95, 110, 80)])
    for band, value in enumerate((200, 90, 70)):
        img[band, 20:50, 30:70] = value + rng.normal(0, 3, (30, 40))
    path = tmp_path / "roofs.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 100, 100, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds.SetProjection(srs.ExportToWkt())
    for band in range(3):
        ds.GetRasterBand(band + 1).WriteArray(np.clip(img[band], 1, 255).astype(np.uint8))
    ds = None
    layer = QgsRasterLayer(str(path), "roofs")
    assert layer.isValid()
    qgis_new_project.addMapLayer(layer)
    return layer


@pytest.fixture
def flow(plugin, roof_layer, tiny_model, qgis_iface):  # noqa: ANN001, ANN201
    """The dialog on the tiny model (background, building) and the roofs image, the
    canvas in the image's CRS."""
    from map_refiner.ui.settings import DialogDefaults, save_defaults

    save_defaults(DialogDefaults(model_path=str(tiny_model)))
    dialog = plugin.controller.ensure_dialog()
    dialog.input_combo.setLayer(roof_layer)
    qgis_iface.mapCanvas().setDestinationCrs(roof_layer.crs())
    return plugin.controller, dialog


def _pixel(col: float, row: float) -> QgsPointXY:
    return QgsPointXY(GT[0] + (col + 0.5) * GT[1], GT[3] + (row + 0.5) * GT[5])


def test_a_click_on_a_roof_adds_its_outline_as_the_class_chosen(
    flow, roof_layer, qgis_iface, qgis_new_project
) -> None:  # noqa: ANN001
    controller, dialog = flow
    summary = dialog.model.summary
    labels = create_correction_layer(
        roof_layer, summary.class_names, summary.colours, qgis_new_project
    )
    dialog.labels.set_layer(labels, "class")
    # the model's classes fill the list; an object class is chosen first
    combo = dialog.labels.outline_class_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["background", "building"]
    assert dialog.labels.outline_class() == "building"
    tool = controller.click_outline_flow()

    tool.outline(_pixel(40, 30))
    bar = qgis_iface.messageBar()
    assert bar.get_messages(Qgis.MessageLevel.Critical) == []
    (feature,) = list(labels.getFeatures())
    assert feature["class"] == "building"
    outline = feature.geometry().boundingBox()
    # the roof, just inside its edges
    assert outline.xMinimum() == pytest.approx(GT[0] + 30 * 0.6, abs=0.7)
    assert outline.xMaximum() == pytest.approx(GT[0] + 70 * 0.6, abs=0.7)
    assert outline.yMaximum() == pytest.approx(GT[3] - 20 * 0.6, abs=0.7)
    assert feature.geometry().area() == pytest.approx(24 * 18, rel=0.12)
    success = bar.get_messages(Qgis.MessageLevel.Success)[-1]
    assert "as building in" in success and "m²" in success, success

    combo.setCurrentIndex(combo.findText("background"))
    tool.outline(_pixel(85, 85))  # ground drawn as background
    assert sorted(f["class"] for f in labels.getFeatures()) == ["background", "building"]
    labels.undoStack().undo()  # one edit command a click: Undo takes the last away
    assert [f["class"] for f in labels.getFeatures()] == ["building"]

    # on the canvas: the tool's left click outlines, the right button stays QGIS's
    dialog.labels.outline_button.setChecked(True)
    combo.setCurrentIndex(combo.findText("background"))
    tool.tool.canvasClicked.emit(_pixel(10, 85), Qt.MouseButton.RightButton)
    assert labels.featureCount() == 1
    tool.tool.canvasClicked.emit(_pixel(10, 85), Qt.MouseButton.LeftButton)
    assert sorted(f["class"] for f in labels.getFeatures()) == ["background", "building"]


def test_clicks_that_cannot_be_outlined_say_why(flow, qgis_iface, qgis_new_project) -> None:  # noqa: ANN001
    controller, dialog = flow
    tool = controller.click_outline_flow()
    bar = qgis_iface.messageBar()

    def last_error() -> str:
        return bar.get_messages(Qgis.MessageLevel.Critical)[-1]

    dialog.labels.set_layer(None)
    tool.outline(_pixel(40, 30))
    assert "Choose or create a correction layer first" in last_error()
    labels = QgsVectorLayer("Polygon?crs=EPSG:26914&field=class:string", "c", "memory")
    qgis_new_project.addMapLayer(labels)
    dialog.labels.set_layer(labels, "class")
    tool.outline(QgsPointXY(GT[0] - 500, GT[3]))  # beside the image
    assert "Click on “roofs”: the outline is read from it" in last_error()
    dialog.input_combo.setLayer(None)
    tool.outline(_pixel(40, 30))
    assert "Choose the image in the dialog's input first" in last_error()
    assert labels.featureCount() == 0


def test_the_button_holds_the_map_tool_until_another_is_chosen(flow, qgis_iface) -> None:  # noqa: ANN001
    controller, dialog = flow
    canvas = qgis_iface.mapCanvas()
    button = dialog.labels.outline_button
    button.setChecked(True)
    assert canvas.mapTool() is controller.click_outline.tool
    assert (
        "Choose or create a correction layer first"
        in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning)[-1]
    )
    # the other correction tool takes the canvas: this button goes up
    dialog.labels.turn_back_button.setChecked(True)
    assert not button.isChecked()
    canvas.setMapTool(QgsMapToolPan(canvas))
    assert not dialog.labels.turn_back_button.isChecked()
    button.setChecked(True)
    button.setChecked(False)
    assert canvas.mapTool() is not controller.click_outline.tool


def test_a_click_reads_the_dialog_s_bands_else_the_model_s_else_the_first_three() -> None:
    assert outline_bands([3, 2, 1], [1, 2, 3], 4) == [3, 2, 1]
    assert outline_bands(None, [1, 2, 3], 4) == [1, 2, 3]
    assert outline_bands(None, [4, 3, 2], 3) == [1, 2, 3]  # the model's not in the image
    assert outline_bands(None, [], 1) == [1]  # grey
