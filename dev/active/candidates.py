"""What a simulated user can copy from the reference, and how the user picks it.

Two units of correction:

* ``polygon``: one of the reference's building polygons, drawn with a background
  ring around it (``ring_m`` wide, ``gap_m`` clear of every building), or a
  background square (``square_m``, ``gap_m`` clear of buildings). A building
  drawn alone would teach one class only.
* ``cell``: one square cell of the region grid (the dock's "where to draw next"
  boxes) with everything the reference says inside it: the buildings clipped to
  the cell and the rest of the cell as background.

A user guided by the uncertainty ranking goes through the ranked regions and, in
each, draws the candidate holding the most uncertainty there; a user without
guidance draws the candidate under a random point of the tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from ...engine.refine.uncertainty import Region

gdal.UseExceptions()
ogr.UseExceptions()
BUILDING, BACKGROUND = 1, 0
Part = tuple[str, int]  # WKT, class


@dataclass
class Candidates:
    """``ids[y, x]``: the candidate a pixel belongs to (-1: none); each candidate's
    polygons with their classes, and its labelled pixels beyond ``ids`` (rings)."""

    ids: np.ndarray
    parts: list[list[Part]]
    projection: str
    extra: dict = field(default_factory=dict)  # candidate -> bool mask

    def has_building(self, cid: int) -> bool:
        return any(cls == BUILDING for _, cls in self.parts[cid])

    def mask(self, chosen: Sequence[int]) -> np.ndarray:
        """Pixels the chosen corrections label."""
        out = np.isin(self.ids, np.asarray(list(chosen), dtype=np.int32))
        for cid in chosen:
            if cid in self.extra:
                out |= self.extra[cid]
        return out


def _burn(ds: gdal.Dataset, wkt: str) -> np.ndarray:
    """``wkt`` rasterized on ``ds``'s grid, as a bool mask."""
    mem = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(ds.GetGeoTransform())
    mem.SetProjection(ds.GetProjection())
    one = ogr.GetDriverByName("Memory").CreateDataSource("")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(ds.GetProjection())
    lyr = one.CreateLayer("g", srs, ogr.wkbUnknown)
    feature = ogr.Feature(lyr.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
    lyr.CreateFeature(feature)
    gdal.RasterizeLayer(mem, [1], lyr, burn_values=[1])
    return mem.GetRasterBand(1).ReadAsArray() == 1


def _box(gt: Sequence[float], x0: int, y0: int, x1: int, y1: int) -> ogr.Geometry:
    xa, xb = gt[0] + x0 * gt[1], gt[0] + x1 * gt[1]
    ya, yb = gt[3] + y0 * gt[5], gt[3] + y1 * gt[5]
    ring = f"{xa} {ya},{xb} {ya},{xb} {yb},{xa} {yb},{xa} {ya}"
    return ogr.CreateGeometryFromWkt(f"POLYGON (({ring}))")


def _buildings(path: Path) -> tuple[list[ogr.Geometry], ogr.Geometry]:
    source = ogr.Open(str(path))
    geoms = [feature.GetGeometryRef().Clone() for feature in source.GetLayer(0)]
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for geom in geoms:
        union.AddGeometry(geom)
    return geoms, union.UnionCascaded()


def polygon_candidates(
    image: Path, buildings: Path, square_m: float = 6.0, gap_m: float = 0.6, ring_m: float = 2.4
) -> Candidates:
    """Building polygons with their rings, and background squares."""
    ds = gdal.Open(str(image))
    gt, h, w = ds.GetGeoTransform(), ds.RasterYSize, ds.RasterXSize
    geoms, union = _buildings(buildings)
    keep_out = union.Buffer(gap_m)
    cands = Candidates(np.full((h, w), -1, dtype=np.int32), [], ds.GetProjection())
    for i, geom in enumerate(geoms):
        cands.ids[_burn(ds, geom.ExportToWkt())] = i
        parts = [(geom.ExportToWkt(), BUILDING)]
        ring = geom.Buffer(gap_m + ring_m).Difference(keep_out)
        if not ring.IsEmpty():
            parts.append((ring.ExportToWkt(), BACKGROUND))
            cands.extra[i] = _burn(ds, parts[-1][0])
        cands.parts.append(parts)
    near = _burn(ds, keep_out.ExportToWkt()) | (cands.ids >= 0)
    step = max(1, int(round(square_m / abs(gt[1]))))
    for y0 in range(0, h - step + 1, step):
        for x0 in range(0, w - step + 1, step):
            if not near[y0 : y0 + step, x0 : x0 + step].any():
                cands.ids[y0 : y0 + step, x0 : x0 + step] = len(cands.parts)
                cands.parts.append(
                    [(_box(gt, x0, y0, x0 + step, y0 + step).ExportToWkt(), BACKGROUND)]
                )
    return cands


def cell_candidates(image: Path, buildings: Path, cell: int) -> Candidates:
    """Every ``cell`` x ``cell`` pixel cell, labelled inside as the reference says."""
    ds = gdal.Open(str(image))
    gt, h, w = ds.GetGeoTransform(), ds.RasterYSize, ds.RasterXSize
    _, union = _buildings(buildings)
    cands = Candidates(np.full((h, w), -1, dtype=np.int32), [], ds.GetProjection())
    for y0 in range(0, h, cell):
        for x0 in range(0, w, cell):
            box = _box(gt, x0, y0, min(w, x0 + cell), min(h, y0 + cell))
            cands.ids[y0 : y0 + cell, x0 : x0 + cell] = len(cands.parts)
            inside = box.Intersection(union)
            parts = [] if inside.IsEmpty() else [(inside.ExportToWkt(), BUILDING)]
            rest = box.Difference(union)
            if not rest.IsEmpty():
                parts.append((rest.ExportToWkt(), BACKGROUND))
            cands.parts.append(parts)
    return cands


def by_uncertainty(
    cands: Candidates, unc: np.ndarray, regions: Sequence[Region], count: int
) -> list[int]:
    """In ranked order, each region's candidate with the most uncertainty inside it."""
    chosen: list[int] = []
    for region in regions:
        ids = cands.ids[region.y0 : region.y1, region.x0 : region.x1]
        weights = unc[region.y0 : region.y1, region.x0 : region.x1]
        ok = ids >= 0
        if not ok.any():
            continue
        mass = np.bincount(ids[ok], weights=weights[ok], minlength=len(cands.parts))
        mass[chosen] = -1.0
        best = int(mass.argmax())
        if mass[best] > 0:
            chosen.append(best)
        if len(chosen) == count:
            break
    return chosen


def at_random(cands: Candidates, rng: np.random.Generator, count: int) -> list[int]:
    """The candidates under uniformly random points, each once."""
    chosen: list[int] = []
    h, w = cands.ids.shape
    for _ in range(100000):
        cid = int(cands.ids[rng.integers(h), rng.integers(w)])
        if cid >= 0 and cid not in chosen:
            chosen.append(cid)
            if len(chosen) == count:
                break
    return chosen


def _multipolygon(wkt: str) -> ogr.Geometry:
    """The polygon parts of a geometry (an intersection may add lines or points)."""
    geom = ogr.CreateGeometryFromWkt(wkt)
    out = ogr.Geometry(ogr.wkbMultiPolygon)
    stack = [geom]
    while stack:
        g = stack.pop()
        name = g.GetGeometryName()
        if name == "POLYGON":
            out.AddGeometry(g)
        elif name in ("MULTIPOLYGON", "GEOMETRYCOLLECTION"):
            stack += [g.GetGeometryRef(i).Clone() for i in range(g.GetGeometryCount())]
    return out


def write_anchored_labels(
    path: Path, image: Path, base_classes: np.ndarray, cands: Candidates, chosen: Sequence[int]
) -> Path:
    """A label raster: the base model's own class map, with the chosen corrections burned
    over it (a correction changes the map where it is drawn, nothing else)."""
    ds = gdal.Open(str(image))
    out = gdal.GetDriverByName("GTiff").Create(
        str(path), ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte
    )
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    labels = base_classes.astype(np.uint8).copy()
    for cid in chosen:
        for wkt, cls in cands.parts[cid]:
            labels[_burn(ds, wkt)] = cls
    out.GetRasterBand(1).WriteArray(labels)
    out = None
    return path


def write_polygons(
    path: Path, cands: Candidates, chosen: Sequence[int], class_names: Sequence[str]
) -> Path:
    """A GeoPackage of the chosen candidates' polygons, ``class`` = class name."""
    if path.exists():
        path.unlink()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(cands.projection)
    out = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = out.CreateLayer("corrections", srs, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for cid in chosen:
        for wkt, cls in cands.parts[cid]:
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("class", class_names[cls])
            feature.SetGeometry(_multipolygon(wkt))
            layer.CreateFeature(feature)
    out = None
    return path
