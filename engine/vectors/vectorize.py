"""Class map to polygons: one polygon per connected region of a class, with its
class, its area in square metres, the map's source (the model that made it) and,
given the refine's probabilities, the mean probability of its class over it; written
atomically as Shapefile or GeoPackage."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..labels.rasters import refuse_0_255_mask, sampled_values
from ..progress import CancelFn, ProgressFn, Reporter, make_reporter
from ..rasters.files import scratch_folder
from ..rasters.grid import GridSpec, grid_of, is_metric, local_metric_srs, mem_dataset
from ..rasters.read import open_raster
from ..rasters.write import create_geotiff
from ..refine.memory import bounded_memory
from .regularize import Regularizer
from .shared_borders import simplify_shared
from .sieve import pixel_area_m2, sieved
from .write import VectorTarget

gdal.UseExceptions()
ogr.UseExceptions()
log = logging.getLogger(__name__)
PathLike = Union[str, Path]
Shape = Callable[[ogr.Geometry, Sequence[np.ndarray]], ogr.Geometry]  # outline, its map-edge points
_CHECK_EVERY = 500  # features between cancel checks while writing
DEFAULT_REGULARIZE_M = 1.0  # the networks' ground resolution; docs/results_prior.md
BLOCK_PIXELS = 1 << 20  # pixels of the class map (and probabilities) read at once


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
    scores_path: PathLike | None = None,
    source: str | None = None,
    regularize: Sequence[int | str] | None = None,
    regularize_m: float | None = None,
    regularize_every_edge: bool = False,
    merge_small_m2: float = 0.0,
    shared_borders: bool = False,
) -> VectorizeResult:
    """Polygons of band 1 of a ``uint8`` class map, in the map's CRS.

    Attributes: ``class_id``, ``class`` (from ``class_names``, else the raster's
    category names), ``area_m2`` (planar when the CRS unit is a ground
    metre, else on a local equal-area projection), ``source`` (``source``, else the
    map's band description, e.g. "Map Refiner default (buildings): 5 RNN iterations")
    and, with ``scores_path`` (the refine's per-class probabilities on the same
    grid), ``mean_prob``: the mean probability of the polygon's class over its
    pixels. Nodata/255 is skipped;
    ``classes`` (ids or names) keeps only those. ``simplify_m`` simplifies each
    polygon on its own (neighbours may then gap or overlap slightly), or with
    ``shared_borders`` each border once for both its sides (.shared_borders; all the
    polygons in memory at once), so that neighbours still meet exactly; the polygons
    of the ``regularize`` classes (ids or names, e.g. building) get right angles and
    parallel edges where nearly so instead (.regularize, tolerance ``regularize_m``,
    by default 1 m or two pixels of a coarser map: below a pixel, a staircase stays;
    ``regularize_every_edge``: every edge turned, all corners right angles);
    polygons under ``min_area_m2`` after that are dropped. ``merge_small_m2`` first
    merges every region smaller than that into its largest neighbour on the map (.sieve),
    so that a minimum area leaves no gap between classes. The format comes
    from the extension (.shp or .gpkg); nothing is left behind on failure or cancel.
    """
    inputs = [classmap_path] + ([scores_path] if scores_path else [])
    target = VectorTarget.for_path(out_path, inputs, overwrite)
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
    sample = sampled_values(ds)  # another tool's 0/255 mask: its objects would be no data
    refuse_0_255_mask(
        int((sample == IGNORE).sum()),
        bool(((sample > 0) & (sample < IGNORE)).any()),
        Path(str(classmap_path)).name,
        'make it a class map first (building 1, e.g. gdal_calc.py -A MAP --calc="A/255" '
        "--type=Byte --outfile CLASSMAP.tif)",
    )
    names = _names(band, class_names)
    keep = _class_ids(classes, names)
    if regularize_every_edge and not regularize:
        raise MapRefinerError(
            "Turning every edge is a way of regularising; say which classes (--regularize)."
        )
    if regularize_m is None:
        pixel_m = math.sqrt(pixel_area_m2(grid)) if regularize else 0.0
        regularize_m = max(DEFAULT_REGULARIZE_M, 2 * pixel_m)
    if not 0 < regularize_m < 1e4:
        raise MapRefinerError(
            f"The regularisation tolerance must be between 0 and 10000 m, not {regularize_m}."
        )
    if shared_borders and (regularize or simplify_m <= 0):
        raise MapRefinerError(
            "Shared borders are for --simplify alone: give a tolerance, and no "
            "--regularize (a regularised wall moves without its neighbour)."
        )
    shaper = _Shaper(
        simplify_m,
        set(_class_ids(regularize, names)) if regularize else set(),
        Regularizer(regularize_m, every_edge=regularize_every_edge),
        shared_borders,
    )
    if not 0 <= merge_small_m2 < 1e12:
        raise MapRefinerError(f"The area to merge must be 0 or more m², not {merge_small_m2}.")
    source = source if source is not None else (band.GetDescription() or "")
    # the mask and the regions on disk beside the output, so memory stays flat in the
    # map's size; a killed run's folder goes at the next run beside the same output
    with bounded_memory(), scratch_folder(target.path) as scratch:
        regions = regions_ds = sieved_ds = None
        try:
            with target.write_errors():
                if merge_small_m2 > 0:
                    rows = max(1, BLOCK_PIXELS // grid.width)
                    sieved_ds = sieved(band, grid, merge_small_m2, eight_connected, scratch, rows)
                    band = sieved_ds.GetRasterBand(1)
                regions, regions_ds = _polygonize(
                    band, grid, keep, eight_connected, report.sub(0.0, 0.7), scratch
                )
                means = None
                if scores_path is not None:
                    means = _mean_probabilities(regions, grid, scores_path, scratch)
            with target.writing(grid.srs()) as out_layer:
                with target.write_errors():
                    _add_fields(out_layer, means is not None)
                count, small = _write(
                    regions,
                    out_layer,
                    grid,
                    names,
                    shaper,
                    min_area_m2,
                    report.sub(0.7, 1.0),
                    target,
                    source,
                    means,
                )
        finally:  # SQLite's regions closed before the scratch folder goes
            del regions, regions_ds, band, sieved_ds
    report.report(1.0)
    log.info(
        "Vectorized %d polygon(s) into %s (%d under %g m2 dropped).",
        count,
        target.path,
        small,
        min_area_m2,
    )
    return VectorizeResult(target.path, count, small)


def _add_fields(layer: ogr.Layer, with_probability: bool) -> None:
    name = ogr.FieldDefn("class", ogr.OFTString)
    name.SetWidth(64)
    source = ogr.FieldDefn("source", ogr.OFTString)
    source.SetWidth(254)  # a Shapefile's longest text
    fields = [
        ogr.FieldDefn("class_id", ogr.OFTInteger),
        name,
        ogr.FieldDefn("area_m2", ogr.OFTReal),
    ]
    if with_probability:
        fields.append(ogr.FieldDefn("mean_prob", ogr.OFTReal))
    for field in fields + [source]:
        layer.CreateField(field)


def _mean_probabilities(
    regions: ogr.Layer, grid: GridSpec, scores_path: PathLike, scratch: Path
) -> np.ndarray:
    """Per region (in layer order), the mean probability of its class over its pixels:
    the regions are burned back as zones (their outlines are pixel edges, so each pixel
    lands in its own region) and the class's probability band averaged per zone."""
    ds = open_raster(scores_path)
    if (ds.RasterXSize, ds.RasterYSize) != (grid.width, grid.height):
        raise MapRefinerError(
            f"{Path(str(scores_path)).name} is {ds.RasterXSize}x{ds.RasterYSize} pixels, the "
            f"class map {grid.width}x{grid.height}; give the probabilities the same refine wrote."
        )
    regions.CreateField(ogr.FieldDefn("zone", ogr.OFTInteger))
    classes = []
    batched = regions.TestCapability(ogr.OLCTransactions)
    if batched:
        regions.StartTransaction()
    for i, region in enumerate(regions):
        region.SetField("zone", i + 1)
        regions.SetFeature(region)
        classes.append(region.GetField("class_id"))
    if batched:
        regions.CommitTransaction()
    if any(c >= ds.RasterCount for c in classes):
        raise MapRefinerError(
            f"{Path(str(scores_path)).name} has {ds.RasterCount} probability band(s); the class "
            f"map has class {max(classes)}: give the probabilities the same refine wrote."
        )
    zones_ds = _scratch_raster(scratch / "zones.tif", grid, gdal.GDT_Int32)
    gdal.RasterizeLayer(zones_ds, [1], regions, options=["ATTRIBUTE=zone"])
    n = len(classes) + 1
    class_of = np.array([-1] + classes)
    sums, counts = np.zeros(n), np.zeros(n)
    for y0, h in _row_blocks(grid):
        zones = zones_ds.GetRasterBand(1).ReadAsArray(0, y0, grid.width, h)
        for c in np.unique(class_of[zones]):
            if c < 0:
                continue  # pixels of no region
            prob = ds.GetRasterBand(int(c) + 1).ReadAsArray(0, y0, grid.width, h)
            sel = class_of[zones] == c
            sums += np.bincount(zones[sel], weights=prob[sel].astype(np.float64), minlength=n)
            counts += np.bincount(zones[sel], minlength=n)
    regions.ResetReading()
    return (sums / np.maximum(counts, 1))[1:]


def _row_blocks(grid: GridSpec) -> Iterator[tuple[int, int]]:
    """``(first row, row count)`` of blocks of about ``BLOCK_PIXELS`` pixels."""
    rows = max(1, BLOCK_PIXELS // grid.width)
    for y0 in range(0, grid.height, rows):
        yield y0, min(rows, grid.height - y0)


def _scratch_raster(path: Path, grid: GridSpec, dtype: int) -> gdal.Dataset:
    """A compressed single-band GeoTIFF on ``grid``, filled with 0."""
    return create_geotiff(
        path, grid.width, grid.height, 1, dtype, grid.geotransform, grid.projection_wkt
    )


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
        if i is None and str(c).strip().isdigit():  # an id given as text (CLI, Processing)
            i = int(str(c).strip())
        if i is None or not 0 <= int(i) < IGNORE:
            raise MapRefinerError(
                f"Unknown class {c!r}; give class ids or names of the map (see its legend)."
            )
        ids.append(int(i))
    return ids


def _polygonize(
    band: gdal.Band,
    grid: GridSpec,
    keep: list[int],
    eight_connected: bool,
    report: Reporter,
    scratch: Path | None = None,
) -> tuple[ogr.Layer, ogr.DataSource]:
    """The regions of the ``keep`` classes, in a GeoPackage layer in ``scratch`` (memory
    flat in the map's size), else in memory."""
    if scratch is None:
        mask_ds = mem_dataset(grid)
        store = ogr.GetDriverByName("Memory").CreateDataSource("regions")
    else:
        mask_ds = _scratch_raster(scratch / "mask.tif", grid, gdal.GDT_Byte)
        store = gdal.GetDriverByName("GPKG").Create(str(scratch / "regions.gpkg"), 0, 0, 0)
    nodata = band.GetNoDataValue()
    for y0, h in _row_blocks(grid):
        values = band.ReadAsArray(0, y0, grid.width, h)
        wanted = np.isin(values, keep) & (values != IGNORE)
        if nodata is not None:
            wanted &= values != nodata
        mask_ds.GetRasterBand(1).WriteArray(wanted.astype(np.uint8), 0, y0)
    layer = store.CreateLayer("regions", srs=grid.srs(), geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class_id", ogr.OFTInteger))
    batched = layer.TestCapability(ogr.OLCTransactions)  # one commit, not one per polygon
    if batched:
        layer.StartTransaction()

    def callback(complete: float, _message: object, _data: object) -> int:
        report.report(complete)
        return 0 if report.is_cancelled() else 1

    options = ["8CONNECTED=8"] if eight_connected else []
    try:
        gdal.Polygonize(band, mask_ds.GetRasterBand(1), layer, 0, options, callback=callback)
        if batched:
            layer.CommitTransaction()
        report.check()
    except BaseException as exc:
        layer = store = None  # closed now, not when the traceback goes after the folder
        report.check()
        if isinstance(exc, RuntimeError) and scratch is None:
            raise MapRefinerError("Vectorizing the class map failed.", details=str(exc)) from exc
        raise  # on disk: the caller says it as a write error (disk full, folder gone)
    return layer, store


def _write(
    regions: ogr.Layer,
    out: ogr.Layer,
    grid: GridSpec,
    names: list[str],
    shaper: _Shaper,
    min_area_m2: float,
    report: Reporter,
    target: VectorTarget,
    source: str = "",
    means: np.ndarray | None = None,
) -> tuple[int, int]:
    measure = _Measure(grid)
    total = max(1, regions.GetFeatureCount())
    count = small = 0
    defn = out.GetLayerDefn()
    shared = None
    if shaper.shared_borders:  # every region first: a border is simplified once for both
        shared = simplify_shared(
            [measure.local(r.GetGeometryRef()) for r in regions], shaper.simplify_m
        )
        regions.ResetReading()
        report.check()
    for i, region in enumerate(regions):
        if i % _CHECK_EVERY == 0:
            report.check()
            report.report(i / total)
        cid = region.GetField(0)
        shape = shaper.shape_of(cid)
        if shared is not None:
            shape = functools.partial(_given, shared[i])
        geom, area = measure.shaped(region.GetGeometryRef(), shape)
        if geom is None or geom.IsEmpty():
            continue
        if area < min_area_m2:
            small += 1
            continue
        feat = ogr.Feature(defn)
        feat.SetField("class_id", cid)
        feat.SetField("class", names[cid])
        feat.SetField("area_m2", area)
        feat.SetField("source", source[:254])
        if means is not None:
            feat.SetField("mean_prob", round(float(means[i]), 4))
        feat.SetGeometry(ogr.ForceToPolygon(geom))
        with target.write_errors():
            out.CreateFeature(feat)
        count += 1
    report.check()
    return count, small


def _given(outline: ogr.Geometry, _geom: ogr.Geometry, _border: object) -> ogr.Geometry:
    return outline


@dataclass(frozen=True)
class _Shaper:
    """What becomes of each class's outlines: regularised, simplified (each on its own,
    or with ``shared_borders`` each border once for both sides) or kept."""

    simplify_m: float
    regularize: set[int]
    regularizer: Regularizer
    shared_borders: bool = False

    def shape_of(self, class_id: int) -> Shape | None:
        if class_id in self.regularize:
            return self.regularizer.polygon
        if self.simplify_m > 0:
            tolerance = self.simplify_m
            return lambda geom, _border: geom.SimplifyPreserveTopology(tolerance)
        return None


class _Measure:
    """Outlines reshaped and measured in metres, in the map's CRS or a local
    equal-area one."""

    def __init__(self, grid: GridSpec) -> None:
        self.bounds = grid.bounds
        self.to_local: osr.CoordinateTransformation | None = None
        self.from_local: osr.CoordinateTransformation | None = None
        srs = grid.srs()
        if srs is None:
            log.warning("The class map has no CRS; area_m2 is in squared map units.")
        elif not is_metric(grid):
            local = local_metric_srs(grid, equal_area=True)
            self.to_local = osr.CoordinateTransformation(srs, local)
            self.from_local = osr.CoordinateTransformation(local, srs)

    def shaped(self, geom: ogr.Geometry, shape: Shape | None) -> tuple[ogr.Geometry | None, float]:
        """``geom`` reshaped by ``shape`` in metres (None: kept), and its area in m²."""
        local = self.local(geom)
        if shape is not None:
            local = shape(local, self.on_border(geom))
            if local is None or local.IsEmpty():
                return None, 0.0
            if self.from_local is None:
                return local, local.GetArea()
            geom = local.Clone()
            geom.Transform(self.from_local)
        return geom, local.GetArea()

    def local(self, geom: ogr.Geometry) -> ogr.Geometry:
        """A copy of ``geom`` in metres."""
        local = geom.Clone()
        if self.to_local is not None:
            local.Transform(self.to_local)
        return local

    def on_border(self, geom: ogr.Geometry) -> list[np.ndarray]:
        """Per ring of a polygon in the map's CRS, which points lie on the map's edge
        (the polygonised outline's points there are exactly on it)."""
        x0, y0, x1, y1 = self.bounds
        eps = 1e-9 * max(abs(x0), abs(x1), abs(y0), abs(y1), 1.0)
        out = []
        for i in range(geom.GetGeometryCount()):
            xy = np.array(geom.GetGeometryRef(i).GetPoints())[:, :2]
            x, y = xy[:, 0], xy[:, 1]
            out.append(
                (np.abs(x - x0) < eps)
                | (np.abs(x - x1) < eps)
                | (np.abs(y - y0) < eps)
                | (np.abs(y - y1) < eps)
            )
        return out
