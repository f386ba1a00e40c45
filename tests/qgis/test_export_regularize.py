"""The dialog's export with *Regularise building outlines*: the building polygons of a
class map come out right-angled along the buildings' own axes instead of as the pixel
staircase, in the task the Export button starts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import Qgis
from test_export_choices import export as export_layer

RES = 0.5  # m per pixel
SIZE = 200  # pixels a side: 100 m
GT = (620000.0, RES, 0.0, 3350100.0, 0.0, -RES)
NAMES, COLOURS = ["background", "building"], [(220, 220, 220), (200, 40, 40)]
#: Buildings in metres from the map's lower left corner, each turned about its centre.
RECTANGLE = [(0.0, 0.0), (24.0, 0.0), (24.0, 12.0), (0.0, 12.0)]
L_SHAPE = [(0.0, 0.0), (30.0, 0.0), (30.0, 10.0), (14.0, 10.0), (14.0, 26.0), (0.0, 26.0)]
BUILDINGS = [  # outline, where its first corner goes, turn in degrees
    (RECTANGLE, (12.0, 60.0), 17.0),
    (L_SHAPE, (55.0, 50.0), 38.0),
    (RECTANGLE, (20.0, 12.0), 29.0),
]


def building(points: list[tuple[float, float]], at: tuple[float, float], degrees: float):  # noqa: ANN201
    a = math.radians(degrees)
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in points + points[:1]:
        ring.AddPoint_2D(
            GT[0] + at[0] + x * math.cos(a) - y * math.sin(a),
            GT[3] - SIZE * RES + at[1] + x * math.sin(a) + y * math.cos(a),
        )
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def write_class_map(path: Path, names: list[str]) -> Path:
    """The buildings burned (class 1) on a 0.5 m UTM grid, styled as a refine writes it."""
    from map_refiner.engine.rasters.write import style_class_band

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), SIZE, SIZE, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(GT)
    ds.SetProjection(srs.ExportToWkt())
    src = ogr.GetDriverByName("Memory").CreateDataSource("buildings")
    lyr = src.CreateLayer("b")
    for points, at, degrees in BUILDINGS:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(building(points, at, degrees))
        lyr.CreateFeature(feat)
    ds.GetRasterBand(1).Fill(0)
    gdal.RasterizeLayer(ds, [1], lyr, burn_values=[1])
    style_class_band(ds.GetRasterBand(1), names, COLOURS)
    ds = None
    return path


def corners(geometry) -> list[tuple[float, float]]:  # noqa: ANN001
    """Each exterior corner as (turn in degrees, direction of the edge leaving it in
    degrees modulo 90); points on a straight line are no corners."""
    poly = geometry.constGet()
    ring = (
        poly.exteriorRing() if hasattr(poly, "exteriorRing") else poly.geometryN(0).exteriorRing()
    )
    xy = np.array([(p.x(), p.y()) for p in ring.points()])[:-1]
    edges = np.roll(xy, -1, axis=0) - xy
    out = []
    for before, after in zip(np.roll(edges, 1, axis=0), edges):
        cos = before @ after / (np.linalg.norm(before) * np.linalg.norm(after))
        turn = math.degrees(math.acos(np.clip(cos, -1.0, 1.0)))
        if turn > 1.0:
            out.append((turn, math.degrees(math.atan2(after[1], after[0])) % 90.0))
    return out


def export(dialog, project, wait_for_tasks) -> list:  # noqa: ANN001
    """Click Export and return the polygons layer's features (the one it just added)."""
    layer = export_layer(dialog, project, wait_for_tasks)
    return sorted(layer.getFeatures(), key=lambda f: f.geometry().centroid().asPoint().x())


def dialog_on(plugin, project, path: Path, names: list[str]):  # noqa: ANN001, ANN201
    """The plugin's dialog with a class map of ``names`` written at ``path`` as input."""
    from map_refiner.ui.layers import class_map_layer

    write_class_map(path, names)
    layer = class_map_layer(path, path.stem.replace("_", " "), names, COLOURS)
    project.addMapLayer(layer)
    plugin.controller.show_dialog()
    dialog = plugin.controller.dialog
    dialog.input_combo.setLayer(layer)
    return dialog


@pytest.fixture
def dialog_on_map(plugin, qgis_new_project, tmp_path):  # noqa: ANN001, ANN201
    return dialog_on(plugin, qgis_new_project, tmp_path / "buildings_map.tif", NAMES)


def test_regularise_is_off_by_default_and_its_tolerance_follows_the_box(dialog_on_map) -> None:  # noqa: ANN001
    dialog = dialog_on_map
    assert not dialog.regularize_check.isChecked()
    assert not dialog.regularize_spin.isEnabled()
    assert dialog.regularize_spin.value() == 0.0  # "default tolerance": the engine's
    job = dialog.vectorize_job()
    assert (job.regularize, job.regularize_m) == (False, None)
    dialog.regularize_check.setChecked(True)
    assert dialog.regularize_spin.isEnabled()
    assert (dialog.vectorize_job().regularize, dialog.vectorize_job().regularize_m) == (True, None)
    dialog.regularize_spin.setValue(1.5)
    assert dialog.vectorize_job().regularize_m == 1.5


def test_regularised_export_gives_right_angled_outlines_on_the_buildings_axes(
    dialog_on_map, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    dialog = dialog_on_map
    raw = export(dialog, qgis_new_project, wait_for_tasks)
    dialog.regularize_check.setChecked(True)
    regular = export(dialog, qgis_new_project, wait_for_tasks)
    assert qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical) == []
    assert dialog.message_bar.items() == []
    assert len(raw) == len(regular) == len(BUILDINGS)

    truths = sorted(
        (building(*b) for b in BUILDINGS), key=lambda g: g.Centroid().GetX()
    )  # the same order as the features: by centroid x
    for r, g, truth, (points, _at, degrees) in zip(
        raw, regular, truths, sorted(BUILDINGS, key=lambda b: building(*b).Centroid().GetX())
    ):
        staircase, squared = corners(r.geometry()), corners(g.geometry())
        # without: the pixel staircase, every edge along the grid, dozens of corners
        assert len(staircase) > 5 * len(points)
        assert all(min(d, 90.0 - d) < 1e-6 for _, d in staircase)
        # with: the building's own corners, right angles, edges along its turned axes
        assert len(squared) == len(points), squared
        assert all(abs(turn - 90.0) < 1.0 for turn, _ in squared), squared
        assert all(abs(d - degrees % 90.0) < 2.0 for _, d in squared), (degrees, squared)
        wkt = ogr.CreateGeometryFromWkt(g.geometry().asWkt())
        iou = wkt.Intersection(truth).GetArea() / wkt.Union(truth).GetArea()
        assert iou > 0.97, iou
        assert g["class"] == "building"


def test_the_tolerance_reaches_the_engine(dialog_on_map, qgis_new_project, wait_for_tasks) -> None:  # noqa: ANN001
    """Under a pixel (0.1 m on 0.5 m pixels) nothing may cut the staircase: it stays."""
    dialog = dialog_on_map
    dialog.regularize_check.setChecked(True)
    dialog.regularize_spin.setValue(0.1)
    tight = export(dialog, qgis_new_project, wait_for_tasks)
    dialog.regularize_spin.setValue(1.0)
    loose = export(dialog, qgis_new_project, wait_for_tasks)
    n_tight = sum(len(corners(f.geometry())) for f in tight)
    n_loose = sum(len(corners(f.geometry())) for f in loose)
    assert n_loose == sum(len(points) for points, _, _ in BUILDINGS)
    assert n_tight > 3 * n_loose, (n_tight, n_loose)


def test_a_map_without_buildings_is_refused_before_any_task(
    plugin, qgis_new_project, tmp_path
) -> None:  # noqa: ANN001
    names = ["background", "water"]
    dialog = dialog_on(plugin, qgis_new_project, tmp_path / "water_map.tif", names)
    dialog.regularize_check.setChecked(True)
    dialog.export_button.click()
    assert plugin.controller.tasks == []
    texts = [item.text() for item in dialog.message_bar.items()]
    assert len(texts) == 1 and "has no building class to regularise" in texts[0], texts
