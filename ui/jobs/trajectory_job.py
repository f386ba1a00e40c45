"""The iteration slider's maps: the refinement at iterations 0..N over the raster (the
view of a large one), kept by the refine's own pass or recomputed in a task, and
written as one band per iteration."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from .torch_library import load_torch_library

if TYPE_CHECKING:
    from ...engine.refine.trajectory import Trajectory

Window = tuple[int, int, int, int]


@dataclass
class TrajectoryJob:
    """Where and how the slider's maps are made; ``window`` None: the whole raster; with
    the refine's detail iterations, the last map is the refine's own (the others are the
    model grid's)."""

    image: Path
    model_path: Path | None
    iterations: int
    window: Window | None
    kind: str
    device: str
    folder: Path
    source_name: str
    precision: str = "auto"
    layer_id: str = ""
    detail_iterations: int = 0  # the refine's: the last map goes on through them
    detail_resolution_m: float | None = None
    bands: tuple[int, ...] | None = None  # the refine's chosen bands (None: the image's own)
    input_resolution_m: float | None = None  # the refine's (an image without georeferencing)


@dataclass
class TrajectoryResult:
    trajectory: Trajectory
    classes_path: Path
    uncertainty_path: Path
    job: TrajectoryJob

    @property
    def whole_raster(self) -> bool:
        return self.job.window is None and not self.trajectory.shrunk


def view_window(
    layer: QgsRasterLayer, extent: QgsRectangle, crs: QgsCoordinateReferenceSystem
) -> Window | None:
    """The raster pixels under a map extent given in ``crs`` (None: no overlap)."""
    if crs.isValid() and layer.crs().isValid() and crs != layer.crs():
        transform = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance())
        extent = transform.transformBoundingBox(extent)
    full = layer.extent()
    part = extent.intersect(full)
    if part.isEmpty():
        return None
    rx = full.width() / layer.width()
    ry = full.height() / layer.height()
    eps = 1e-6  # edges on pixel borders stay there despite float error
    x0 = int(math.floor((part.xMinimum() - full.xMinimum()) / rx + eps))
    x1 = int(math.ceil((part.xMaximum() - full.xMinimum()) / rx - eps))
    y0 = int(math.floor((full.yMaximum() - part.yMaximum()) / ry + eps))
    y1 = int(math.ceil((full.yMaximum() - part.yMinimum()) / ry - eps))
    return max(0, x0), max(0, y0), min(layer.width(), x1), min(layer.height(), y1)


def run_trajectory(
    job: TrajectoryJob, progress: ProgressFn, is_cancelled: CancelFn
) -> TrajectoryResult:
    """Runs in the task's worker thread (Recompute: other iterations, uncertainty or view)."""
    load_torch_library()
    from ...engine.refine.trajectory import compute_trajectory

    if job.iterations < 1:
        raise MapRefinerError("Show at least one iteration.")
    traj = compute_trajectory(
        job.image,
        job.iterations,
        job.model_path,
        job.window,
        job.kind,
        job.device,
        progress=lambda f: progress(0.95 * f),
        is_cancelled=is_cancelled,
        precision=job.precision,
        detail_iterations=job.detail_iterations,
        detail_resolution_m=job.detail_resolution_m,
        bands=job.bands,
        input_resolution_m=job.input_resolution_m,
    )
    result = write_slider_maps(job, traj)
    progress(1.0)
    return result


def write_slider_maps(job: TrajectoryJob, traj: Trajectory) -> TrajectoryResult:
    """The maps on disk, one band per iteration, in the job's folder (worker thread)."""
    from ...engine.refine.trajectory_io import write_trajectory

    stem = f"{job.image.stem}_{traj.window[0]}_{traj.window[1]}_n{traj.iterations}"
    classes, unc = write_trajectory(traj, job.folder, stem)
    return TrajectoryResult(traj, classes, unc, replace(job, iterations=traj.iterations))
