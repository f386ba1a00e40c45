"""The views earlier refines left in the iterations dock, kept for Undo round: at most
KEPT_VIEWS of them and at most KEPT_VIEWS_BYTES of maps in memory, the oldest dropped
first (with their folder), the newest kept even alone over the budget. The views are
made in code (no network runs)."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pytest
from osgeo import osr
from qgis.core import QgsProject, QgsRasterLayer

from map_refiner.engine.refine.trajectory import Trajectory
from map_refiner.ui.iterations import flow as flow_module
from map_refiner.ui.iterations.flow import IterationsFlow
from map_refiner.ui.jobs.trajectory_job import TrajectoryResult, write_slider_maps

SIZE = 32  # pixels a side
ITERATIONS = 3
# (N+1) uint8 class maps, (N+1) float16 uncertainty maps and a bool mask
VIEW_BYTES = (ITERATIONS + 1) * SIZE * SIZE * 3 + SIZE * SIZE


def _trajectory(seed: int) -> Trajectory:
    rng = np.random.default_rng(seed)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    return Trajectory(
        classes=rng.integers(0, 2, (ITERATIONS + 1, SIZE, SIZE), dtype=np.uint8),
        uncertainty=rng.random((ITERATIONS + 1, SIZE, SIZE)).astype(np.float16),
        valid=np.ones((SIZE, SIZE), dtype=bool),
        window=(0, 0, SIZE, SIZE),
        geotransform=(620000.0, 0.6, 0.0, 3350000.0, 0.0, -0.6),
        projection=srs.ExportToWkt(),
        class_names=["background", "building"],
        colours=[(0, 0, 0), (200, 40, 40)],
        kind="entropy",
        pixel_size_m=0.6,
    )


@pytest.fixture
def refine(plugin, make_rgb, tmp_path) -> Callable[[int], tuple[str, TrajectoryResult]]:  # noqa: ANN001
    """Shows in the dock the view of a new refine (its refined layer added to the
    project), as a refine from the dialog does; returns its layer id and view."""
    flow = plugin.controller.iteration_flow()

    def run(k: int) -> tuple[str, TrajectoryResult]:
        image = make_rgb(tmp_path / f"scene_{k}.tif", size=SIZE, seed=k)
        layer = QgsRasterLayer(str(image), f"scene {k} — refined")
        QgsProject.instance().addMapLayer(layer)
        job = flow.slider_job(image, None, "cpu", "auto", f"scene {k}", layer.id())
        result = write_slider_maps(replace(job, iterations=ITERATIONS), _trajectory(k))
        flow.show_refined(result, ITERATIONS, layer.id())
        assert flow.result is result
        return layer.id(), result

    return run


def _flow(plugin) -> IterationsFlow:  # noqa: ANN001
    return plugin.controller.iterations


def test_a_view_measures_what_its_maps_hold() -> None:
    assert _trajectory(0).nbytes == VIEW_BYTES


def test_earlier_views_are_kept_by_count(plugin, refine) -> None:  # noqa: ANN001
    views = [refine(k) for k in range(5)]
    flow = _flow(plugin)
    assert flow_module.KEPT_VIEWS == 3
    assert list(flow.earlier) == [layer_id for layer_id, _ in views[1:4]]
    assert not views[0][1].job.folder.exists()  # the oldest left the disk too


def test_earlier_views_are_kept_within_a_memory_budget_oldest_first(
    plugin,
    refine,
    monkeypatch,  # noqa: ANN001
) -> None:
    """Two and a half views' worth: of the three earlier views the count allows, the
    oldest goes (folder and all) and the two newest stay."""
    monkeypatch.setattr(flow_module, "KEPT_VIEWS_BYTES", int(2.5 * VIEW_BYTES))
    views = [refine(k) for k in range(4)]
    flow = _flow(plugin)
    assert list(flow.earlier) == [views[1][0], views[2][0]]
    assert flow.earlier_nbytes() == 2 * VIEW_BYTES
    assert not views[0][1].job.folder.exists()
    assert all(result.classes_path.exists() for _, result in views[1:])
    assert flow.restore(views[1][0], "back")  # a kept view shows again, as Undo round does
    assert flow.result is views[1][1]


def test_the_newest_earlier_view_stays_even_alone_over_the_budget(
    plugin,
    refine,
    monkeypatch,  # noqa: ANN001
) -> None:
    monkeypatch.setattr(flow_module, "KEPT_VIEWS_BYTES", VIEW_BYTES // 2)
    views = [refine(k) for k in range(3)]
    flow = _flow(plugin)
    assert list(flow.earlier) == [views[1][0]]  # the round's parent, for Undo round
    assert not views[0][1].job.folder.exists()
    assert flow.restore(views[1][0], "back")
    assert flow.result is views[1][1] and flow.earlier == {}
