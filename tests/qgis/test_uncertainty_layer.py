"""The uncertainty layer follows the slider; the ranked regions are a layer and a list,
and a click on the list zooms the map there."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsRasterLayer, QgsSingleBandPseudoColorRenderer
from test_iteration_slider import refine_with_slider


@pytest.fixture
def austin_flow(plugin, austin_rgb, tmp_path, qgis_new_project, wait_until, wait_for_tasks):  # noqa: ANN001, ANN201
    layer = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(layer)
    flow = refine_with_slider(
        plugin,
        layer,
        None,
        tmp_path / "austin_refined.tif",
        wait_until,
        wait_for_tasks,
        iterations=5,
    )
    yield flow
    wait_for_tasks()


def _mean_in(path: str, band: int, rect, gt) -> float:  # noqa: ANN001
    ds = gdal.Open(path)
    data = ds.GetRasterBand(band).ReadAsArray()
    x0 = int(round((rect.xMinimum() - gt[0]) / gt[1]))
    x1 = int(round((rect.xMaximum() - gt[0]) / gt[1]))
    y0 = int(round((gt[3] - rect.yMaximum()) / -gt[5]))
    y1 = int(round((gt[3] - rect.yMinimum()) / -gt[5]))
    return float(np.nanmean(data[y0:y1, x0:x1]))


def test_uncertainty_layer_follows_the_slider(austin_flow, qgis_new_project) -> None:  # noqa: ANN001
    flow, dock = austin_flow, austin_flow.dock
    unc = flow._layer("uncertainty")
    assert isinstance(unc.renderer(), QgsSingleBandPseudoColorRenderer)
    # the bundled model runs its detail iterations on 0.3 m Austin, and the name says so
    assert unc.renderer().band() == 6
    assert unc.name().endswith("uncertainty (entropy), iteration 5, then 2 at 0.3 m")
    node = qgis_new_project.layerTreeRoot().findLayer(unc.id())
    assert not node.isVisible()  # off until asked for, and then see-through
    assert abs(unc.opacity() - 0.6) < 1e-6
    dock.uncertainty_check.setChecked(True)
    assert node.isVisible()
    dock.slider.setValue(1)
    assert unc.renderer().band() == 2
    ds = gdal.Open(unc.source())
    means = [float(np.nanmean(ds.GetRasterBand(b).ReadAsArray())) for b in (1, 3, 6)]
    # the iterations make the map surer (the bundled RNN's first step raises the
    # uncertainty a little, then every step lowers it; tests/test_uncertainty.py)
    assert means[0] > means[2] and means[1] > means[2]


def test_regions_are_ranked_listed_and_drawn(austin_flow) -> None:  # noqa: ANN001
    flow, dock = austin_flow, austin_flow.dock
    regions = flow._layer("regions")
    feats = sorted(regions.getFeatures(), key=lambda f: f["rank"])
    assert len(feats) == dock.regions_list.count() == 5
    assert [f["rank"] for f in feats] == list(range(1, 6))
    boxes = [f.geometry().boundingBox() for f in feats]  # no two rectangles overlap
    assert not any(a.intersect(b).area() > 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    scores = [f["score"] for f in feats]
    assert scores == sorted(scores, reverse=True)
    assert dock.regions_list.item(0).text().startswith(f"1.  uncertainty {scores[0]:.2f}  ·  ")
    unc = flow._layer("uncertainty")
    gt = flow.result.trajectory.window_geotransform
    mean_all = float(np.nanmean(flow.result.trajectory.uncertainty[5].astype(np.float32)))
    top = _mean_in(unc.source(), 6, flow.rects[0], gt)
    assert top == pytest.approx(scores[0], abs=0.01) and top > 2 * mean_all
    assert regions.labelsEnabled()
    before = [dock.regions_list.item(i).text() for i in range(5)]
    dock.slider.setValue(0)  # the coarse map is unsure elsewhere
    assert [dock.regions_list.item(i).text() for i in range(5)] != before


def test_a_click_on_a_region_zooms_the_map_there(austin_flow, qgis_iface) -> None:  # noqa: ANN001
    flow, dock = austin_flow, austin_flow.dock
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(flow._layer("classes").crs())
    rect = flow.rects[2]
    dock.regions_list.itemClicked.emit(dock.regions_list.item(2))
    extent = canvas.extent()
    assert extent.contains(rect)
    assert extent.center().x() == pytest.approx(rect.center().x(), abs=0.5)
    assert extent.center().y() == pytest.approx(rect.center().y(), abs=0.5)
    # twice the region, or 30 m where it is smaller (UTM: metres), in the direction that
    # binds; the other follows the canvas's shape (which direction binds depends on the
    # region's shape against the canvas's)
    from map_refiner.ui.iterations.flow import ZOOM_MIN_M

    width, height = max(rect.width(), ZOOM_MIN_M), max(rect.height(), ZOOM_MIN_M)
    wide, tall = extent.width() / (2 * width), extent.height() / (2 * height)
    assert min(wide, tall) == pytest.approx(1.0, rel=0.05) and max(wide, tall) >= 0.95


def test_the_arrow_keys_step_through_the_list_and_a_click_zooms_once(
    austin_flow, monkeypatch
) -> None:  # noqa: ANN001
    """Choosing a row (the arrow keys, or a click's press) zooms there; the click's release
    on that row does not zoom a second time, a later click on it does."""
    from map_refiner.ui.iterations import dock as dock_module

    dock = austin_flow.dock
    zooms: list[int] = []
    dock.region_activated.connect(zooms.append)
    dock.regions_list.setCurrentRow(0)
    dock.regions_list.setCurrentRow(1)  # the Down key does this
    assert zooms == [0, 1]
    dock.regions_list.itemClicked.emit(dock.regions_list.item(1))  # the same click's release
    assert zooms == [0, 1]
    now = dock_module.time.monotonic()
    monkeypatch.setattr(dock_module.time, "monotonic", lambda: now + dock_module.REZOOM_S + 1)
    dock.regions_list.itemClicked.emit(dock.regions_list.item(1))  # clicked again later
    assert zooms == [0, 1, 1]


def test_margin_is_the_other_uncertainty(austin_flow, wait_until) -> None:  # noqa: ANN001
    flow, dock = austin_flow, austin_flow.dock
    dock.kind_combo.setCurrentIndex(dock.kind_combo.findData("margin"))
    dock.max_spin.setValue(6)
    dock.recompute_button.click()
    wait_until(lambda: flow.task is None and flow.result.trajectory.kind == "margin", 120)
    assert flow.result.trajectory.iterations == 6 and dock.slider.maximum() == 6
    assert flow._layer("uncertainty").name().endswith("uncertainty (margin), iteration 5")
