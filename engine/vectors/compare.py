"""What the image contradicts in a map the user already has: a change list.

``compare`` matches the features of a prior vector layer (OSM buildings, a cadastre,
an older survey) with the objects of one class in a refined class map, and writes one
flag per prior feature and one per refined object no prior feature explains:

* ``kept``: a refined object covers the feature in place (IoU >= ``kept_iou``, its
  centroid within ``moved_m``);
* ``moved``: the best refined object near it is the same shape shifted by at least
  ``moved_m`` (IoU >= ``kept_iou`` once the feature is moved by the centroid offset,
  given as ``dx_m``/``dy_m``/``shift_m``);
* ``reshaped``: a refined object overlaps it but neither in place nor shifted;
* ``not seen``: no refined object within ``search_m`` of it (or covering less than
  ``seen_share`` of it);
* ``new``: a refined object (at least ``min_area_m2``) that touches no prior feature.

Prior features that share one refined object (terraced houses, buildings drawn touching:
the refined map has no pixel between them, so it joins them) are judged together first:
where the object is the union of those it covers (at least ``kept_iou`` of each, in
place or once moved by the group's offset), each of them is kept or moved with the
group's IoU and shift, and ``group_size`` says how many features the object stands
for. The others, and features alone on their object, are judged one by one as above.

A mapper then reviews a list instead of the whole map. Geometry work happens in
metres (the map's CRS when it is metric, else a local projection); the flags are
written in the refined map's CRS, atomically, as GeoPackage or Shapefile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..labels.classes import IGNORE, ClassResolver
from ..labels.rasterize import class_field_index
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.files import scratch_folder
from ..rasters.grid import grid_of, is_metric, local_metric_srs
from ..rasters.read import open_raster
from ..refine.memory import bounded_memory
from .read import open_layer
from .vectorize import _class_ids, _names, _polygonize
from .write import VectorTarget

gdal.UseExceptions()
ogr.UseExceptions()
log = logging.getLogger(__name__)
PathLike = Union[str, Path]
STATUSES = ("kept", "moved", "reshaped", "not seen", "new")
#: How often a group of features sharing one refined object is moved and pruned of the
#: members the object does not cover (_grouped); two rounds settle the tests' rows.
GROUP_ROUNDS = 4


@dataclass
class CompareParams:
    class_name: str = "building"  # the refined map's class the prior features are
    prior_class_field: str | None = None  # None: every prior feature is that class
    prior_value_map: Mapping[object, int] | None = None  # field value -> class index
    prior_layer: str | None = None  # the prior file's layer (None: its only one)
    kept_iou: float = 0.5
    moved_m: float = 1.0
    search_m: float = 4.0
    seen_share: float = 0.2
    min_area_m2: float = 2.0  # smaller refined specks are never "new"

    def check(self) -> None:
        if not 0 < self.kept_iou <= 1:
            raise MapRefinerError(f"kept_iou must be in (0, 1], not {self.kept_iou}.")
        if not 0 <= self.seen_share <= 1:
            raise MapRefinerError(f"seen_share must be in [0, 1], not {self.seen_share}.")
        for name in ("moved_m", "search_m", "min_area_m2"):
            value = getattr(self, name)
            if not 0 <= value < 1e6:
                raise MapRefinerError(f"{name} must be between 0 and 1e6, not {value}.")


@dataclass
class CompareResult:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATUSES)


@dataclass
class _Flag:
    status: str
    geom: ogr.Geometry  # in metres
    prior_fid: int | None = None
    iou: float | None = None
    dx: float | None = None
    dy: float | None = None
    group_size: int | None = None  # prior features judged together on one object


def compare(
    prior_path: PathLike,
    refined_path: PathLike,
    out_path: PathLike,
    params: CompareParams | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> CompareResult:
    """Flag each prior feature (kept / moved / reshaped / not seen) against the refined
    map's objects of ``params.class_name``, and each unexplained object as new."""
    params = params or CompareParams()
    params.check()
    target = VectorTarget.for_path(out_path, [prior_path, refined_path], overwrite)
    report = make_reporter(progress, is_cancelled)
    ds = open_raster(refined_path)
    band = ds.GetRasterBand(1)
    grid = grid_of(ds)  # first: GDAL 3.6 reads the category names only then
    srs = grid.srs()
    if srs is None:
        raise MapRefinerError(
            f"{Path(str(refined_path)).name} has no CRS; a comparison needs both layers placed."
        )
    names = _names(band, None)
    cls = _class_ids([params.class_name], names)[0]
    metric = srs if is_metric(grid) else local_metric_srs(grid)
    to_metric = None if metric is srs else osr.CoordinateTransformation(srs, metric)
    cats = list(band.GetCategoryNames() or [])
    named = [i for i, c in enumerate(cats) if c]  # a colour table pads its names with ""
    k = min(IGNORE - 1, max(2, cls + 1, (named[-1] + 1) if named else 0))
    footprint = _footprint(grid.bounds, to_metric)
    prior = _prior_features(prior_path, metric, params, names[:k], cls, footprint)
    with bounded_memory(), scratch_folder(target.path) as scratch:
        objects = objects_ds = None
        try:
            with target.write_errors():
                regions, regions_ds = _polygonize(
                    band, grid, [cls], False, report.sub(0.0, 0.4), scratch
                )
                objects, objects_ds = _objects(regions, to_metric, scratch)
                del regions, regions_ds
            report.report(0.5)
            flags = _flag(prior, objects, params, report)
            back = None if to_metric is None else osr.CoordinateTransformation(metric, srs)
            counts = _write(target, srs, flags, back)
        finally:  # SQLite's objects closed before the scratch folder goes
            del objects, objects_ds
    report.report(1.0)
    result = CompareResult(target.path, counts)
    log.info("Compared %s with %s: %s.", Path(str(prior_path)).name, target.path, result.summary())
    return result


def _write(
    target: VectorTarget,
    srs: osr.SpatialReference,
    flags: Iterator[_Flag],
    back: osr.CoordinateTransformation | None,
) -> dict[str, int]:
    """Write the flags (in metres; ``back`` to the map's CRS) as they come; their counts."""
    counts = {s: 0 for s in STATUSES}
    with target.writing(srs, ogr.wkbMultiPolygon) as out:
        with target.write_errors():
            for name, kind in (
                ("status", ogr.OFTString),
                ("prior_fid", ogr.OFTInteger64),
                ("iou", ogr.OFTReal),
                ("shift_m", ogr.OFTReal),
                ("dx_m", ogr.OFTReal),
                ("dy_m", ogr.OFTReal),
                ("area_m2", ogr.OFTReal),
                ("group_size", ogr.OFTInteger),
            ):
                out.CreateField(ogr.FieldDefn(name, kind))
        defn = out.GetLayerDefn()
        for f in flags:
            feat = ogr.Feature(defn)
            feat.SetField("status", f.status)
            if f.prior_fid is not None:
                feat.SetField("prior_fid", f.prior_fid)
            if f.iou is not None:
                feat.SetField("iou", round(f.iou, 4))
            if f.dx is not None and f.dy is not None:
                feat.SetField("dx_m", round(f.dx, 3))
                feat.SetField("dy_m", round(f.dy, 3))
                feat.SetField("shift_m", round((f.dx**2 + f.dy**2) ** 0.5, 3))
            feat.SetField("area_m2", round(f.geom.GetArea(), 3))
            if f.group_size is not None:
                feat.SetField("group_size", f.group_size)
            geom = f.geom.Clone()
            if back is not None:
                geom.Transform(back)
            feat.SetGeometry(ogr.ForceToMultiPolygon(geom))  # a clipped feature may split
            with target.write_errors():
                out.CreateFeature(feat)
            counts[f.status] += 1
    return counts


def _objects(
    regions: ogr.Layer, to_metric: osr.CoordinateTransformation | None, scratch: Path
) -> tuple[ogr.Layer, gdal.Dataset]:
    """The refined objects in metres, in a GeoPackage layer in ``scratch`` (its spatial
    index finds neighbours; memory stays flat in the map's size), and its data source
    (keep it referenced while using the layer)."""
    store = gdal.GetDriverByName("GPKG").Create(str(scratch / "objects.gpkg"), 0, 0, 0)
    layer = store.CreateLayer("objects", geom_type=ogr.wkbPolygon)
    defn = layer.GetLayerDefn()
    layer.StartTransaction()  # one commit, not one per object
    for region in regions:
        geom = region.GetGeometryRef().Clone()
        if to_metric is not None:
            geom.Transform(to_metric)
        feat = ogr.Feature(defn)
        feat.SetGeometry(geom)
        layer.CreateFeature(feat)
    layer.CommitTransaction()
    return layer, store


def _prior_features(
    path: PathLike,
    metric: osr.SpatialReference,
    params: CompareParams,
    names: Sequence[str],
    cls: int,
    footprint: ogr.Geometry,
) -> list[tuple[int, ogr.Geometry]]:
    """(fid, polygon in metres, clipped to the map's ``footprint``) of the prior
    features of class ``cls`` on the map (every feature without a class field; else
    those whose value names it, or maps to it); features off the map are not compared."""
    ds, lyr = open_layer(path, params.prior_layer, "--prior-layer")
    name = f"{Path(str(path)).name}:{lyr.GetName()}"
    field_index = class_field_index(lyr, params.prior_class_field, name)
    resolver = ClassResolver(names, params.prior_value_map, False)
    layer_srs = lyr.GetSpatialRef()
    ct = None
    if layer_srs is not None:
        layer_srs = layer_srs.Clone()
        layer_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not layer_srs.IsSame(metric):
            ct = osr.CoordinateTransformation(layer_srs, metric)
    out = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty() or geom.GetDimension() != 2:
            continue
        if field_index >= 0 and resolver.resolve(feat.GetField(field_index)) != cls:
            continue
        geom = geom.Clone()
        try:
            if ct is not None:
                geom.Transform(ct)
        except RuntimeError as exc:
            raise MapRefinerError(
                f"The features of {name} cannot be placed on the map (their CRS does not "
                "transform to the map's); check the layer's CRS.",
                details=str(exc),
            ) from exc
        if not geom.Intersects(footprint):
            continue
        if not geom.IsValid():
            geom = geom.MakeValid() if hasattr(geom, "MakeValid") else geom.Buffer(0)
        geom = geom.Intersection(footprint)
        if geom is None or geom.IsEmpty() or geom.GetArea() <= 0:
            continue
        out.append((feat.GetFID(), geom))
    del ds
    if not out:
        raise MapRefinerError(
            f"No feature of {name} is a polygon of class {params.class_name!r}; check the "
            "layer and its class field."
        )
    return out


def _footprint(
    bounds: tuple[float, float, float, float], to_metric: osr.CoordinateTransformation | None
) -> ogr.Geometry:
    """The map's extent as a polygon in metres."""
    x0, y0, x1, y1 = bounds
    ring = ogr.Geometry(ogr.wkbLinearRing)
    steps = 16  # densified, so that a reprojected edge stays close to the true one
    for i in range(steps):
        ring.AddPoint_2D(x0 + (x1 - x0) * i / steps, y0)
    for i in range(steps):
        ring.AddPoint_2D(x1, y0 + (y1 - y0) * i / steps)
    for i in range(steps):
        ring.AddPoint_2D(x1 - (x1 - x0) * i / steps, y1)
    for i in range(steps):
        ring.AddPoint_2D(x0, y1 - (y1 - y0) * i / steps)
    ring.CloseRings()
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    if to_metric is not None:
        poly.Transform(to_metric)
    return poly


def _iou(a: ogr.Geometry, b: ogr.Geometry) -> float:
    inter = a.Intersection(b)
    i = inter.GetArea() if inter is not None else 0.0
    union = a.GetArea() + b.GetArea() - i
    return i / union if union > 0 else 0.0


def _shifted(geom: ogr.Geometry, dx: float, dy: float) -> ogr.Geometry:
    moved = geom.Clone()
    for i in range(moved.GetGeometryCount()):
        _shift_part(moved.GetGeometryRef(i), dx, dy)
    if moved.GetGeometryCount() == 0:
        _shift_part(moved, dx, dy)
    return moved


def _shift_part(g: ogr.Geometry, dx: float, dy: float) -> None:
    if g.GetGeometryCount():
        for i in range(g.GetGeometryCount()):
            _shift_part(g.GetGeometryRef(i), dx, dy)
        return
    for i in range(g.GetPointCount()):
        x, y = g.GetX(i), g.GetY(i)
        g.SetPoint_2D(i, x + dx, y + dy)


def _flag(
    prior: list[tuple[int, ogr.Geometry]],
    objects: ogr.Layer,
    params: CompareParams,
    report,  # noqa: ANN001 - a Reporter
) -> Iterator[_Flag]:
    """Each prior feature's flag (one by one, then those sharing a refined object judged
    together: _grouped), then the new objects', one at a time (the new objects written as
    they come, never all held)."""
    explained: set[int] = set()
    flags: list[tuple[_Flag, int | None]] = []  # each feature's own flag, its best object
    for n, (fid, geom) in enumerate(prior):
        if n % 200 == 0:
            report.check()
            report.report(0.5 + 0.35 * n / max(1, len(prior)))
        flag, best_i = _alone(fid, geom, objects, params, explained)
        flags.append((flag, best_i))
    members: dict[int, list[int]] = {}  # refined object -> the features it is best for
    for n, (_, best_i) in enumerate(flags):
        if best_i is not None:
            members.setdefault(best_i, []).append(n)
    report.report(0.85)
    for obj_i, group in members.items():
        if len(group) < 2:
            continue
        report.check()
        feat = objects.GetFeature(obj_i)  # held: its geometry belongs to it
        obj = feat.GetGeometryRef().Clone()
        del feat
        judged = _grouped([(flags[n][0].prior_fid, flags[n][0].geom) for n in group], obj, params)
        for n, together in zip(group, judged):
            if together is not None:
                flags[n] = (together, obj_i)
    report.report(0.9)
    for flag, _ in flags:
        yield flag
    for obj in objects:
        if obj.GetFID() in explained:
            continue
        g = obj.GetGeometryRef()
        if g.GetArea() >= params.min_area_m2:
            yield _Flag("new", g.Clone())


def _alone(
    fid: int,
    geom: ogr.Geometry,
    objects: ogr.Layer,
    params: CompareParams,
    explained: set[int],
) -> tuple[_Flag, int | None]:
    """One prior feature's flag against the refined objects near it, judged alone, and
    its best object (the one covering most of it and its surroundings; None: none near).
    Every object it touches is added to ``explained``."""
    near = geom.Buffer(params.search_m)
    objects.SetSpatialFilter(near)
    candidates = sorted(
        ((o.GetFID(), o.GetGeometryRef().Clone()) for o in objects), key=lambda c: c[0]
    )
    objects.SetSpatialFilter(None)
    candidates = [(i, g) for i, g in candidates if g.Intersects(near)]
    for i, g in candidates:
        if g.Intersects(geom):
            explained.add(i)
    if not candidates:
        return _Flag("not seen", geom, fid), None
    covered = sum(
        (geom.Intersection(g).GetArea() for _, g in candidates if g.Intersects(geom)), 0.0
    )
    best_i, best = max(candidates, key=lambda c: c[1].Intersection(near).GetArea())
    explained.add(best_i)
    status, iou, dx, dy = _placed(geom, best, params)
    if status:
        return _Flag(status, geom, fid, iou, dx, dy, 1), best_i
    if covered < params.seen_share * geom.GetArea() and iou < params.kept_iou / 2:
        return _Flag("not seen", geom, fid, iou), best_i
    return _Flag("reshaped", geom, fid, iou, dx, dy, 1), best_i


def _grouped(
    features: Sequence[tuple[int | None, ogr.Geometry]], obj: ogr.Geometry, params: CompareParams
) -> list[_Flag | None]:
    """Features that share the refined object ``obj`` judged together. In place first:
    the members the object covers at least kept_iou of (a house of the row the image
    does not show leaves the group), kept where the object is their union (IoU >=
    kept_iou, centroids under moved_m apart). Else moved: the group is moved by the
    offset between its union's centroid and the object's, and members the moved object
    covers less than kept_iou of leave it, until it settles (GROUP_ROUNDS); moved where
    the object is their union moved by an offset of at least moved_m. Each member of a
    kept or moved group of at least two gets that flag with the group's IoU and offset;
    None for the others (judged alone)."""
    geoms = [g for _, g in features]
    present = [i for i, g in enumerate(geoms) if _covered(g, obj) >= params.kept_iou]
    status = ""
    if len(present) >= 2:
        status, iou, dx, dy = _placed(_union([geoms[i] for i in present]), obj, params)
    if status != "kept":
        present = list(range(len(geoms)))
        union = _union(geoms)
        dx, dy = _offset(union, obj)
        for _ in range(GROUP_ROUNDS):
            stay = [
                i for i in present if _covered(_shifted(geoms[i], dx, dy), obj) >= params.kept_iou
            ]
            if stay == present or len(stay) < 2:
                break
            present = stay
            union = _union([geoms[i] for i in present])
            dx, dy = _offset(union, obj)
        status, iou, dx, dy = _placed(union, obj, params)
        if len(stay) < 2 or status != "moved":
            return [None] * len(features)
    return [
        _Flag(status, g, fid, iou, dx, dy, len(present)) if i in present else None
        for i, (fid, g) in enumerate(features)
    ]


def _placed(
    geom: ogr.Geometry, obj: ogr.Geometry, params: CompareParams
) -> tuple[str, float, float, float]:
    """Whether the refined object ``obj`` is ``geom`` in place ("kept": IoU >= kept_iou,
    centroids under moved_m apart) or shifted ("moved": ``geom`` moved by the centroids'
    offset, at least moved_m, has IoU >= kept_iou with it), else ""; with their IoU in
    place and that offset (east, north)."""
    iou = _iou(geom, obj)
    dx, dy = _offset(geom, obj)
    shift = (dx * dx + dy * dy) ** 0.5
    if iou >= params.kept_iou and shift < params.moved_m:
        return "kept", iou, dx, dy
    if shift >= params.moved_m and _iou(_shifted(geom, dx, dy), obj) >= params.kept_iou:
        return "moved", iou, dx, dy
    return "", iou, dx, dy


def _union(geoms: Sequence[ogr.Geometry]) -> ogr.Geometry:
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for g in geoms:
        union = union.Union(g)
    return union


def _offset(geom: ogr.Geometry, obj: ogr.Geometry) -> tuple[float, float]:
    """The offset (east, north) from ``geom``'s centroid to ``obj``'s."""
    c0, c1 = geom.Centroid(), obj.Centroid()
    return c1.GetX() - c0.GetX(), c1.GetY() - c0.GetY()


def _covered(geom: ogr.Geometry, obj: ogr.Geometry) -> float:
    """The share of ``geom``'s area inside ``obj``."""
    inside = geom.Intersection(obj)
    area = geom.GetArea()
    return inside.GetArea() / area if inside is not None and area > 0 else 0.0
