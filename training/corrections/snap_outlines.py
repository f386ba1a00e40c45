"""Correction polygons moved onto the image's edges (``map-refiner snap-outlines``).

A hand-drawn outline is often off to one side: generous on one side, inside the object
on the other. Each polygon of an object class is burned on the image's grid and each
stretch of its outline at least MIN_SIDE_M long is moved onto the edge the image shows
within REACH_M of it (overdrawn.snap_outline: in where it was drawn past the object,
out where it was drawn inside), never into another polygon; background polygons, and
stretches where the image shows no clear edge, stay as drawn. The result is a new layer
(the input is never touched) that a cartographer can look at, edit and fine-tune on.
Session 33's study (docs/results_corrections.md) measured it on outlines moved a metre
to one side and on traced ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, ogr, osr

from ...engine.errors import MapRefinerError
from ...engine.labels.burn import Shape
from ...engine.labels.geometry import make_prep
from ...engine.labels.kept import KeptCorrections
from ...engine.labels.rasterize import class_field_index
from ...engine.progress import CancelFn, ProgressFn, make_reporter
from ...engine.rasters.grid import GridSpec, grid_of, window
from ...engine.rasters.read import ground_resolution, open_image, raster_info
from ...engine.vectors.read import open_layer
from ...engine.vectors.write import VectorTarget
from .overdrawn import reach_px, snap_in_crop

PathLike = Union[str, Path]
#: The field the output adds: 1 where the outline moved, 0 where it stayed as drawn.
SNAPPED_FIELD = "snapped"


@dataclass(frozen=True)
class SnapResult:
    path: Path
    features: int  # written
    snapped: int  # whose outline moved
    kept: int  # left as drawn: background polygons, no clear edge, nothing burnable

    def message(self) -> str:
        return (
            f"{self.snapped} of {self.features} outline(s) moved onto the image's edges, "
            f"{self.kept} left as drawn; wrote {self.path.name}."
        )


def snap_outlines(
    image: PathLike,
    corrections: PathLike,
    out: PathLike,
    class_field: str = "class",
    keep: Sequence[str] = ("background",),
    layer: str | None = None,
    bands: Sequence[int] = (1, 2, 3),
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> SnapResult:
    """Write ``corrections`` to ``out`` with every polygon whose ``class_field`` is not in
    ``keep`` (any case) moved onto ``image``'s edges, stretch by stretch; fields kept, and
    SNAPPED_FIELD added. A cancel (CancelledError) leaves no file behind."""
    report = make_reporter(progress, is_cancelled)
    target = VectorTarget.for_path(out, [image, corrections], overwrite)
    ds = open_image(image)
    info = raster_info(ds)
    if info.band_count < max(bands):
        raise MapRefinerError(
            f"{Path(image).name} has {info.band_count} band(s); snapping reads bands "
            f"{', '.join(map(str, bands))}."
        )
    grid = grid_of(ds)
    pixel_m = float(np.mean(ground_resolution(info)))
    vds, lyr = open_layer(corrections, layer)
    field = class_field_index(lyr, class_field, Path(corrections).name)
    layer_srs = lyr.GetSpatialRef()
    to_grid = make_prep(layer_srs, grid, 0.0).to_grid
    back = _inverse(to_grid)
    lyr.ResetReading()
    feats = [f for f in lyr]
    shapes = [_in_grid(f.GetGeometryRef(), to_grid) for f in feats]
    keep_names = {k.lower() for k in keep}
    inv = gdal.InvGeoTransform(grid.geotransform)
    defn = lyr.GetLayerDefn()
    snapped = kept = 0
    with target.writing(layer_srs, ogr.wkbMultiPolygon) as olyr:
        for i in range(defn.GetFieldCount()):
            olyr.CreateField(defn.GetFieldDefn(i))
        olyr.CreateField(ogr.FieldDefn(SNAPPED_FIELD, ogr.OFTInteger))
        for n, (f, shape) in enumerate(zip(feats, shapes, strict=True)):
            report.check()
            report.report(n / max(1, len(feats)))
            name = f.GetFieldAsString(field) if field >= 0 else ""
            moved = None
            if shape is not None and name.lower() not in keep_names:
                others = [s for s in shapes if s is not None and s is not shape]
                moved = _snapped(ds, bands, grid, inv, shape, others, pixel_m)
            geom = f.GetGeometryRef().Clone() if f.GetGeometryRef() else None
            if moved is not None:
                geom = moved.Clone()
                if back is not None:
                    geom.Transform(back)
                snapped += 1
            else:
                kept += 1
            of = ogr.Feature(olyr.GetLayerDefn())
            for i in range(defn.GetFieldCount()):
                of.SetField(i, f.GetField(i))
            of.SetField(SNAPPED_FIELD, int(moved is not None))
            if geom is not None:
                of.SetGeometry(ogr.ForceToMultiPolygon(geom))
            olyr.CreateFeature(of)
    del lyr, vds  # the source layer lived as long as its features were read
    report.report(1.0)
    return SnapResult(Path(out), len(feats), snapped, kept)


def snapped_kept(
    kept: KeptCorrections,
    ds: gdal.Dataset,
    bands: Sequence[int],
    pixel_m: float,
    keep: Sequence[int] = (),
) -> tuple[KeptCorrections, int, int]:
    """``kept``'s polygons (on ``ds``'s grid, in its CRS) with every polygon whose class
    is not in ``keep`` moved onto the image's edges as :func:`snap_outlines` moves them
    (FitParams.snap_outlines: what a fit learns from, while the drawn polygons are the
    ones a refine burns); how many moved, and of how many tried."""
    grid = kept.grid
    inv = gdal.InvGeoTransform(grid.geotransform)
    geoms = [ogr.CreateGeometryFromWkt(s.wkt) for s in kept.shapes]
    shapes, moved_count, tried = [], 0, 0
    for i, (s, geom) in enumerate(zip(kept.shapes, geoms, strict=True)):
        moved = None
        if s.cls not in keep and geom is not None and not geom.IsEmpty():
            tried += 1
            others = geoms[:i] + geoms[i + 1 :]
            moved = _snapped(ds, bands, grid, inv, geom, others, pixel_m)
        if moved is None:
            shapes.append(s)
        else:
            shapes.append(Shape(s.cls, s.feature, moved.ExportToWkt()))
            moved_count += 1
    return KeptCorrections(grid, shapes, kept.image), moved_count, tried


def _inverse(
    to_grid: osr.CoordinateTransformation | None,
) -> osr.CoordinateTransformation | None:
    if to_grid is None:
        return None
    return to_grid.GetInverse()


def _in_grid(
    geom: ogr.Geometry | None, to_grid: osr.CoordinateTransformation | None
) -> ogr.Geometry | None:
    """A polygon feature's geometry in the grid's CRS (None: no polygon)."""
    if geom is None or geom.IsEmpty():
        return None
    flat = ogr.GT_Flatten(geom.GetGeometryType())
    if flat not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
        return None
    g = geom.Clone()
    if to_grid is not None:
        g.Transform(to_grid)
    return g if g.IsValid() else g.Buffer(0)


def _snapped(
    ds: gdal.Dataset,
    bands: Sequence[int],
    grid: GridSpec,
    inv: tuple[float, ...],
    shape: ogr.Geometry,
    others: list[ogr.Geometry],
    pixel_m: float,
) -> ogr.Geometry | None:
    """``shape`` (grid CRS) moved onto the image's edges, or None where it stays."""
    minx, maxx, miny, maxy = shape.GetEnvelope()
    cols, rows = [], []
    for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)):
        c, r = gdal.ApplyGeoTransform(inv, x, y)
        cols.append(c)
        rows.append(r)
    pad = reach_px(pixel_m) + 4
    x0 = max(0, int(np.floor(min(cols))) - pad)
    y0 = max(0, int(np.floor(min(rows))) - pad)
    x1 = min(grid.width, int(np.ceil(max(cols))) + pad)
    y1 = min(grid.height, int(np.ceil(max(rows))) + pad)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    w, h = x1 - x0, y1 - y0
    crop_gt = window(grid, x0, y0, w, h).geotransform
    mask = _burn([shape], crop_gt, w, h)
    if not mask.any():
        return None
    near = [o for o in others if o.Intersects(_box(crop_gt, w, h))]
    other = _burn(near, crop_gt, w, h) & ~mask if near else None
    image = np.stack([ds.GetRasterBand(b).ReadAsArray(x0, y0, w, h) for b in bands]).astype(
        np.float32
    )
    moved = snap_in_crop(mask, image, pixel_m, others=other)
    if not moved.any() or (moved == mask).all():
        return None
    return _polygons(moved, crop_gt)


def _box(gt: tuple[float, ...], w: int, h: int) -> ogr.Geometry:
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for px, py in ((0, 0), (w, 0), (w, h), (0, h), (0, 0)):
        ring.AddPoint_2D(gt[0] + px * gt[1] + py * gt[2], gt[3] + px * gt[4] + py * gt[5])
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def _burn(shapes: list[ogr.Geometry], gt: tuple[float, ...], w: int, h: int) -> np.ndarray:
    """The pixels of a ``w`` x ``h`` crop at ``gt`` whose centres lie in ``shapes`` (both
    in the grid's CRS, so neither carries one)."""
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(gt)
    vds = ogr.GetDriverByName("Memory").CreateDataSource("")
    lyr = vds.CreateLayer("shapes", None, ogr.wkbUnknown)
    for s in shapes:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(s)
        lyr.CreateFeature(f)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # "no CRS on either side": the same one
    try:
        gdal.RasterizeLayer(mem, [1], lyr, burn_values=[1])
    finally:
        gdal.PopErrorHandler()
    return mem.GetRasterBand(1).ReadAsArray() > 0


def _polygons(mask: np.ndarray, gt: tuple[float, ...]) -> ogr.Geometry | None:
    """``mask``'s pixels as one multipolygon in the crop's CRS (GDAL's polygonize)."""
    h, w = mask.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(gt)
    band = mem.GetRasterBand(1)
    band.WriteArray(mask.astype(np.uint8))
    vds = ogr.GetDriverByName("Memory").CreateDataSource("")
    lyr = vds.CreateLayer("parts", None, ogr.wkbPolygon)
    gdal.Polygonize(band, band, lyr, -1)
    out = ogr.Geometry(ogr.wkbMultiPolygon)
    for f in lyr:
        out.AddGeometry(f.GetGeometryRef().Clone())
    return out if out.GetGeometryCount() else None
