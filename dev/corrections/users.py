"""Simulated cartographers: where each one draws its K corrections.

Every user draws on the left half of the scene only (the right half is what the
study scores) and draws what a careful cartographer would, copied from the
accurate reference: a building the map missed is traced whole (every reference
building the miss touches), a false building is outlined as background. Users
differ in the order they find the errors:

* ``largest``: the largest error regions first (the acceptance check's user);
* ``uncertainty``: follows the dialog's "where to draw next" list (the base
  model's most uncertain 12 m cells, engine/refine/uncertainty.py), drawing the
  error regions that fall in each listed place, largest first;
* ``random``: the error regions in a random order (seeded);
* ``disagreement``: follows a list ranked like the uncertainty user's, but by the base
  model's disagreement with a second model (``disagreement``: the fit's anchor partner
  in study.py), which may point at errors the base model is sure of;
* ``either``: the same list ranked by the larger of the two, the base model's
  uncertainty and that disagreement (the signal passed in is already that maximum);
* ``interleave``: the uncertainty user's list and the disagreement user's taken in
  turns (first of one, first of the other, ...), each error drawn once.

How the user draws each error (``drawn_as``, the study's ``--drawing``): ``traced``,
pixel for pixel from the reference (every user above, by default); ``rough:D``, as a
person clicks a polygon's corners at a working zoom: the outline simplified by D metres
(Douglas-Peucker) and moved out or in by up to D metres (uniform, each polygon its own,
seeded); ``loose:D``, the same simplification but every outline D metres too far out
(a user who covers the error generously); ``inside:D``, moved in by up to D metres (a
user told to keep inside the object's edges); ``shifted:D``, the same simplification,
the outline neither grown nor shrunk but moved D metres in a random direction (each
polygon its own): generous on one side, inside on the other, as a hand that drew at a
working zoom or on imagery a little off; ``click``, a click on each error's innermost pixel
and the outline a colour region-growing tool grows from the image there (session 44's
probe of a click tool, click_outline.py, not built into the product: its rounds taught
next to nothing; ``clicked``, run by the study, which knows the image); ``core:F``, the
innermost share F (default 0.2) of each error, exact: a patch of the object as large as
the click's outlines but without their wrong pixels (session 44, ``core_of``).
``STYLE+snap`` (e.g. ``shifted:1+snap``): the drawn outlines then moved onto the image's
edges as `map-refiner snap-outlines` moves them (``snapped_to_edges``). Drawings stay on
the left half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr
from scipy import ndimage

from ...engine.labels.burn import shape_mask
from ...engine.rasters.grid import grid_of
from ...engine.refine.uncertainty import rank_regions, uncertainty
from ...training.corrections.overdrawn import ahead, reach_px, snap_in_crop

Correction = tuple[np.ndarray, int]  # pixel mask on the image grid, class (1 building)
USERS = (
    "largest",
    "uncertainty",
    "random",
    "disagreement",
    "either",
    "interleave",
    "turned",
    "swept",
    "swept_wrong",
    "reviewed",
    "clicked",
    "clicked_whole",
    "clicked_trimmed",
    "clicked_outlined",
    "clicked_outlined05",
)
DRAWINGS = ("traced", "rough", "loose", "inside", "shifted", "click", "core")
MIN_PIXELS = 20  # smaller error specks are not worth a polygon


def error_regions(pred: np.ndarray, ref: np.ndarray, half: int) -> list[tuple[int, Correction]]:
    """(size, correction) of every error region of the left half."""
    out = []
    buildings, _ = ndimage.label(ref)
    left = np.arange(ref.shape[1])[None, :] < half
    for err, cls in (((~pred) & ref, 1), (pred & ~ref, 0)):
        lab, n = ndimage.label(err & left)
        if not n:
            continue
        sizes = ndimage.sum(err & left, lab, range(1, n + 1))
        for i in np.nonzero(sizes >= MIN_PIXELS)[0]:
            region = lab == i + 1
            if cls == 1:
                ids = np.unique(buildings[region])
                region = np.isin(buildings, ids[ids > 0]) & left
            out.append((int(sizes[i]), (region, cls)))
    return out


def disagreement(probs: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Half the L1 distance between two models' class probabilities, per pixel (0 where
    they agree, 1 where each is sure of a different class)."""
    return (0.5 * np.abs(probs - other).sum(axis=0)).astype(np.float32)


def ordered(
    regions: list[tuple[int, Correction]],
    user: str,
    probs: np.ndarray,
    half: int,
    cell_px: int,
    seed: int = 0,
    signal: np.ndarray | None = None,
) -> list[Correction]:
    """The corrections in the order ``user`` draws them. ``signal``: what the uncertainty
    user's list ranks instead of the base model's uncertainty (a per-pixel map in [0, 1],
    e.g. two models' disagreement)."""
    by_size = sorted(regions, key=lambda r: -r[0])
    if user == "largest":
        return [c for _, c in by_size]
    if user == "random":
        order = np.random.default_rng(seed).permutation(len(regions))
        return [regions[i][1] for i in order]
    if user not in ("uncertainty", "disagreement", "either", "interleave"):
        raise ValueError(f"unknown user {user!r}")
    if user in ("disagreement", "either", "interleave") and signal is None:
        raise ValueError("the disagreement user needs a second model's signal")
    valid = np.zeros(probs.shape[1:], dtype=bool)
    valid[:, :half] = True
    if user == "interleave":
        lists = [_listed(by_size, s, valid, cell_px) for s in (uncertainty(probs), signal)]
        turns = [i for pair in zip(*lists, strict=True) for i in pair]
    else:
        turns = _listed(
            by_size, uncertainty(probs) if user == "uncertainty" else signal, valid, cell_px
        )
    order = list(dict.fromkeys(turns))  # each error once, where it first comes
    return [by_size[i][1] for i in order]


def _listed(
    by_size: list[tuple[int, Correction]], ranked: np.ndarray, valid: np.ndarray, cell_px: int
) -> list[int]:
    """Indices into ``by_size`` in the order a user following the list of places ranked
    by ``ranked`` draws them (the errors in each place largest first, then the rest)."""
    out: list[int] = []
    used: set[int] = set()
    for region in rank_regions(ranked, valid, cell=cell_px, top=None):
        for i, (_, (mask, _cls)) in enumerate(by_size):
            if i not in used and mask[region.y0 : region.y1, region.x0 : region.x1].any():
                used.add(i)
                out.append(i)
    return out + [i for i in range(len(by_size)) if i not in used]


def drawn_as(
    corrections: list[Correction],
    drawing: str,
    pixel_m: float,
    half: int,
    seed: int = 0,
    image: Path | None = None,
) -> list[Correction]:
    """``corrections`` as the user draws them (module docstring): ``traced`` as they are,
    ``rough:D``, ``loose:D`` or ``inside:D`` redrawn as polygons, ``click`` grown from
    ``image`` (clicked), ``core:F`` their cores, clipped to the left ``half`` columns."""
    style, _, amount = drawing.partition(":")
    if style not in DRAWINGS:
        styles = ", ".join(DRAWINGS)
        raise ValueError(f"drawing is one of {styles} (rough:D, loose:D, inside:D, shifted:D)")
    if style == "traced":
        return corrections
    if style == "click":
        if image is None:
            raise ValueError("a click drawing grows its outlines from the image: pass image")
        return clicked(corrections, image, half)
    if style == "core":  # session 44: a patch of each error, exact, its innermost share
        share = float(amount or 0.2)
        return [(core_of(mask, share), cls) for mask, cls in corrections]
    if not amount:
        raise ValueError(f"{style} needs a distance in metres: {style}:1")
    d_px = float(amount) / pixel_m
    low, high = {
        "loose": (d_px, d_px),
        "rough": (-d_px, d_px),
        "inside": (-d_px, 0.0),
        "shifted": (0.0, 0.0),
    }[style]
    rng = np.random.default_rng(seed)
    out = []
    for mask, cls in corrections:
        offset = float(rng.uniform(low, high))
        redrawn = redrawn_mask(mask, d_px, offset)
        if style == "shifted":
            angle = float(rng.uniform(0.0, 2 * np.pi))
            dy, dx = round(d_px * np.sin(angle)), round(d_px * np.cos(angle))
            redrawn = ahead(redrawn, -dy, -dx)  # moved dy rows down, dx columns right
        redrawn[:, half:] = False
        out.append((redrawn if redrawn.sum() >= MIN_PIXELS else mask, cls))
    return out


def redrawn_mask(mask: np.ndarray, simplify_px: float, offset_px: float) -> np.ndarray:
    """``mask``'s outline simplified by ``simplify_px`` and moved out by ``offset_px``
    (in when negative), burned back onto the mask's grid (pixel coordinates)."""
    ys, xs = np.nonzero(mask)
    pad = int(np.ceil(abs(offset_px) + simplify_px)) + 2
    y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
    y1, x1 = min(mask.shape[0], ys.max() + 1 + pad), min(mask.shape[1], xs.max() + 1 + pad)
    crop = mask[y0:y1, x0:x1].astype(np.uint8)
    h, w = crop.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mem.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    mem.GetRasterBand(1).WriteArray(crop)
    vds = ogr.GetDriverByName("Memory").CreateDataSource("")
    lyr = vds.CreateLayer("drawn", None, ogr.wkbPolygon)
    gdal.Polygonize(mem.GetRasterBand(1), mem.GetRasterBand(1), lyr, -1)
    out_lyr = vds.CreateLayer("redrawn", None, ogr.wkbPolygon)
    for f in lyr:
        g = f.GetGeometryRef().SimplifyPreserveTopology(simplify_px).Buffer(offset_px, 2)
        if g is not None and not g.IsEmpty():
            nf = ogr.Feature(out_lyr.GetLayerDefn())
            nf.SetGeometry(g)
            out_lyr.CreateFeature(nf)
    burnt = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    burnt.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # neither side has a CRS: pixels
    gdal.RasterizeLayer(burnt, [1], out_lyr, burn_values=[1])
    gdal.PopErrorHandler()
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = burnt.GetRasterBand(1).ReadAsArray() > 0
    return out


def snapped_to_edges(
    corrections: list[Correction], image: np.ndarray, pixel_m: float, half: int
) -> list[Correction]:
    """Each building polygon's outline moved stretch by stretch onto the image's edges
    (overdrawn.snap_outline, session 33's experiment: ``study --drawing shifted:1+snap``);
    background polygons as drawn; on the left ``half`` only."""
    reach = reach_px(pixel_m)
    every = np.zeros(image.shape[1:], bool)
    for m, _ in corrections:
        every |= m
    out = []
    for mask, cls in corrections:
        if cls != 1:
            out.append((mask, cls))
            continue
        ys, xs = np.nonzero(mask)
        pad = reach + 4
        y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + 1 + pad)
        m = mask[y0:y1, x0:x1]
        moved = np.zeros_like(mask)
        moved[y0:y1, x0:x1] = snap_in_crop(
            m, image[:, y0:y1, x0:x1], pixel_m, others=every[y0:y1, x0:x1] & ~m
        )
        moved[:, half:] = False
        out.append((moved if moved.sum() >= MIN_PIXELS else mask, cls))
    return out


def _inside_distance(mask: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """The slices of ``mask``'s bounding box and, inside it, each pixel's distance to the
    mask's outline (0 outside the mask)."""
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return box, ndimage.distance_transform_edt(np.pad(mask[box], 1))[1:-1, 1:-1]


def core_of(mask: np.ndarray, share: float) -> np.ndarray:
    """The innermost ``share`` of ``mask``'s pixels (those furthest from its outline), the
    part joined to its innermost pixel: a patch of the error drawn exactly (precision 1),
    as large as a fraction of it (session 44's ``core:F`` drawing)."""
    box, dist = _inside_distance(mask)
    sub = mask[box]
    lab, _ = ndimage.label(sub & (dist >= np.quantile(dist[sub], 1.0 - share)))
    out = np.zeros_like(mask)
    out[box] = lab == lab[np.unravel_index(np.argmax(dist), dist.shape)]
    return out if out.any() else mask


def innermost(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` furthest from its outline (where a user clicks it)."""
    box, dist = _inside_distance(mask)
    cy, cx = np.unravel_index(np.argmax(dist), dist.shape)
    return int(cy + box[0].start), int(cx + box[1].start)


def outlined(image: Path, cy: int, cx: int, shape: tuple[int, int]) -> np.ndarray:
    """What click_outline.outline_at outlines for a click on pixel (cy, cx),
    burned on the image's grid (nothing where it outlines nothing)."""
    from ...engine.errors import MapRefinerError
    from .click_outline import outline_at

    ds = gdal.Open(str(image))
    gt = ds.GetGeoTransform()
    x = gt[0] + (cx + 0.5) * gt[1] + (cy + 0.5) * gt[2]
    y = gt[3] + (cx + 0.5) * gt[4] + (cy + 0.5) * gt[5]
    try:
        found = outline_at(image, x, y)
    except MapRefinerError:
        return np.zeros(shape, bool)
    return burned_polygon(found.wkt, ds)


def clicked(corrections: list[Correction], image: Path, half: int) -> list[Correction]:
    """``corrections`` as a user of a click tool would draw them (session 44): a click
    on each error's innermost pixel, the outline the tool grows from the image there
    (click_outline.py), of the error's class, clipped to the left ``half``; a click
    whose outline is under MIN_PIXELS gives nothing (the user would draw that one by
    hand: not simulated)."""
    out = []
    for mask, cls in corrections:
        cy, cx = innermost(mask)
        found = outlined(image, cy, cx, mask.shape)
        found[:, half:] = False
        if found.sum() >= MIN_PIXELS:
            out.append((found, cls))
    return out


def write_corrections(corrections: list[Correction], like: gdal.Dataset, path: Path) -> Path:
    """The corrections as a GeoPackage polygon layer with a ``class`` field."""
    arr = np.zeros((like.RasterYSize, like.RasterXSize), np.uint8)
    for mask, cls in corrections:
        arr[mask] = 1 + cls
    return write_class_polygons(arr, like, path)


def write_class_polygons(
    classes: np.ndarray,
    like: gdal.Dataset,
    path: Path,
    names: tuple[str, ...] = ("background", "building"),
) -> Path:
    """Polygons of ``classes`` (on ``like``'s grid: 0 nothing, k the class ``names[k - 1]``,
    by default 1 background and 2 building) as a GeoPackage layer ``corrections`` with a
    ``class`` field holding the names; replaces ``path``."""
    mem = gdal.GetDriverByName("MEM").Create(
        "", like.RasterXSize, like.RasterYSize, 1, gdal.GDT_Byte
    )
    mem.SetGeoTransform(like.GetGeoTransform())
    mem.SetProjection(like.GetProjection())
    mem.GetRasterBand(1).WriteArray(classes)
    drv = ogr.GetDriverByName("GPKG")
    if path.exists():
        drv.DeleteDataSource(str(path))
    vds = drv.CreateDataSource(str(path))
    lyr = vds.CreateLayer(
        "corrections", osr.SpatialReference(wkt=like.GetProjection()), ogr.wkbPolygon
    )
    lyr.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    gdal.Polygonize(mem.GetRasterBand(1), mem.GetRasterBand(1), lyr, 0)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for f in lyr:
        f.SetField("class", names[f.GetField("value") - 1])
        lyr.SetFeature(f)
    vds = None
    return path


#: How far past a wrong change the swept user's rectangle reaches (metres; session 41:
#: the desktop session's drag is the change's box 8 m wider each way).
SWEEP_PAD_M = 8.0
#: The careful rectangle user (``swept_wrong``) drags only where at least this share of
#: the changed pixels inside the box are wrong, as the tooltip advises.
SWEEP_WRONG_AT_LEAST = 0.8


#: The reviewing user (``reviewed``, session 42) turns back a listed change when more than
#: this share of its pixels is wrong (it looks at the image and sees the change is wrong).
REVIEW_WRONG_OVER = 0.5


def reviewed(
    pieces: list,
    pred: np.ndarray,
    ref: np.ndarray,
    like: gdal.Dataset,
    wrong_over: float = REVIEW_WRONG_OVER,
    parent: np.ndarray | None = None,
    half: int | None = None,
    trimmed: bool = False,
    rough_px: float = 0.0,
    seed: int = 0,
) -> list[list[Correction]]:
    """The review-list user (session 42): goes down the iterations dock's list of a
    round's largest changes (``pieces``, engine largest_changes of the left half's changes
    layer), looks at each and turns back, with a click, those mostly wrong against the
    reference (``pred``: the round's building map): the whole change, as the tool adds it,
    of the class it had. One drag (a list of corrections) per change turned back. Given
    every change of the left half (``clicked``), the user who looks at every change and
    clicks the largest wrong ones: what clicking gives without the list's cut. With
    ``parent`` (the parent's building map) and ``half``, a part of a roof the round erased
    goes back as the parent's whole building there (its 8-connected building pixels that
    touch the change, on the left half): ``clicked_whole``, a tool that would turn back
    the object, not only the part the round changed. With ``trimmed``, each clicked change
    is cut down to its wrong pixels (``clicked_trimmed``: a user who edits the polygon to
    leave out the part of the change that is right); with ``rough_px`` too, the wrong part
    outlined by hand as *Turn changes back* with Shift takes it (``clicked_outlined``): its
    outline simplified by ``rough_px`` and moved out or in by up to that much (each its
    own, seeded), and only the change's pixels inside it (study: 1 m, ``clicked_outlined05``
    0.5 m)."""
    whole = ndimage.label(parent, structure=np.ones((3, 3)))[0] if parent is not None else None
    rng = np.random.default_rng(seed)
    clicks = []
    for piece in pieces:
        mask = burned_polygon(piece.wkt, like)
        if mask.any() and (mask & (pred != ref)).sum() > wrong_over * mask.sum():
            if trimmed:
                wrong = mask & (pred != ref)
                if rough_px > 0:
                    offset = float(rng.uniform(-rough_px, rough_px))
                    wrong = mask & redrawn_mask(wrong, rough_px, offset)
                if not wrong.any():
                    continue
                mask = wrong
            if whole is not None and piece.was == "building":
                ids = np.unique(whole[mask])
                mask = mask | np.isin(whole, ids[ids > 0])
                mask[:, half:] = False
            clicks.append([(mask, int(piece.was == "building"))])
    return clicks


def burned_polygon(wkt: str, like: gdal.Dataset) -> np.ndarray:
    """A polygon (WKT in ``like``'s CRS) as a mask of ``like``'s pixels (centres inside)."""
    return shape_mask(grid_of(like), ogr.CreateGeometryFromWkt(wkt))


def swept(
    wrong: list[Correction],
    pred: np.ndarray,
    before: np.ndarray,
    half: int,
    pad_px: int,
    ref: np.ndarray | None = None,
    wrong_at_least: float = 0.0,
) -> list[list[Correction]]:
    """The rectangle user's drags (session 41, Turn changes back by rectangle): for each
    of a round's wrong changes ``wrong`` (in the order the user picks them), its box
    ``pad_px`` wider each way on the left ``half``; every change inside (``pred``, the
    round's building map, against ``before``, its parent's), right or wrong, turned back
    to the class it had: up to two corrections a drag (back to building, to background).
    With ``ref`` (the reference building mask), only the boxes where at least
    ``wrong_at_least`` of the changed pixels are wrong are dragged."""
    changed = pred != before
    changed[:, half:] = False
    h, w = pred.shape
    drags = []
    for mask, _ in wrong:
        rows, cols = np.nonzero(mask)
        y0, y1 = max(0, rows.min() - pad_px), min(h, rows.max() + pad_px + 1)
        x0, x1 = max(0, cols.min() - pad_px), min(half, cols.max() + pad_px + 1)
        box = np.zeros_like(changed)
        box[y0:y1, x0:x1] = True
        inside = changed & box
        if ref is not None and (inside & (pred != ref)).sum() < wrong_at_least * inside.sum():
            continue
        drags.append(
            [
                (inside & (before == c), int(c))
                for c in (True, False)
                if (inside & (before == c)).any()
            ]
        )
    return drags
