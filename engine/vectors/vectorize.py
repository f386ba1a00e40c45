"""Class map to polygons: one polygon per connected region of a class, with its
class and its area in square metres, written atomically as Shapefile or GeoPackage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..progress import CancelFn, ProgressFn, Reporter, make_reporter
from ..rasters.grid import GridSpec, grid_of, is_metric, local_metric_srs, mem_dataset
from ..rasters.read import open_raster
from .write import VectorTarget

gdal.UseExceptions()
ogr.UseExceptions()
log = logging.getLogger(__name__)
PathLike = Union[str, Path]
_CHECK_EVERY = 500  # features between cancel checks while writing


@dataclass
class VectorizeResult:
    """The written file (for a Shapefile, its .shp), polygons written and dropped as small."""

    path: Path
    feature_count: int
    removed_small: int = 0


def vectorize(
    classmap_path: PathLike,
    out_path: PathLike,
    class_names: Sequence[str] | None = None,
    classes: Sequence[int | str] | None = None,
    simplify_m: float = 0.0,
    min_area_m2: float = 0.0,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    eight_connected: bool = False,
) -> VectorizeResult:
    """Polygons of band 1 of a ``uint8`` class map, in the map's CRS.

    Attributes: ``class_id``, ``class`` (from ``class_names``, else the raster's
    category names) and ``area_m2`` (planar when the CRS unit is a ground
    metre, else on a local equal-area projection). Nodata/255 is skipped;
    ``classes`` (ids or names) keeps only those. ``simplify_m`` simplifies each
    polygon on its own (neighbours may then gap or overlap slightly);
    polygons under ``min_area_m2`` after that are dropped. The format comes
    from the extension (.shp or .gpkg); nothing is left behind on failure or cancel.
    """
    target = VectorTarget.for_path(out_path, [classmap_path], overwrite)
    report = make_reporter(progress, is_cancelled)
    report.check()
    ds = open_raster(classmap_path)
    band = ds.GetRasterBand(1)
    if band.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16):
        raise MapRefinerError(
            f"{Path(str(classmap_path)).name} is not a class map (band 1 is "
            f"{gdal.GetDataTypeName(band.DataType)}); vectorize a refined map."
        )
    grid = grid_of(ds)  # first: GDAL 3.6 GTiff reads the .aux.xml (category names) only then
    names = _names(band, class_names)
    keep = _class_ids(classes, names)
    regions, regions_ds = _polygonize(band, grid, keep, eight_connected, report.sub(0.0, 0.7))
    with target.writing(grid.srs()) as out_layer:
        with target.write_errors():
            _add_fields(out_layer)
        count, small = _write(
            regions, out_layer, grid, names, simplify_m, min_area_m2, report.sub(0.7, 1.0), target
        )
    del regions_ds
    report.report(1.0)
    log.info(
        "Vectorized %d polygon(s) into %s (%d under %g m2 dropped).",
        count,
        target.path,
        small,
        min_area_m2,
    )
    return VectorizeResult(target.path, count, small)


def _add_fields(layer: ogr.Layer) -> None:
    name = ogr.FieldDefn("class", ogr.OFTString)
    name.SetWidth(64)
    for field in (
        ogr.FieldDefn("class_id", ogr.OFTInteger),
        name,
        ogr.FieldDefn("area_m2", ogr.OFTReal),
    ):
        layer.CreateField(field)


def _names(band: gdal.Band, given: Sequence[str] | None) -> list[str]:
    names = list(given) if given else list(band.GetCategoryNames() or [])
    names = names[:IGNORE] + [""] * (IGNORE - len(names))
    return [n or f"class {i}" for i, n in enumerate(names)]


def _class_ids(classes: Sequence[int | str] | None, names: list[str]) -> list[int]:
    if classes is None:
        return list(range(IGNORE))
    lookup = {n.lower(): i for i, n in enumerate(names)}
    ids = []
    for c in classes:
        i = c if isinstance(c, (int, np.integer)) else lookup.get(str(c).strip().lower())
        if i is None or not 0 <= int(i) < IGNORE:
            raise MapRefinerError(
                f"Unknown class {c!r}; give class ids or names of the map (see its legend)."
            )
        ids.append(int(i))
    return ids


def _polygonize(
    band: gdal.Band, grid: GridSpec, keep: list[int], eight_connected: bool, report: Reporter
) -> tuple[ogr.Layer, ogr.DataSource]:
    values = band.ReadAsArray()
    wanted = np.isin(values, keep) & (values != IGNORE)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        wanted &= values != nodata
    mask_ds = mem_dataset(grid)
    mask_ds.GetRasterBand(1).WriteArray(wanted.astype(np.uint8))
    mem = ogr.GetDriverByName("Memory").CreateDataSource("regions")
    layer = mem.CreateLayer("regions", srs=grid.srs(), geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class_id", ogr.OFTInteger))

    def callback(complete: float, _message: object, _data: object) -> int:
        report.report(complete)
        return 0 if report.is_cancelled() else 1

    options = ["8CONNECTED=8"] if eight_connected else []
    try:
        gdal.Polygonize(band, mask_ds.GetRasterBand(1), layer, 0, options, callback=callback)
    except RuntimeError as exc:
        report.check()
        raise MapRefinerError("Vectorizing the class map failed.", details=str(exc)) from exc
    report.check()
    return layer, mem


def _write(
    regions: ogr.Layer,
    out: ogr.Layer,
    grid: GridSpec,
    names: list[str],
    simplify_m: float,
    min_area_m2: float,
    report: Reporter,
    target: VectorTarget,
) -> tuple[int, int]:
    measure = _Measure(grid)
    total = max(1, regions.GetFeatureCount())
    count = small = 0
    defn = out.GetLayerDefn()
    for i, region in enumerate(regions):
        if i % _CHECK_EVERY == 0:
            report.check()
            report.report(i / total)
        geom, area = measure.simplified(region.GetGeometryRef(), simplify_m)
        if geom is None or geom.IsEmpty():
            continue
        if area < min_area_m2:
            small += 1
            continue
        cid = region.GetField(0)
        feat = ogr.Feature(defn)
        feat.SetField("class_id", cid)
        feat.SetField("class", names[cid])
        feat.SetField("area_m2", area)
        feat.SetGeometry(ogr.ForceToPolygon(geom))
        with target.write_errors():
            out.CreateFeature(feat)
        count += 1
    report.check()
    return count, small


class _Measure:
    """Simplification and area in metres, in the map's CRS or a local equal-area one."""

    def __init__(self, grid: GridSpec) -> None:
        self.to_local: osr.CoordinateTransformation | None = None
        self.from_local: osr.CoordinateTransformation | None = None
        srs = grid.srs()
        if srs is None:
            log.warning("The class map has no CRS; area_m2 is in squared map units.")
        elif not is_metric(grid):
            local = local_metric_srs(grid, equal_area=True)
            self.to_local = osr.CoordinateTransformation(srs, local)
            self.from_local = osr.CoordinateTransformation(local, srs)

    def simplified(
        self, geom: ogr.Geometry, tolerance_m: float
    ) -> tuple[ogr.Geometry | None, float]:
        local = geom.Clone()
        if self.to_local is not None:
            local.Transform(self.to_local)
        if tolerance_m > 0:
            local = local.SimplifyPreserveTopology(tolerance_m)
            if local is None or local.IsEmpty():
                return None, 0.0
            if self.from_local is None:
                return local, local.GetArea()
            geom = local.Clone()
            geom.Transform(self.from_local)
        return geom, local.GetArea()
