"""After a refine, the dock's slider shows iterations 0..N that the refine's own pass
kept, by switching the layer's band (nothing recomputed), plays them, and "Keep"
writes the chosen iteration from them, which Export polygons then uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from map_refiner.engine.refine.params import RefineParams
from map_refiner.engine.refine.pipeline import refine_raster
from map_refiner.ui.iterations.flow import IterationsFlow
from map_refiner.ui.jobs.refine_job import RefineJob
from map_refiner.ui.jobs.trajectory_job import view_window
from map_refiner.ui.jobs.vectorize_job import build_vectorize_job


def refine_with_slider(
    plugin,
    layer: QgsRasterLayer,
    model: Path | None,
    out: Path,  # noqa: ANN001
    wait_until,
    wait_for_tasks,
    iterations: int = 2,
    **params,  # noqa: ANN003 - more RefineParams
) -> IterationsFlow:
    job = RefineJob(
        RefineParams(
            image=Path(layer.source()),
            out=out,
            model_path=model,
            iterations=iterations,
            device="cpu",
            **params,
        ),
        layer.name(),
        layer.id(),
    )
    plugin.controller.start_refine(job)
    controller = plugin.controller

    def slider_ready() -> bool:  # the refine, then the iterations task it starts
        flow = controller.iterations
        return flow is not None and flow.result is not None and flow.task is None

    wait_until(slider_ready, 300)
    wait_for_tasks()
    return controller.iterations


def _classes(flow: IterationsFlow) -> QgsRasterLayer:
    return flow._layer("classes")


def _band(path: str, band: int) -> np.ndarray:
    ds = gdal.Open(path)  # kept alive while its band is read
    return ds.GetRasterBand(band).ReadAsArray()


def _refined(
    image: Path,
    model: Path | None,
    iterations: int,
    out: Path,
    **params,  # noqa: ANN003 - more RefineParams
) -> np.ndarray:
    refine_raster(
        RefineParams(
            image=image, out=out, model_path=model, iterations=iterations, device="cpu", **params
        )
    )
    return gdal.Open(str(out)).ReadAsArray()


def _no_networks_run(monkeypatch) -> None:  # noqa: ANN001
    """From here on, running the networks over the raster again fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError("the networks ran again")

    monkeypatch.setattr("map_refiner.engine.refine.pipeline.refine_raster", boom)
    monkeypatch.setattr("map_refiner.engine.refine.trajectory.compute_trajectory", boom)


def test_slider_switches_bands_without_recomputing(
    plugin,
    rgb_layer,
    rgb_path,
    tiny_model,  # noqa: ANN001
    tmp_path,
    qgis_new_project,
    wait_until,
    wait_for_tasks,
    monkeypatch,
) -> None:
    calls = []
    real = refine_raster

    def counted(params, **kwargs):  # noqa: ANN001, ANN202
        calls.append(params)
        return real(params, **kwargs)

    monkeypatch.setattr("map_refiner.engine.refine.pipeline.refine_raster", counted)
    monkeypatch.setattr(
        "map_refiner.engine.refine.trajectory.compute_trajectory",
        lambda *a, **k: pytest.fail("the slider's maps were recomputed"),
    )
    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 7
    )
    assert len(calls) == 1 and calls[0].keep_iterations is not None  # one pass, maps kept
    dock = flow.dock
    assert (dock.slider.minimum(), dock.slider.maximum()) == (0, 7)  # past the trained 2
    assert dock.slider.value() == 7 and dock.keep_button.text() == "Keep iteration 7"
    group = qgis_new_project.layerTreeRoot().findGroup("scene — iterations")
    assert [n.layer().name() for n in group.findLayers()] == [
        "scene — where to draw next",
        "scene — uncertainty (entropy), iteration 7",
        "scene — iteration 7 of 7",
    ]
    classes = _classes(flow)
    assert isinstance(classes.renderer(), QgsPalettedRasterRenderer)
    assert classes.renderer().band() == 8 and classes.bandCount() == 8
    np.testing.assert_array_equal(
        _band(classes.source(), 8), gdal.Open(str(tmp_path / "r.tif")).ReadAsArray()
    )
    computed = flow.result
    dock.slider.setValue(3)
    assert flow.task is None and flow.result is computed
    assert QgsApplication.taskManager().countActiveTasks() == 0
    assert classes.renderer().band() == 4 and classes.name() == "scene — iteration 3 of 7"
    assert [c.label for c in classes.renderer().classes()] == ["background", "building"]
    assert flow._layer("uncertainty").renderer().band() == 4
    shown = _band(classes.source(), 4)
    np.testing.assert_array_equal(shown, _refined(rgb_path, tiny_model, 3, tmp_path / "r3.tif"))
    dock.spin.setValue(0)
    assert dock.slider.value() == 0 and classes.renderer().band() == 1


def test_play_runs_to_the_last_iteration(
    plugin,
    rgb_layer,
    tiny_model,
    tmp_path,  # noqa: ANN001
    wait_for_tasks,
    wait_until,
) -> None:
    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks, 5
    )
    flow.dock.slider.setValue(3)
    flow.dock.play_button.setChecked(True)
    assert flow.timer.isActive() and flow.dock.play_button.text() == "⏸"
    wait_until(lambda: not flow.dock.play_button.isChecked(), 20)
    assert flow.dock.slider.value() == 5 and not flow.timer.isActive()
    flow.dock.play_button.setChecked(True)  # from the end, play starts again at 0
    assert flow.dock.slider.value() == 0
    flow.dock.play_button.setChecked(False)


def test_keep_writes_the_chosen_iteration_and_export_uses_it(
    plugin,
    rgb_layer,
    rgb_path,  # noqa: ANN001
    tiny_model,
    tmp_path,
    wait_until,
    qgis_new_project,
    wait_for_tasks,
    monkeypatch,
) -> None:
    out = tmp_path / "refined.tif"
    flow = refine_with_slider(plugin, rgb_layer, tiny_model, out, wait_until, wait_for_tasks, 5)
    computed = flow.result
    expected = _refined(rgb_path, tiny_model, 4, tmp_path / "check.tif")
    _no_networks_run(monkeypatch)
    flow.dock.slider.setValue(4)
    flow.dock.keep_button.click()
    wait_for_tasks()
    kept = tmp_path / "refined_it4.tif"
    assert kept.exists() and flow.result is computed  # the slider's maps were not recomputed
    np.testing.assert_array_equal(gdal.Open(str(kept)).ReadAsArray(), expected)
    ds, check = gdal.Open(str(kept)), gdal.Open(str(tmp_path / "check.tif"))
    band, same = ds.GetRasterBand(1), check.GetRasterBand(1)
    assert band.GetDescription() == same.GetDescription() == "tiny test model: 4 RNN iterations"
    assert band.GetNoDataValue() == 255 and band.GetColorTable().GetCount() == 256
    assert band.GetColorTable().GetColorEntry(1) == same.GetColorTable().GetColorEntry(1)
    assert len(qgis_new_project.mapLayersByName("scene — refined by tiny test model (4 it.)")) == 1
    assert plugin.controller.refined[rgb_path].path == kept
    job = build_vectorize_job(rgb_layer, plugin.controller.refined, qgis_new_project)
    assert job.classmap.path == kept


def test_keep_with_scores_refines_that_iteration(
    plugin, rgb_layer, tiny_model, tmp_path, wait_until, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    """The slider holds class maps, not probabilities: with scores, keep refines."""
    out = tmp_path / "refined.tif"
    job = RefineJob(
        RefineParams(
            image=Path(rgb_layer.source()),
            out=out,
            model_path=tiny_model,
            iterations=3,
            device="cpu",
            scores=tmp_path / "refined_scores.tif",
        ),
        rgb_layer.name(),
        rgb_layer.id(),
    )
    controller = plugin.controller
    controller.start_refine(job)
    wait_until(lambda: controller.iterations is not None and controller.iterations.result, 300)
    wait_for_tasks()
    keep = controller.keep_iteration(1)
    wait_for_tasks()
    assert keep is not None
    kept = tmp_path / "refined_it1.tif"
    assert kept.exists() and (tmp_path / "refined_it1_scores.tif").exists()
    assert len(qgis_new_project.mapLayersByName("scene — refined by tiny test model (1 it.)")) == 1


def test_view_window_maps_the_canvas_extent_to_pixels(rgb_layer) -> None:  # noqa: ANN001
    # scene.tif: 48 x 48 pixels of 0.6 m from (620000, 3350000)
    extent = QgsRectangle(620006.0, 3349982.0, 620012.0, 3349994.0)
    assert view_window(rgb_layer, extent, rgb_layer.crs()) == (10, 10, 20, 30)
    beyond = QgsRectangle(619990.0, 3349900.0, 620100.0, 3350100.0)
    assert view_window(rgb_layer, beyond, rgb_layer.crs()) == (0, 0, 48, 48)
    assert view_window(rgb_layer, QgsRectangle(0, 0, 1, 1), rgb_layer.crs()) is None


def test_a_raster_larger_than_the_cache_uses_the_view(
    plugin,
    rgb_layer,
    tiny_model,
    tmp_path,  # noqa: ANN001
    wait_until,
    wait_for_tasks,
    monkeypatch,
) -> None:
    monkeypatch.setattr("map_refiner.engine.refine.params.MAX_PIXELS", 1000)  # the dock's
    monkeypatch.setattr("map_refiner.engine.refine.trajectory.MAX_PIXELS", 1000)  # the pass's
    monkeypatch.setattr(
        "map_refiner.ui.iterations.flow.view_window", lambda layer, extent, crs: (5, 6, 30, 40)
    )
    flow = refine_with_slider(
        plugin, rgb_layer, tiny_model, tmp_path / "r.tif", wait_until, wait_for_tasks
    )
    traj = flow.result.trajectory
    assert traj.window == (5, 6, 30, 40) and not flow.result.whole_raster
    assert traj.classes.shape == (3, 34, 25)
    assert "view, pixels 5–30 × 6–40" in flow.dock.title_label.text()


def test_the_slider_shows_what_refine_wrote(
    plugin,
    austin_rgb,
    tmp_path,
    qgis_new_project,  # noqa: ANN001
    wait_until,
    wait_for_tasks,
) -> None:
    """The bundled model on the Austin tile: iteration 5 on the slider is the written map."""
    layer = QgsRasterLayer(str(austin_rgb), "austin_dev_rgb")
    qgis_new_project.addMapLayer(layer)
    out = tmp_path / "austin_refined.tif"
    flow = refine_with_slider(plugin, layer, None, out, wait_until, wait_for_tasks, iterations=5)
    assert flow.dock.slider.value() == 5 and flow.result.whole_raster
    shown = _band(_classes(flow).source(), 6)
    np.testing.assert_array_equal(shown, gdal.Open(str(out)).ReadAsArray())
    coarse = _band(_classes(flow).source(), 1)
    assert (coarse == 1).sum() < (shown == 1).sum()  # the RNN recovers buildings


def _recompute(flow: IterationsFlow, iterations: int, wait_until, wait_for_tasks) -> None:  # noqa: ANN001
    flow.dock.max_spin.setValue(iterations)
    assert flow.recompute() is not None
    wait_until(lambda: flow.task is None, 300)
    wait_for_tasks()


def _shows_own_copy(flow: IterationsFlow) -> bool:
    """The slider's class map is on screen (not the refined layer standing in for it)."""
    node = QgsProject.instance().layerTreeRoot().findLayer(_classes(flow).id())
    return node.itemVisibilityChecked()


def test_recompute_ends_with_the_refine_s_detail_iterations(
    plugin,
    make_rgb,
    tiny_model,
    tmp_path,  # noqa: ANN001
    qgis_new_project,
    wait_until,
    wait_for_tasks,
) -> None:
    """A refine with Outline detail on 0.15 m imagery (a 0.3 m fine grid chosen): Recompute's
    last view is the map that refine writes with its detail iterations on the fine grid,
    the earlier ones the model grid's; with more iterations the fine grid follows the
    last, and Keep writes what the slider shows."""
    path = make_rgb(tmp_path / "drone.tif", size=96, seed=3)
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.SetGeoTransform((620000.0, 0.15, 0.0, 3350000.0, 0.0, -0.15))
    ds = None
    layer = QgsRasterLayer(str(path), "drone")
    qgis_new_project.addMapLayer(layer)
    out = tmp_path / "r.tif"
    detail = dict(detail_iterations=2, detail_resolution_m=0.3)
    flow = refine_with_slider(
        plugin, layer, tiny_model, out, wait_until, wait_for_tasks, 2, **detail
    )
    refined = gdal.Open(str(out)).ReadAsArray()
    np.testing.assert_array_equal(_band(_classes(flow).source(), 3), refined)
    plain = _refined(path, tiny_model, 2, tmp_path / "plain.tif")
    assert (plain != refined).any()  # the detail iterations changed the map

    _recompute(flow, 2, wait_until, wait_for_tasks)
    classes = _classes(flow)
    assert (flow.result.job.detail_iterations, flow.result.job.detail_resolution_m) == (2, 0.3)
    assert flow.result.trajectory.detail_iterations == 2
    np.testing.assert_array_equal(_band(classes.source(), 3), refined)
    one = _refined(path, tiny_model, 1, tmp_path / "one.tif")
    np.testing.assert_array_equal(_band(classes.source(), 2), one)  # the model grid's
    assert classes.name() == "drone — iteration 2 of 2, then 2 at 0.3 m"
    assert "then ran 2 more on a 0.3 m grid" in flow.dock.title_label.text()
    assert not _shows_own_copy(flow)  # the refined layer is that map

    _recompute(flow, 3, wait_until, wait_for_tasks)
    classes = _classes(flow)
    three = _refined(path, tiny_model, 3, tmp_path / "three.tif", **detail)
    np.testing.assert_array_equal(_band(classes.source(), 4), three)
    np.testing.assert_array_equal(_band(classes.source(), 3), plain)
    flow.dock.slider.setValue(2)
    assert classes.name() == "drone — iteration 2 of 3"
    assert _shows_own_copy(flow)  # the refined layer ran the detail iterations after 2
    flow.dock.slider.setValue(3)
    flow.dock.keep_button.click()
    wait_for_tasks()
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "r_it3.tif")).ReadAsArray(), three)
    flow.dock.slider.setValue(2)
    flow.dock.keep_button.click()
    wait_for_tasks()
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "r_it2.tif")).ReadAsArray(), plain)


@pytest.fixture(autouse=True)
def _no_leftover_tasks(wait_for_tasks) -> None:  # noqa: ANN001
    yield
    wait_for_tasks()
