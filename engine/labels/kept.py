"""Corrections a fine-tuned model keeps: the polygons the user drew, on the image
they were drawn on.

A cartographer who draws a roof must see that roof after the fine-tune, whatever
the networks learnt from it. The fine-tune stores the drawn polygons (in the
image's CRS) and the image's grid in the model's config; a refine of that same
image burns them over the refined map, so every pixel whose centre lies inside a
drawn polygon takes the drawn class. On any other raster they are not applied
(the ground may have changed there), nor, since session 51, where the image on the
same grid no longer shows under a polygon what it showed when it was drawn (another
year's tile of the same grid: drawn_look.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from osgeo import gdal, ogr

from ..errors import MapRefinerError
from ..rasters.grid import GridSpec, grid_of, lattice_offset, same_grid, window
from . import drawn_look
from .burn import BurnList, Shape
from .classes import IGNORE


@dataclass
class KeptCorrections:
    """Drawn polygons and the grid of the image they belong to."""

    grid: GridSpec
    shapes: list[Shape]
    image: str = ""  # file name, for messages only
    looks: dict[str, Any] | None = None  # what the image showed under each polygon
    # (drawn_look.to_config; None: a model fine-tuned before session 51)

    def to_dict(self) -> dict[str, Any]:
        g = self.grid
        out = {
            "image": self.image,
            "width": g.width,
            "height": g.height,
            "geotransform": list(g.geotransform),
            "crs": g.projection_wkt,
            "shapes": [{"class": s.cls, "feature": s.feature, "wkt": s.wkt} for s in self.shapes],
        }
        if self.looks is not None:
            out["looks"] = self.looks
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeptCorrections:
        try:
            grid = GridSpec(
                int(d["width"]),
                int(d["height"]),
                tuple(float(v) for v in d["geotransform"]),  # type: ignore[arg-type]
                str(d.get("crs") or ""),
            )
            shapes = [Shape(int(s["class"]), int(s["feature"]), str(s["wkt"])) for s in d["shapes"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise MapRefinerError(
                "The model's kept corrections are malformed; fine-tune the model again.",
                details=repr(exc),
            ) from exc
        if len(grid.geotransform) != 6:
            raise MapRefinerError(
                "The model's kept corrections are malformed; fine-tune the model again."
            )
        looks = d.get("looks")
        return cls(
            grid, shapes, str(d.get("image", "")), looks if isinstance(looks, dict) else None
        )

    def check_classes(self, num_classes: int) -> None:
        if any(not 0 <= s.cls < num_classes for s in self.shapes):
            raise MapRefinerError(
                "The model's kept corrections name a class the model does not "
                "have; fine-tune the model again."
            )

    def matches(self, grid: GridSpec) -> bool:
        """True when ``grid`` is the image the corrections were drawn on."""
        return same_grid(self.grid, grid)

    @property
    def features(self) -> int:
        return len({s.feature for s in self.shapes})

    def with_looks(self, ds: gdal.Dataset, bands: Sequence[int]) -> KeptCorrections:
        """These polygons with what ``ds`` (the image they are drawn on, on their grid)
        shows under each of them, in ``bands``."""
        looks = {f: drawn_look.thumbnail(ds, box, bands) for f, box in self._feature_boxes()}
        return KeptCorrections(
            self.grid, self.shapes, self.image, drawn_look.to_config(bands, looks)
        )

    def still_shown(self, ds: gdal.Dataset) -> tuple[KeptCorrections, int]:
        """The polygons under which ``ds`` (an image on their grid) shows what the image
        they were drawn on showed, and how many features are left out. Every polygon
        when no looks were kept (a model fine-tuned before session 51)."""
        kept = drawn_look.from_config(self.looks)
        if kept is None:
            return self, 0
        bands, looks = kept
        if any(not 1 <= b <= ds.RasterCount for b in bands):
            return KeptCorrections(self.grid, [], self.image, self.looks), self.features
        shown = {
            f
            for f, box in self._feature_boxes()
            if f in looks and drawn_look.looks_alike(looks[f], ds, box, bands)
        }
        left = self.features - len(shown)
        if not left:
            return self, 0
        shapes = [s for s in self.shapes if s.feature in shown]
        return KeptCorrections(self.grid, shapes, self.image, self.looks), left

    def _feature_boxes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        """Each drawn feature's pixel box on the grid (pixel_box), those on it only."""
        out = []
        for f in sorted({s.feature for s in self.shapes}):
            box = self.pixel_box([s for s in self.shapes if s.feature == f])
            if box is not None:
                out.append((f, box))
        return out

    def pixel_box(self, shapes: Sequence[Shape] | None = None) -> tuple[int, int, int, int] | None:
        """The pixels ``(x0, y0, x1, y1)`` of the image's grid that hold ``shapes`` (default
        every polygon; a pixel of margin), so that a large image is burned only there; None
        when none is on it."""
        inv = gdal.InvGeoTransform(self.grid.geotransform)
        xs, ys = [], []
        for s in self.shapes if shapes is None else shapes:
            ex0, ex1, ey0, ey1 = ogr.CreateGeometryFromWkt(s.wkt).GetEnvelope()
            for x, y in ((ex0, ey0), (ex0, ey1), (ex1, ey0), (ex1, ey1)):
                xs.append(inv[0] + x * inv[1] + y * inv[2])
                ys.append(inv[3] + x * inv[4] + y * inv[5])
        if not xs:
            return None
        g = self.grid
        x0, x1 = max(0, math.floor(min(xs)) - 1), min(g.width, math.ceil(max(xs)) + 1)
        y0, y1 = max(0, math.floor(min(ys)) - 1), min(g.height, math.ceil(max(ys)) + 1)
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def labels_on(self, grid: GridSpec) -> np.ndarray:
        """The drawn classes on ``grid`` (uint8, IGNORE where nothing was drawn)."""
        burns = BurnList(grid)
        for s in self.shapes:
            burns.add(ogr.CreateGeometryFromWkt(s.wkt), s.cls, s.feature)
        return burns.rasterize("sparse", None)

    def features_on(self, grid: GridSpec) -> np.ndarray:
        """The number of the drawn feature over each pixel of ``grid`` (int32, -1 where
        none; the later feature where they overlap)."""
        burns = BurnList(grid)
        for s in self.shapes:
            burns.add(ogr.CreateGeometryFromWkt(s.wkt), s.feature, s.feature)
        return burns.burn(gdal.GDT_Int32, -1)


def merged(old: KeptCorrections | None, new: KeptCorrections) -> KeptCorrections:
    """The polygons a round on ``new``'s image learns and keeps: ``new`` alone when ``old``
    belongs to another image, or when ``new`` continues ``old``'s layer (continues_layer: the
    user draws on in the same correction layer, where a polygon deleted, reshaped or given
    another class is gone from the layer and must go from the model too); else (a new
    layer for a further round) ``new`` after ``old``, later polygons winning where they
    overlap."""
    if old is None or not old.matches(new.grid) or continues_layer(old, new):
        return new
    return stacked(old, new)


def stacked(under: KeptCorrections, over: KeptCorrections) -> KeptCorrections:
    """The polygons of ``under`` and then ``over`` (both on ``over``'s grid), ``over``'s
    winning where they overlap."""
    return KeptCorrections(
        over.grid, _appended(_appended([], under.shapes), over.shapes), over.image
    )


def _appended(shapes: list[Shape], more: Sequence[Shape]) -> list[Shape]:
    """``shapes`` and then ``more``, whose features are numbered on after those of
    ``shapes`` (in their order)."""
    first = len({s.feature for s in shapes})
    renumber = {f: first + i for i, f in enumerate(sorted({s.feature for s in more}))}
    return shapes + [Shape(s.cls, renumber[s.feature], s.wkt) for s in more]


def continues_layer(old: KeptCorrections, new: KeptCorrections) -> bool:
    """True when ``new`` (a round's layer) holds one of ``old``'s outlines again, whatever
    its class: the user drew on in the layer the earlier round learnt from (outlines are
    read from a layer the same way each time, so a polygon left as it was has the same
    one). Until session 52 such a layer was merged with the earlier polygons, so a polygon
    deleted from it stayed in every later map."""
    if not old.matches(new.grid):
        return False
    outlines = {s.wkt for s in new.shapes}
    return any(s.wkt in outlines for s in old.shapes)


def left_out(old: KeptCorrections | None, new: KeptCorrections) -> int:
    """How many of ``old``'s polygons a layer that continues it no longer holds as they
    were (deleted, reshaped or given another class there): 0 when it does not continue
    it."""
    if old is None or not continues_layer(old, new):
        return 0
    now = {(s.cls, s.wkt) for s in new.shapes}
    return len({s.feature for s in old.shapes if (s.cls, s.wkt) not in now})


def window_grid(grid: GridSpec, x0: int, y0: int, x1: int, y1: int) -> GridSpec:
    """The pixels ``[x0, x1) x [y0, y1)`` of ``grid`` as a grid of their own."""
    return window(grid, x0, y0, x1 - x0, y1 - y0)


def burn_into(
    labels: np.ndarray, cls: np.ndarray, probs: np.ndarray | None, valid: np.ndarray
) -> int:
    """Drawn classes over a class map (and one-hot over its probabilities), on valid
    pixels only; returns how many pixels were set."""
    drawn = (labels != IGNORE) & valid
    if not drawn.any():
        return 0
    cls[drawn] = labels[drawn]
    if probs is not None:
        probs[:, drawn] = 0.0
        for k in range(probs.shape[0]):
            probs[k][drawn & (labels == k)] = 1.0
    return int(drawn.sum())


#: The key of a model's corrections entry that holds the polygons of the other images it
#: was fine-tuned on (a cartographer working tile by tile: each tile's polygons stay
#: burned into its maps after rounds on the next tiles; session 51).
OTHER_IMAGES = "other_images"


def from_config(
    corrections: dict[str, Any], num_classes: int, grid: GridSpec | None = None
) -> KeptCorrections | None:
    """The config's kept corrections, or None when it has none: with ``grid``, those of
    the image on that grid when the model keeps some for it (OTHER_IMAGES), else those of
    its last round's image."""
    if not corrections:
        return None
    kept = KeptCorrections.from_dict(corrections)
    if grid is not None and not kept.matches(grid):
        for entry in image_entries(corrections)[1:]:
            other = KeptCorrections.from_dict(entry)
            if other.matches(grid):
                kept = other
                break
    kept.check_classes(num_classes)
    return kept


@dataclass
class OnLattice:
    """The polygons a model keeps of images on the same pixel lattice as another image
    (lattice_offset: a crop of the image they were drawn on, a mosaic of its tiles, another
    fetch of a tiled web map), on that image's grid: those whose box lies wholly on it and
    under which it shows what was shown when they were drawn."""

    kept: KeptCorrections | None  # None: none to burn
    unlike: int = 0  # polygons on it under which it shows something else
    cut: int = 0  # polygons its edge cuts (not judged, not burned)


def on_lattice(corrections: dict[str, Any], num_classes: int, ds: gdal.Dataset) -> OnLattice:
    """The kept polygons of every image entry whose grid is a window of the same lattice as
    ``ds``'s (not ``ds``'s own grid: from_config gives those), carried onto ``ds``'s grid
    (OnLattice). A polygon is judged by what the image shows under its whole box, so one
    the image's edge cuts is left out and counted; models fine-tuned before session 51
    keep no looks, so their polygons go only to the grid they were drawn on."""
    grid = grid_of(ds)
    shapes: list[Shape] = []
    names: list[str] = []
    unlike = cut = 0
    for entry in image_entries(corrections):
        drawn = KeptCorrections.from_dict(entry)
        offset = lattice_offset(grid, drawn.grid)
        if offset is None or same_grid(drawn.grid, grid) or drawn.looks is None:
            continue  # (a model fine-tuned before session 51 keeps no looks to tell by)
        drawn.check_classes(num_classes)
        inside: set[int] = set()
        for f, (x0, y0, x1, y1) in drawn._feature_boxes():
            box = (x0 + offset[0], y0 + offset[1], x1 + offset[0], y1 + offset[1])
            if box[2] <= 0 or box[3] <= 0 or box[0] >= grid.width or box[1] >= grid.height:
                continue  # off this image
            if box[0] < 0 or box[1] < 0 or box[2] > grid.width or box[3] > grid.height:
                cut += 1
            else:
                inside.add(f)
        here = KeptCorrections(
            grid, [s for s in drawn.shapes if s.feature in inside], drawn.image, drawn.looks
        )
        if not here.shapes:
            continue
        here, gone = here.still_shown(ds)
        unlike += gone
        shapes = _appended(shapes, here.shapes)
        if here.shapes:
            names.append(drawn.image)
    kept = KeptCorrections(grid, shapes, ", ".join(n for n in names if n)) if shapes else None
    return OnLattice(kept, unlike, cut)


@dataclass
class Shown:
    """What a model's kept polygons are on one image (shown_on): what a refine of it
    burns and a fine-tune on it learns again."""

    kept: KeptCorrections | None  # those of its own grid it still shows, with those of
    # other images on its lattice under them (OnLattice); None when none
    entry: KeptCorrections | None  # the model's entry for its grid, or its last round's
    # when it has none for it (from_config); None for a model keeping none
    on_grid: bool  # ``entry`` is this image's grid's
    gone: int  # polygons of its grid under which it shows something else
    lattice: OnLattice


def shown_on(corrections: dict[str, Any], num_classes: int, ds: gdal.Dataset) -> Shown:
    """The kept polygons ``ds`` shows (Shown): those of its own grid under which it shows
    what it showed when they were drawn (still_shown), over those of images on its pixel
    lattice lying whole on it (on_lattice), which they win over where they overlap."""
    grid = grid_of(ds)
    entry = from_config(corrections, num_classes, grid)
    on_grid = entry is not None and entry.matches(grid)
    own, gone = entry.still_shown(ds) if entry is not None and on_grid else (None, 0)
    lattice = on_lattice(corrections, num_classes, ds)
    parts = [k for k in (lattice.kept, own) if k is not None and k.shapes]
    kept = stacked(*parts) if len(parts) == 2 else (parts[0] if parts else None)
    return Shown(kept, entry, on_grid, gone, lattice)


def to_config(kept: KeptCorrections, earlier: dict[str, Any] | None) -> dict[str, Any]:
    """A round's kept corrections as its model's config entry: ``kept`` (the polygons of
    the round's image), with those of every other image the base model's entry
    ``earlier`` keeps (OTHER_IMAGES), so that a model fine-tuned image after image burns
    each image's polygons into that image's maps."""
    out = kept.to_dict()
    others = [
        entry
        for entry in image_entries(earlier)
        if not KeptCorrections.from_dict(entry).matches(kept.grid)
    ]
    if others:
        out[OTHER_IMAGES] = others
    return out


def kept_images(corrections: object) -> list[str]:
    """The file names of the images a model keeps drawn polygons of, its last round's
    first (a model's header only: the dialog's note)."""
    return [str(e["image"]) for e in image_entries(corrections) if e.get("image")]


def image_entries(corrections: object) -> list[dict[str, Any]]:
    """A model's kept-corrections entry image by image, its last round's image first, each
    without the OTHER_IMAGES it nests (none for a model without corrections)."""
    if not isinstance(corrections, dict) or not corrections:
        return []
    others = corrections.get(OTHER_IMAGES) or []
    if not isinstance(others, list) or not all(isinstance(e, dict) for e in others):
        raise MapRefinerError(
            "The model's kept corrections are malformed; fine-tune the model again."
        )
    main = {k: v for k, v in corrections.items() if k != OTHER_IMAGES}
    return [main, *others]


__all__: Sequence[str] = [
    "OTHER_IMAGES",
    "KeptCorrections",
    "burn_into",
    "on_lattice",
    "shown_on",
    "stacked",
    "from_config",
    "image_entries",
    "kept_images",
    "merged",
    "to_config",
    "window_grid",
]
