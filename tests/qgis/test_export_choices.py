"""The dialog's export choices: which classes of a three-class map, a simplification
tolerance with borders shared between classes, and GeoPackage or shapefile, in the task
the Export button starts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsGeometry, QgsVectorLayer

RES = 0.5  # m per pixel
SIZE = 200  # pixels a side: 100 m
GT = (620000.0, RES, 0.0, 3350100.0, 0.0, -RES)
NAMES = ["background", "building", "road"]
COLOURS = [(220, 220, 220), (200, 40, 40), (90, 90, 90)]
SOURCE = "Map Refiner test: 5 RNN iterations"


def _turned(cx: float, cy: float, w: float, h: float, degrees: float):  # noqa: ANN202
    a = math.radians(degrees)
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((-w, -h), (w, -h), (w, h), (-w, h), (-w, -h)):
        ring.AddPoint_2D(
            GT[0] + cx + x / 2 * math.cos(a) - y / 2 * math.sin(a),
            GT[3] - SIZE * RES + cy + x / 2 * math.sin(a) + y / 2 * math.cos(a),
        )
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def write_three_class_map(path: Path) -> Path:
    """A slanted road (class 2) across a 0.5 m UTM grid and turned buildings (class 1),
    one of them against the road: pixel staircases for a tolerance to simplify."""
    from map_refiner.engine.rasters.write import style_class_band

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), SIZE, SIZE, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.Fill(0)
    src = ogr.GetDriverByName("Memory").CreateDataSource("m")
    for value, shapes in (
        (1, [(30, 70, 24, 12, 23), (70, 72, 20, 14, 31), (50, 42, 20, 12, 11)]),
        (2, [(50, 50, 160, 8, 11)]),  # the road: the last building lies against it
    ):
        lyr = src.CreateLayer(f"c{value}")
        for shape in shapes:
            feat = ogr.Feature(lyr.GetLayerDefn())
            feat.SetGeometry(_turned(*shape))
            lyr.CreateFeature(feat)
        gdal.RasterizeLayer(ds, [1], lyr, burn_values=[value])
    band.SetDescription(SOURCE)
    style_class_band(band, NAMES, COLOURS)
    ds = None
    return path


@pytest.fixture
def dialog(plugin, qgis_new_project, tmp_path):  # noqa: ANN001, ANN201
    from map_refiner.ui.layers import class_map_layer

    path = write_three_class_map(tmp_path / "three_map.tif")
    layer = class_map_layer(path, "three map", NAMES, COLOURS)
    qgis_new_project.addMapLayer(layer)
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    dialog.input_combo.setLayer(layer)
    return dialog


def export(dialog, project, wait_for_tasks) -> QgsVectorLayer:  # noqa: ANN001
    """Click Export and return the polygons layer it just added."""
    before = set(project.mapLayers())
    dialog.export_button.click()
    wait_for_tasks()
    added = [layer for lid, layer in project.mapLayers().items() if lid not in before]
    assert len(added) == 1 and isinstance(added[0], QgsVectorLayer), added
    return added[0]


def vertices(layer: QgsVectorLayer) -> int:
    return sum(sum(1 for _ in f.geometry().vertices()) for f in layer.getFeatures())


def test_the_class_list_is_the_maps_without_its_background(dialog) -> None:  # noqa: ANN001
    combo = dialog.export_classes_combo
    assert [combo.itemText(i) for i in range(combo.count())] == NAMES
    assert dialog.export_classes() == ["building", "road"]
    assert dialog.vectorize_job().classes() == ["building", "road"]
    dialog.export_background_check.setChecked(True)
    assert dialog.export_classes() == NAMES
    assert dialog.vectorize_job().classes() is None  # all of them
    dialog.export_background_check.setChecked(False)
    dialog.set_export_classes(["road"])
    assert not dialog.export_background_check.isChecked()
    assert dialog.vectorize_job().classes() == ["road"]
    dialog.set_export_classes([])
    with pytest.raises(Exception, match="at least one class"):
        dialog.vectorize_job()


def test_a_three_class_map_exports_only_the_chosen_classes(
    dialog,
    qgis_new_project,
    wait_for_tasks,  # noqa: ANN001
) -> None:
    layer = export(dialog, qgis_new_project, wait_for_tasks)
    assert {f["class"] for f in layer.getFeatures()} == {"building", "road"}
    dialog.set_export_classes(["building"])
    layer = export(dialog, qgis_new_project, wait_for_tasks)
    classes = [f["class"] for f in layer.getFeatures()]
    assert set(classes) == {"building"} and len(classes) == 3


def test_a_tolerance_simplifies_and_leaves_no_gap_between_classes(
    dialog,
    qgis_new_project,
    wait_for_tasks,  # noqa: ANN001
) -> None:
    dialog.export_background_check.setChecked(True)  # every class: the map covered
    dialog.min_area_spin.setValue(0.0)
    assert dialog.simplify_spin.value() == 0.0  # no simplification by default
    counts, covered = {}, {}
    for tolerance in (0.0, 1.0):
        dialog.simplify_spin.setValue(tolerance)
        assert dialog.vectorize_job().simplify_m == tolerance
        assert dialog.vectorize_job().shared_borders == (tolerance > 0)
        layer = export(dialog, qgis_new_project, wait_for_tasks)
        counts[tolerance] = vertices(layer)
        geoms = [f.geometry() for f in layer.getFeatures()]
        union = QgsGeometry.unaryUnion(geoms)
        covered[tolerance] = (sum(g.area() for g in geoms), union.area())
        by_class = {
            name: QgsGeometry.unaryUnion(
                [f.geometry() for f in layer.getFeatures() if f["class"] == name]
            )
            for name in ("building", "road")
        }
        # the building against the road still meets it along its whole side
        assert by_class["building"].intersection(by_class["road"]).length() > 15.0
        assert by_class["building"].intersection(by_class["road"]).area() < 0.01
    assert counts[1.0] < counts[0.0] / 2, counts
    total, union = covered[1.0]
    assert total == pytest.approx((SIZE * RES) ** 2, abs=0.01)  # no overlap
    assert union == pytest.approx((SIZE * RES) ** 2, abs=0.01)  # no gap


@pytest.mark.parametrize("name,ext", [("GeoPackage", ".gpkg"), ("Shapefile", ".shp")])
def test_geopackage_or_shapefile_with_the_attributes(
    dialog,
    qgis_new_project,
    wait_for_tasks,
    tmp_path,
    name,
    ext,  # noqa: ANN001
) -> None:
    assert dialog.format_combo.currentData() == "GeoPackage"  # the default
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(name))
    job = dialog.vectorize_job()
    assert job.out.name == f"three_map_polygons{ext}"
    layer = export(dialog, qgis_new_project, wait_for_tasks)
    assert Path(layer.source().split("|")[0]).suffix == ext
    assert job.out.exists()
    fields = set(layer.fields().names())
    assert {"class_id", "class", "area_m2", "source"} <= fields, fields
    feats = list(layer.getFeatures())
    assert {f["source"] for f in feats} == {SOURCE}
    assert all(f["area_m2"] > 2.0 for f in feats)
    # an existing file is kept: the next export is numbered beside it
    again = dialog.vectorize_job()
    assert again.out.name == f"three_map_polygons_2{ext}"


def _model_at(folder: Path, resolution_m: float) -> Path:
    """A seeded two-class model working at ``resolution_m`` m/pixel."""
    import torch

    from map_refiner.engine.modelfile.config import ModelConfig, make_classes
    from map_refiner.engine.modelfile.io import build_model, save_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        classes=make_classes(["background", "building"]),
        ground_resolution_m=resolution_m,
        name=f"{resolution_m:g} m model",
    )
    return save_model(build_model(cfg), cfg, folder / f"model_{resolution_m:g}m.safetensors")


def test_the_smallest_polygon_follows_the_model_until_changed_by_hand(
    dialog,
    tmp_path,  # noqa: ANN001
) -> None:
    """2 x 2 of the chosen model's pixels; a value typed by hand stays through model
    changes, and the clear button gives the model's value back."""
    spin = dialog.min_area_spin
    assert dialog.model.summary.resolution_m == 0.6  # the bundled model
    assert spin.value() == 1.44
    coarse = _model_at(tmp_path, 2.0)
    dialog.model.set_model_path(str(coarse))
    assert spin.value() == 16.0 and dialog.vectorize_job().min_area_m2 == 16.0
    dialog.model.set_model_path(str(tmp_path / "missing.safetensors"))  # unusable: kept
    assert dialog.model.summary is None and spin.value() == 16.0
    dialog.model.set_model_path("")
    assert spin.value() == 1.44

    spin.setValue(5.0)  # by hand
    dialog.model.set_model_path(str(coarse))
    assert spin.value() == 5.0 and dialog.vectorize_job().min_area_m2 == 5.0
    dialog.model.set_model_path("")
    assert spin.value() == 5.0
    spin.clear()  # the clear button: the model's value, followed again
    assert spin.value() == 1.44
    dialog.model.set_model_path(str(coarse))
    assert spin.value() == 16.0
