"""Seeded synthetic rasters and random-weight models for the engine-core tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal, gdal_array, osr

from map_refiner.engine.modelfile.config import ModelConfig, make_classes
from map_refiner.engine.modelfile.io import build_model
from map_refiner.engine.networks.models import MapRefinerNet

gdal.UseExceptions()
UTM33N = 32633
UTM_GT_05 = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def scene(
    height: int, width: int, bands: int = 3, seed: int = 0, dtype: type = np.uint8
) -> np.ndarray:
    """A blocky image with edges and noise, ``(bands, height, width)``, values 0..250."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 250, size=(bands, height // 8 + 2, width // 8 + 2))
    img = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :height, :width]
    img = img + rng.integers(0, 6, size=img.shape)
    return np.clip(img, 0, 250).astype(dtype)


def write_image(
    path: Path,
    array: np.ndarray,
    geotransform: Sequence[float] = UTM_GT_05,
    epsg: int | None = UTM33N,
    nodata: float | None = None,
    driver: str = "GTiff",
    options: Sequence[str] = (),
) -> gdal.Dataset:
    """A ``(bands, h, w)`` array of any numpy type as a raster (creation ``options``);
    returns the dataset (open, for MEM)."""
    bands, h, w = array.shape
    drv = gdal.GetDriverByName(driver)
    gtype = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    ds = drv.Create(str(path), w, h, bands, gtype, list(options))
    ds.SetGeoTransform(tuple(geotransform))
    if epsg is not None:
        ds.SetProjection(wkt(epsg))
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(array[i])
    ds.FlushCache()
    return ds


def make_tif(path: Path, height: int, width: int, seed: int = 0, **kwargs) -> Path:
    ds = write_image(path, scene(height, width, seed=seed), **kwargs)
    ds = None  # noqa: F841 (closes the file)
    return path


def write_paletted(path: Path, like: Path) -> Path:
    """A one-band GeoTIFF of colour-table indices on ``like``'s grid (a PNG-8 or GIF made a
    GeoTIFF): ``like``'s first band as the indices of a 256-entry table."""
    src = gdal.Open(str(like))
    out = gdal.GetDriverByName("GTiff").Create(
        str(path), src.RasterXSize, src.RasterYSize, 1, gdal.GDT_Byte
    )
    out.SetGeoTransform(src.GetGeoTransform())
    out.SetProjection(src.GetProjection())
    table = gdal.ColorTable()
    for i in range(256):
        table.SetColorEntry(i, (i, 255 - i, (7 * i) % 256, 255))
    band = out.GetRasterBand(1)
    band.SetRasterColorTable(table)
    band.SetColorInterpretation(gdal.GCI_PaletteIndex)
    band.WriteArray(src.GetRasterBand(1).ReadAsArray())
    band = out = None  # noqa: F841 (closes the file)
    return path


def random_model(
    classes: Sequence[str] = ("background", "building"),
    resolution_m: float = 0.5,
    seed: int = 0,
    bands: int = 3,
    iterations: int = 5,
    class_specific: bool = True,
) -> tuple[MapRefinerNet, ModelConfig]:
    """A random-weight model (seeded) whose class maps vary in space (not one class)."""
    cfg = ModelConfig(
        classes=make_classes(list(classes)),
        ground_resolution_m=resolution_m,
        bands=list(range(1, bands + 1)),
        band_names=[f"b{i}" for i in range(bands)],
        mean=[120.0] * bands,
        std=[70.0] * bands,
        default_iterations=iterations,
        class_specific=class_specific,
    )
    torch.manual_seed(seed)
    net = build_model(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):  # non-zero, so a bias mix-up would show
                p.uniform_(-0.05, 0.05)
        net.coarse.conv4.weight.mul_(4.0)
    return net.eval(), cfg
