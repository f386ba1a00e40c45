"""Fixtures for the QGIS-side tests: isolated settings, a tiny model, the plugin
loaded through classFactory/initGui/unload, small rasters made in code."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsRasterLayer, QgsSettings
from qgis.PyQt.QtCore import QSettings, QThreadPool

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AUSTIN_RGB = DATA / "austin" / "austin_dev_rgb.tif"


@pytest.fixture(scope="session", autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QgsSettings go to a temporary folder, never to the user's QGIS profile."""
    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def task_threads() -> int:
    """QGIS before 3.34 runs its tasks on Qt's global thread pool, which the map canvas's
    render jobs share, and the pool has as many threads as the machine has cores. On CI's
    two cores a queued refine once waited over 60 s behind two busy threads (CI of session
    18; not reproduced alone): give the tests the pool a desktop with four cores has, so
    that they wait on the plugin's work, not on the canvas."""
    pool = QThreadPool.globalInstance()
    pool.setMaxThreadCount(max(pool.maxThreadCount(), 4))
    return pool.maxThreadCount()


@pytest.fixture
def quiet_canvas(qgis_iface):  # noqa: ANN001, ANN201
    """The map canvas keeps its extent but does not draw until the test ends: its render
    jobs would ask a test's local tile server for tiles on the threads QGIS 3.22's tasks
    share (task_threads), and a test of the plugin's own fetch counts what the server was
    asked. A refresh scheduled before this draws the project as it is now."""
    canvas = qgis_iface.mapCanvas()
    canvas.setRenderFlag(False)
    QgsApplication.processEvents()
    yield canvas
    canvas.setRenderFlag(True)


@pytest.fixture(autouse=True)
def clean_plugin_settings() -> Iterator[None]:
    QgsSettings().remove("map_refiner")
    yield
    QgsSettings().remove("map_refiner")


def random_model(path: Path, seed: int = 0, name: str = "tiny test model") -> Path:
    """A seeded random two-class model at 0.6 m, 2 iterations by default, saved at ``path``."""
    import torch

    from map_refiner.engine.modelfile.config import ModelConfig, make_classes
    from map_refiner.engine.modelfile.io import build_model, save_model

    torch.manual_seed(seed)
    cfg = ModelConfig(
        classes=make_classes(["background", "building"]),
        ground_resolution_m=0.6,
        default_iterations=2,
        name=name,
    )
    return save_model(build_model(cfg), cfg, path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random two-class model at 0.6 m, 2 iterations by default."""
    return random_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture
def make_model() -> Callable[..., Path]:
    """random_model, for a test that needs a second model (another seed and name)."""
    return random_model


@pytest.fixture(scope="session")
def _austin_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the Austin test tile: QGIS writes statistics (.aux.xml) beside
    the rasters it loads, and the shared data must never be modified."""
    if not AUSTIN_RGB.exists():
        pytest.skip(f"real data not found: {AUSTIN_RGB} (see ../shared/data/README.md)")
    folder = tmp_path_factory.mktemp("austin")
    for name in ("austin_dev_rgb.tif", "austin_dev_gt.tif", "austin_dev_buildings.gpkg"):
        shutil.copy(AUSTIN_RGB.with_name(name), folder / name)
    return folder / AUSTIN_RGB.name


@pytest.fixture
def austin_rgb(_austin_copy: Path) -> Path:
    return _austin_copy


def write_rgb(path: Path, size: int = 48, seed: int = 0) -> Path:
    """A seeded RGB GeoTIFF, 0.6 m pixels in UTM 14N."""
    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((620000.0, 0.6, 0.0, 3350000.0, 0.0, -0.6))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds.SetProjection(srs.ExportToWkt())
    for band in range(1, 4):
        ds.GetRasterBand(band).WriteArray(rng.integers(0, 255, (size, size), dtype=np.uint8))
    ds = None
    return path


@pytest.fixture
def rgb_path(tmp_path: Path) -> Path:
    return write_rgb(tmp_path / "scene.tif")


@pytest.fixture
def rgb_layer(rgb_path: Path, qgis_new_project) -> QgsRasterLayer:  # noqa: ANN001
    layer = QgsRasterLayer(str(rgb_path), "scene")
    assert layer.isValid()
    qgis_new_project.addMapLayer(layer)
    return layer


@pytest.fixture
def plugin(qgis_iface, qgis_new_project):  # noqa: ANN001, ANN201
    """The plugin as QGIS loads it: classFactory, initGui ... unload."""
    from map_refiner import classFactory

    instance = classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


def _wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Spin the event loop (task results arrive through it) until ``condition()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        QgsApplication.processEvents()
        time.sleep(0.01)


def _wait_for_tasks(timeout: float = 60.0) -> None:
    manager = QgsApplication.taskManager()
    try:
        _wait_until(lambda: manager.countActiveTasks() == 0, timeout)
    except TimeoutError as exc:  # say which tasks never ended, for a failure seen once
        running = [
            f"{t.description()!r} ({t.status()}, {t.progress():.0f} %)"
            for t in manager.activeTasks()
        ]
        pool = QThreadPool.globalInstance()
        raise TimeoutError(
            f"tasks still running after {timeout:g} s: {running}; the global thread pool "
            f"has {pool.activeThreadCount()} of {pool.maxThreadCount()} threads busy"
        ) from exc
    for _ in range(3):
        QgsApplication.processEvents()


@pytest.fixture
def wait_until() -> Callable[..., None]:
    return _wait_until


@pytest.fixture
def wait_for_tasks() -> Callable[..., None]:
    return _wait_for_tasks


@pytest.fixture
def make_rgb() -> Callable[..., Path]:
    return write_rgb
