"""Training labels on an image grid, burned from a vector layer.

Labels are ``uint8`` arrays on a :class:`GridSpec`: class index ``0..K-1``, and
:data:`IGNORE` (255) where the loss must not look. Label rasters (masks) are
read by :mod:`.rasters`; grids live in :mod:`..rasters.grid`; all are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import ogr, osr

from ..errors import MapRefinerError
from ..rasters.grid import GridSpec, grid_of, scaled
from ..vectors.read import open_layer
from ..vocabulary import label_mode
from .burn import BurnList, Extent, Shape, filter_to_grid
from .classes import IGNORE, ClassResolver
from .geometry import GeometryPrep, is_point, make_prep
from .rasters import downsample_labels, read_label_raster
from .unchosen_field import UnchosenFields

__all__ = [
    "IGNORE",
    "GridSpec",
    "VectorLabels",
    "burn_vector",
    "downsample_labels",
    "grid_of",
    "rasterize_vector",
    "read_label_raster",
    "scaled",
    "vector_shapes",
]
ogr.UseExceptions()
log = logging.getLogger(__name__)
PathLike = Union[str, Path]


@dataclass
class VectorLabels:
    """Burned labels and how many features were left out, and why."""

    labels: np.ndarray
    shapes: list[Shape] = field(default_factory=list)  # what was burned, in burn order
    burned: int = 0
    unknown_class: int = 0
    unknown_ids: list[int] = field(default_factory=list)  # the first such features' ids
    points: int = 0
    failed: int = 0


def rasterize_vector(
    path: PathLike,
    grid: GridSpec,
    class_names: Sequence[str],
    class_field: str | None = None,
    value_map: Mapping[object, int] | None = None,
    layer: str | int | None = None,
    line_width_m: float = 7.0,
    mode: str = "tile",
    extent: Extent = None,
) -> np.ndarray:
    """Labels burned from a vector layer onto ``grid`` (see :func:`burn_vector`)."""
    return burn_vector(
        path, grid, class_names, class_field, value_map, layer, line_width_m, mode, extent
    ).labels


def burn_vector(
    path: PathLike,
    grid: GridSpec,
    class_names: Sequence[str],
    class_field: str | None = None,
    value_map: Mapping[object, int] | None = None,
    layer: str | int | None = None,
    line_width_m: float = 7.0,
    mode: str = "tile",
    extent: Extent = None,
    allow_empty: bool = False,
) -> VectorLabels:
    """Burn polygons, and lines buffered to ``line_width_m`` ground metres, onto ``grid``.

    Without ``class_field`` every feature is class 1; with it, the value goes
    through ``value_map`` (keys compared as strings), else matches a class
    name (any case) or is a class index. ``mode="tile"``: pixels of ``extent``
    (default the whole grid; a bbox, geometry or WKT in grid CRS units) that no
    feature covers are background 0, the rest IGNORE. ``mode="sparse"``: only
    pixels inside features are labelled. A pixel is burned when its centre is
    inside; where features overlap, the later one in layer order wins.
    Features with no usable class, points and features that cannot be
    reprojected are skipped, counted and logged. A grid no feature falls on is an
    error (labels that teach nothing), unless ``allow_empty`` (a window of a map
    with nothing there, e.g. a prior's tile without buildings); such a window's skipped
    features are not logged either (the caller reports the layer once: refine/prior.py).
    """
    mode = label_mode(mode)
    result, burns = _read_features(
        path, grid, class_names, class_field, value_map, layer, line_width_m, allow_empty
    )
    result.labels = burns.rasterize(mode, extent)
    return result


def vector_shapes(
    path: PathLike,
    grid: GridSpec,
    class_names: Sequence[str],
    class_field: str | None = None,
    value_map: Mapping[object, int] | None = None,
    layer: str | int | None = None,
    line_width_m: float = 7.0,
    every_class: bool = False,
) -> VectorLabels:
    """What :func:`burn_vector` would burn onto ``grid``, unburned (``labels`` empty): for
    a caller that burns only a window of a large grid (a fine-tune's corrections).
    ``every_class``: a feature near the grid without a usable class is an error, not
    skipped (a user's correction polygon that would silently teach nothing)."""
    return _read_features(
        path, grid, class_names, class_field, value_map, layer, line_width_m, False, every_class
    )[0]


def _read_features(
    path: PathLike,
    grid: GridSpec,
    class_names: Sequence[str],
    class_field: str | None,
    value_map: Mapping[object, int] | None,
    layer: str | int | None,
    line_width_m: float,
    allow_empty: bool,
    every_class: bool = False,
) -> tuple[VectorLabels, BurnList]:
    if line_width_m < 0:
        raise MapRefinerError(f"The line width must be positive, not {line_width_m} m.")
    resolver = ClassResolver(class_names, value_map, class_field is None)
    ds, lyr = open_layer(path, layer)
    name = f"{Path(str(path)).name}:{lyr.GetName()}"
    field_index = class_field_index(lyr, class_field, name)
    if lyr.GetFeatureCount() == 0:
        raise MapRefinerError(f"The layer {name} has no features; choose a layer with labels.")
    layer_srs = _layer_srs(lyr, name)
    filter_to_grid(lyr, layer_srs, grid, line_width_m)
    burns = BurnList(grid)
    prep = _prep(layer_srs, grid, line_width_m, name)
    # no class field: are the model's other classes named in one nobody chose? (not for a
    # prior's windows: its layer was checked once, refine/prior.py)
    watch = (
        UnchosenFields.of_layer(lyr, class_names) if field_index < 0 and not allow_empty else None
    )
    try:
        result = _collect(lyr, field_index, resolver, prep, burns, watch)
    except RuntimeError as exc:  # e.g. a truncated .shp: GDAL fails mid-way through the features
        raise MapRefinerError(
            f"Cannot read the features of {name}: the file is damaged or "
            "truncated; save the layer again or use a complete copy.",
            details=str(exc),
        ) from exc
    del ds  # the layer was read; close the file
    if watch is not None:
        watch.refuse(name)
    if every_class and result.unknown_class:
        _refuse_unknown(result, resolver, name, class_field, class_names)
    if not allow_empty:
        _report(result, resolver, name)
    if result.burned == 0 and not allow_empty:
        _refuse_empty(result, resolver, name, class_field)
    result.shapes = burns.shapes
    return result, burns


def _prep(
    layer_srs: osr.SpatialReference | None, grid: GridSpec, line_width_m: float, name: str
) -> GeometryPrep:
    """The transforms onto the grid, or a message that the CRSs do not meet."""
    try:
        return make_prep(layer_srs, grid, line_width_m)
    except RuntimeError as exc:  # PROJ knows no way between them (e.g. a local CRS)
        src = layer_srs.GetName() if layer_srs is not None else "none"
        dst = grid.srs()
        raise MapRefinerError(
            f"The CRS of {name} ({src}) cannot be transformed to the raster's CRS "
            f"({dst.GetName() if dst is not None else 'none'}); reproject the layer into the "
            "raster's CRS, or set the layer's CRS right, and try again.",
            details=str(exc),
        ) from exc


def _refuse_empty(
    result: VectorLabels, resolver: ClassResolver, name: str, class_field: str | None
) -> None:
    """Why nothing was burned, as an error that says what to do."""
    if result.unknown_class:
        raise MapRefinerError(
            f"No feature of {name} near the raster has a usable class in field {class_field!r} "
            f"(values such as {resolver.unknown_examples()}); give a value map or class names "
            "that match these values."
        )
    if result.points:
        raise MapRefinerError(
            f"{name} holds only points near the raster; labels must be polygons (or lines, "
            "burned to a width), so draw polygons over the objects."
        )
    raise MapRefinerError(
        f"No feature of {name} falls on the raster; check that the vector and the raster "
        "cover the same area and that their CRSs are set correctly."
    )


def _refuse_unknown(
    result: VectorLabels,
    resolver: ClassResolver,
    name: str,
    class_field: str | None,
    class_names: Sequence[str],
) -> None:
    """Features without a class the model knows, as an error naming them and the classes."""
    ids = ", ".join(str(i) for i in result.unknown_ids)
    more = ", ..." if result.unknown_class > len(result.unknown_ids) else ""
    values = resolver.unknown_values()
    shown = ", ".join("an empty value" if v is None else repr(v) for v in values)
    named = next((v for v in values if v is not None), None)
    # a value map lists every value it reads: the class names too
    pairs = ([f"{named}:{len(class_names) - 1}"] if named is not None else []) + [
        f"{n}:{i}" for i, n in enumerate(class_names)
    ]
    example = ",".join(pairs)
    raise MapRefinerError(
        f"{result.unknown_class} polygon(s) of {name} have no usable class in field "
        f"{class_field!r} ({shown}; feature id(s) {ids}{more}), so they would teach nothing. "
        f"The model's classes are {', '.join(class_names)}: give each polygon one of these "
        f"names (or its index, 0-{len(class_names) - 1}), delete the polygons, or map your "
        f"values to classes with a value map naming every value (--value-map; Processing: "
        f"the class field's values; e.g. '{example}')."
    )


def _collect(
    lyr: ogr.Layer,
    field_index: int,
    resolver: ClassResolver,
    prep: GeometryPrep,
    burns: BurnList,
    watch: UnchosenFields | None = None,
) -> VectorLabels:
    result = VectorLabels(np.empty((0, 0), np.uint8))
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        if watch is not None:
            watch.see(feat)
        if is_point(geom):
            result.points += 1
            continue
        value = None
        if field_index >= 0 and feat.IsFieldSetAndNotNull(field_index):
            value = feat.GetField(field_index)
        cls = resolver.resolve(value)
        if cls is None:
            result.unknown_class += 1
            if len(result.unknown_ids) < 10:
                result.unknown_ids.append(int(feat.GetFID()))
            continue
        try:
            parts = prep.burnable(geom)
        except RuntimeError as exc:
            log.debug("Feature %s skipped: %s", feat.GetFID(), exc)
            result.failed += 1
            continue
        on_grid = [burns.add(part, cls, result.burned) for part in parts]
        result.burned += any(on_grid)
    return result


def class_field_index(lyr: ogr.Layer, class_field: str | None, name: str) -> int:
    """The index of ``class_field`` in ``lyr`` (any case), -1 for None; a missing field
    is an error that lists the layer's fields."""
    if class_field is None:
        return -1
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    for i, f in enumerate(fields):
        if f.lower() == class_field.lower():
            return i
    shown = ", ".join(fields[:20]) + (", ..." if len(fields) > 20 else "")
    raise MapRefinerError(
        f"The layer {name} has no field {class_field!r}; choose one of: {shown or '(no fields)'}."
    )


#: What GeoPackage layers created without a CRS report (srs_id 0 and -1).
_UNDEFINED_SRS = ("Undefined geographic SRS", "Undefined Cartesian SRS")


def _layer_srs(lyr: ogr.Layer, name: str) -> osr.SpatialReference | None:
    srs = lyr.GetSpatialRef()
    if srs is not None and (srs.GetName() or "").lower() in {n.lower() for n in _UNDEFINED_SRS}:
        srs = None
    if srs is None:
        log.warning("%s has no CRS; assuming the raster's CRS.", name)
        return None
    srs = srs.Clone()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _report(result: VectorLabels, resolver: ClassResolver, name: str) -> None:
    if result.unknown_class:
        log.warning(
            "%d feature(s) of %s have no usable class (values such as %s) and were skipped.",
            result.unknown_class,
            name,
            resolver.unknown_examples(),
        )
    if result.points:
        log.warning(
            "%d point feature(s) of %s were ignored; only polygons and lines are burned.",
            result.points,
            name,
        )
    if result.failed:
        log.warning(
            "%d feature(s) of %s could not be reprojected and were skipped.", result.failed, name
        )
