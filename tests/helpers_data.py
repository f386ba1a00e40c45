"""Small rasters and vectors made in code, and the path to the real data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_OGR_DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON"}


def real_data(*parts: str) -> Path:
    """A file under ``../shared/data``, or skip the test when the data is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip("needs ../shared/data (real imagery), absent here")
    return path


def srs_of(epsg: int) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def wkt_of(epsg: int) -> str:
    return srs_of(epsg).ExportToWkt()


def write_raster(
    path: Path,
    array: np.ndarray,
    geotransform: Sequence[float],
    epsg: int | None = None,
    nodata: float | None = None,
    driver: str = "GTiff",
) -> Path:
    """A one-band raster holding ``array`` (its dtype decides the band type)."""
    dtype = gdal.GDT_Byte if array.dtype == np.uint8 else gdal.GDT_Float32
    ds = gdal.GetDriverByName(driver).Create(str(path), array.shape[1], array.shape[0], 1, dtype)
    ds.SetGeoTransform(tuple(geotransform))
    if epsg is not None:
        ds.SetProjection(wkt_of(epsg))
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    ds = None
    return path


def write_vector(
    path: Path,
    features: Sequence[tuple[str, dict[str, object]]],
    epsg: int | None = None,
    layer: str = "labels",
    fields: dict[str, int] | None = None,
) -> Path:
    """A vector file with one layer of ``(wkt, attributes)`` features, in order."""
    drv = ogr.GetDriverByName(_OGR_DRIVERS[path.suffix.lower()])
    ds = drv.CreateDataSource(str(path)) if not path.exists() else ogr.Open(str(path), 1)
    lyr = ds.CreateLayer(layer, srs=srs_of(epsg) if epsg else None, geom_type=ogr.wkbUnknown)
    for name, kind in (fields or {}).items():
        lyr.CreateField(ogr.FieldDefn(name, kind))
    for wkt, attrs in features:
        feat = ogr.Feature(lyr.GetLayerDefn())
        for k, v in attrs.items():
            if v is None:
                feat.SetFieldNull(k)
            else:
                feat.SetField(k, v)
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(feat)
    ds = None
    return path


def box_wkt(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def two_corrections(path: Path, geotransform: Sequence[float], epsg: int = 32633) -> Path:
    """A correction layer (field ``class``) with a building and a background box near the
    top-left corner of a raster with ``geotransform`` (metres)."""
    x0, y0 = geotransform[0], geotransform[3]
    return write_vector(
        path,
        [
            (box_wkt(x0 + 2, y0 - 12, x0 + 8, y0 - 4), {"class": "building"}),
            (box_wkt(x0 + 14, y0 - 26, x0 + 22, y0 - 18), {"class": "background"}),
        ],
        epsg=epsg,
        fields={"class": ogr.OFTString},
    )


def wgs84_metres_per_degree(lat: float) -> tuple[float, float]:
    """Ground metres per degree of longitude and of latitude on WGS84 (series formulas)."""
    p = math.radians(lat)
    lat_m = 111132.954 - 559.822 * math.cos(2 * p) + 1.175 * math.cos(4 * p)
    lon_m = 111412.84 * math.cos(p) - 93.5 * math.cos(3 * p)
    return lon_m, lat_m
