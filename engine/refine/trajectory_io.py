"""A trajectory on disk: one GeoTIFF band per iteration, so a map layer can switch
iterations by switching its band (no recomputation, no rewriting); and one of its
iterations kept as a class map, as a refine with that many iterations writes it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..rasters.files import check_output_path
from ..rasters.read import RasterInfo
from ..rasters.write import CLASS_NODATA, create_geotiff, refined_writer
from .params import RefineResult, describe_map
from .trajectory import Trajectory

gdal.UseExceptions()


def _create(path: Path, traj: Trajectory, dtype: int) -> gdal.Dataset:
    n, h, w = traj.classes.shape
    return create_geotiff(path, w, h, n, dtype, traj.window_geotransform, traj.projection)


def write_trajectory(traj: Trajectory, folder: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>_iterations.tif`` (uint8 classes) and ``<stem>_<kind>.tif`` (float32 in
    [0, 1]); band ``t + 1`` holds iteration ``t``."""
    folder.mkdir(parents=True, exist_ok=True)
    classes_path = folder / f"{stem}_iterations.tif"
    unc_path = folder / f"{stem}_{traj.kind}.tif"
    ds = _create(classes_path, traj, gdal.GDT_Byte)
    for t in range(traj.iterations + 1):
        band = ds.GetRasterBand(t + 1)
        band.WriteArray(traj.classes[t])
        band.SetDescription(f"iteration {t}")
        band.SetNoDataValue(CLASS_NODATA)
    ds = None
    ds = _create(unc_path, traj, gdal.GDT_Float32)
    for t in range(traj.iterations + 1):
        band = ds.GetRasterBand(t + 1)
        band.WriteArray(np.where(traj.valid, traj.uncertainty[t].astype(np.float32), np.nan))
        band.SetDescription(f"{traj.kind} at iteration {t}")
        band.SetNoDataValue(float("nan"))
    ds = None
    return classes_path, unc_path


def write_iteration(traj: Trajectory, iterations: int, out: Path) -> RefineResult:
    """Iteration ``iterations`` of the trajectory as the class map a refine with that
    many iterations writes (colour table, class names, nodata, and the detail iterations
    of the last one), over its window."""
    t0 = time.perf_counter()
    if not 0 <= iterations <= traj.iterations:
        raise MapRefinerError(
            f"Iterations 0 to {traj.iterations} were kept; {iterations} is not one of them."
        )
    check_output_path(out, [], overwrite=False)
    _, h, w = traj.classes.shape
    grid = RasterInfo(str(out), w, h, 1, traj.window_geotransform, traj.projection, [None])
    last = iterations == traj.iterations  # only the last went through the detail ones
    detail = traj.detail_iterations if last else 0
    desc = describe_map(traj.model_name, iterations, detail, traj.detail_resolution_m)
    with refined_writer(grid, out, traj.class_names, traj.colours, None, desc) as writer:
        writer.write(0, 0, traj.classes[iterations])
    return RefineResult(
        out,
        None,
        iterations,
        list(traj.class_names),
        list(traj.colours),
        time.perf_counter() - t0,
        traj.device,
        0,
    )
