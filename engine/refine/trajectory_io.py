"""A trajectory on disk: one GeoTIFF band per iteration, so a map layer can switch
iterations by switching its band (no recomputation, no rewriting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from ..errors import MapRefinerError
from ..rasters.write import CLASS_NODATA, CREATION_OPTIONS
from .trajectory import Trajectory

gdal.UseExceptions()


def _create(path: Path, traj: Trajectory, dtype: int) -> gdal.Dataset:
    n, h, w = traj.classes.shape
    try:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, n, dtype, CREATION_OPTIONS)
    except RuntimeError as exc:
        raise MapRefinerError(
            f"Cannot write {path}: {exc}. Check the folder is writable and the disk has space."
        ) from exc
    ds.SetGeoTransform(traj.window_geotransform)
    if traj.projection:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(traj.projection)
        ds.SetSpatialRef(srs)
    return ds


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
