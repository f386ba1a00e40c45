"""The part of a drawn polygon that the image's edges say lies past the object's edge.

A cartographer's outline lies within a metre or so of the object's edge, on either
side (session 31: outlines a metre too generous take nearly all a round teaches on
imagery the model reads, outlines a metre inside cost little). Where a polygon was
drawn too generously, its outline runs beside the object's edge rather than on it, and
a band of the polygon's class lies on the neighbouring ground. The image shows where
the edge is: the polygon shrunk step by step (image pixels, a square erosion) lays its
outline on the edge where the image's edge strength along it peaks. When that happens
well inside the drawn outline, and clearly (EDGE_GAIN over the outline as drawn, and
stronger than anywhere outside it), the pixels between the drawn outline and the edge
are what the hand overdrew. The fit leaves them out of its loss (like the fixed edge
band, interior.py, but only where the image says so and only as far as it says): an
outline on the edge, or inside it, keeps every pixel.

A hand's outline is rarely off by the same amount all round: generous on one side, it
is often tight or inside on the other (an outline drawn a metre to one side; session
33's ``shifted:1`` user). Shrinking such a polygon as a whole can find the object's
edge inside it on the tight side and take a ring of the object all round. So a stretch
rule exists, **opt-in** (FitParams.outline_side_m, ``min_side_m``; off by default): each
stretch of outline is judged on its own (``facing``, ``side_rings``): the outline pixels
that face one of eight directions (their outward normal, to the nearest eighth of a
turn), and the pixels 1, 2, ... steps in or out from them along it; a stretch leaves
out only its own strip, and the polygon as a whole is judged only when no stretch is
long enough. The stretches' profiles are medians (a few strong texture pixels do not
make an edge), need SIDE_GAIN, and count an outline as an edge of its own only where
the profile dips between it and the edge inside (drone imagery blurs an edge over a
metre, so an outline drawn beside it sits on its rising flank); a stretch whose outside
runs into another polygon or off the image is not judged. Session 33 measured it
(results_corrections "Session 33"): for shifted outlines it removes more of the wrong
pixels and fewer right ones than the whole-polygon rule (eight scenes' shares of drawn
pixels summed: 28.3 wrong removed and 17.7 right lost, against 11.6 and 35.8), but in
the study it
gave less than the default on the same rounds (shifted:1 own +29.3 against +49.4,
never seen +629.1 against +648.2), with fewer and smaller losses (worst -1.8 against
-5.3): not the default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ...engine.refine.registration import gradient_magnitude
from ..tile import IGNORE
from .interior import _all_within

#: How far inside the drawn outline the object's edge is looked for, in metres (the
#: hand's error measured in session 31's studies is up to about a metre).
REACH_M = 1.5
#: The edge strength along the shrunk outline must beat the drawn outline's by this
#: factor (and every outline grown outwards within the reach) to count. Session 32 set
#: it and NO_EDGE on the share of drawn pixels the reference contradicts, kept and left
#: out (dev/corrections/overdrawn_probe.py, nine scenes' 16 largest errors): at 1.15
#: without NO_EDGE, traced outlines lost 1-5 % of their pixels on four scenes (35 % on
#: LoveDA_1's few small polygons) and a never-seen Nepal round was no longer adopted; at
#: 1.5 with NO_EDGE they lose none but on Rio (1.4 %), and loose outlines' wrong pixels
#: still fall from 25-29 % to 4-16 % on the drones and Potsdam.
EDGE_GAIN = 1.5
#: The outline as drawn lies on an edge of its own (and is kept whole) where its edge
#: strength is over this factor of the mean along the outlines half the reach and more
#: outside it (0: no such test).
NO_EDGE = 1.3
#: Gaussian smoothing before the gradient, in metres (texture on drone imagery).
SMOOTH_M = 0.15
#: The directions (rows, columns) each stretch of outline is looked at from.
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
#: The stretch rule's length, when it is on (FitParams.outline_side_m): a stretch is
#: judged on its own when at least this long (metres of outline facing the direction);
#: shorter ones have too few pixels for a clear peak (3 and 4 m measured the same).
MIN_SIDE_M = 2.0
#: EDGE_GAIN for a stretch: its profile has fewer pixels than the polygon's. Set with
#: the rest of the stretch rule in session 33 on overdrawn_probe's label shares (nine
#: scenes; results_corrections "Session 33"): at 1.5 traced outlines lost up to 4.7 % of
#: their pixels on Kampala, at 2.0 3.7 %, mostly where the reference lies a little past
#: the roof's visible edge.
SIDE_GAIN = 2.0


def reach_px(pixel_m: float, reach_m: float = REACH_M) -> int:
    """REACH_M (or ``reach_m``) in pixels of ``pixel_m`` metres, at least one."""
    return max(1, int(round(reach_m / pixel_m)))


def colour_edges(image: np.ndarray, pixel_m: float) -> np.ndarray:
    """Gradient magnitude summed over the bands, each band smoothed and scaled by its
    own spread: ``(C, h, w)`` -> ``(h, w)`` float32 (colour edges between areas of equal
    brightness count too)."""
    img = np.asarray(image, dtype=np.float32)
    sigma = max(0.5, SMOOTH_M / pixel_m)
    out = np.zeros(img.shape[1:], np.float32)
    for band in img:
        spread = float(band.std())
        if spread > 0:
            out += gradient_magnitude(band / spread, sigma)
    return out


def edge_profile(mask: np.ndarray, strength: np.ndarray, reach_px: int) -> np.ndarray:
    """Mean edge strength along the outline of ``mask`` grown (negative steps) or shrunk
    (positive) by 0..``reach_px`` pixels: ``2 * reach_px + 1`` values, index ``reach_px``
    the outline as drawn; NaN where a step has no outline (shrunk to nothing)."""
    out = np.full(2 * reach_px + 1, np.nan, np.float64)
    inner = [mask]
    for k in range(1, reach_px + 2):
        inner.append(_all_within(mask, k))
    outer = [~mask]
    for k in range(1, reach_px + 1):
        outer.append(_all_within(~mask, k))
    for k in range(reach_px + 1):  # shrunk by k: the pixels k steps in from the outline
        ring = inner[k] & ~inner[k + 1]
        if ring.any():
            out[reach_px + k] = float(strength[ring].mean())
    for k in range(1, reach_px + 1):  # grown by k: the pixels k steps out
        ring = outer[k - 1] & ~outer[k]
        if ring.any():
            out[reach_px - k] = float(strength[ring].mean())
    return out


def overdrawn_steps(
    profile: np.ndarray, gain: float = EDGE_GAIN, no_edge: float = NO_EDGE, flank: bool = False
) -> int:
    """How many steps in from the drawn outline the object's edge lies (0: on it, or
    outside it, or not clearly anywhere). With ``flank``, an outline that stands out from
    the ground (``no_edge``) counts as an edge of its own only where the profile dips
    between it and the stronger edge inside: an outline on the rising flank of a soft
    edge (drone imagery blurs an edge over a metre) is not one."""
    reach = (len(profile) - 1) // 2
    drawn = profile[reach]
    if not np.isfinite(drawn):
        return 0
    inside = profile[reach + 1 :]
    if not np.isfinite(inside).any():
        return 0
    k = int(np.nanargmax(inside)) + 1
    ground = profile[: max(1, reach // 2)]  # half the reach and more outside the outline
    if no_edge and np.isfinite(ground).any() and drawn > no_edge * np.nanmean(ground):
        between = inside[: k - 1]
        if not flank or (np.isfinite(between).any() and np.nanmin(between) < drawn):
            return 0  # the outline as drawn lies on an edge of its own
    best = inside[k - 1]
    outside = profile[:reach]
    if best < gain * drawn or (np.isfinite(outside).any() and best <= np.nanmax(outside)):
        return 0
    return k


def ahead(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``m`` at each pixel's neighbour ``(dy, dx)`` away (False past the crop); with
    ``-dy, -dx``, ``m`` moved ``dy`` rows down and ``dx`` columns right."""
    h, w = m.shape
    out = np.zeros_like(m)
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = m[
        max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
    ]
    return out


def facing(mask: np.ndarray, smooth_px: int) -> np.ndarray:
    """For each pixel of ``mask``'s outline (pixels with a neighbour outside), the index in
    DIRECTIONS of the way it faces: its outward normal (the slope of the mask averaged
    over a ``2 * smooth_px + 1`` square) to the nearest eighth of a turn; -1 elsewhere."""
    m = mask.astype(np.float32)
    k = 2 * smooth_px + 1
    pad = np.pad(m, ((smooth_px + 1, smooth_px), (smooth_px + 1, smooth_px)))
    c = pad.cumsum(0)
    rows = c[k:] - c[:-k]
    c = rows.cumsum(1)
    box = (c[:, k:] - c[:, :-k]) / (k * k)
    gy, gx = np.gradient(box)
    angle = np.arctan2(-gy, -gx)  # the way out, rows down
    sector = np.round(angle / (np.pi / 4)).astype(np.int64) % 8
    by_sector = [
        DIRECTIONS.index((int(round(np.sin(s * np.pi / 4))), int(round(np.cos(s * np.pi / 4)))))
        for s in range(8)
    ]
    out = np.full(mask.shape, -1, np.int64)
    edge = mask & ~_all_within(mask, 1)
    out[edge] = np.asarray(by_sector)[sector[edge]]
    return out


def side_rings(
    mask: np.ndarray, direction: tuple[int, int], reach: int, faces: np.ndarray | None = None
) -> list[np.ndarray]:
    """The stretch of ``mask``'s outline that faces ``direction`` and its copies moved
    steps along it: ``2 * reach + 1`` masks, index ``reach`` the outline pixels whose
    neighbour that way is outside, ``reach + k`` the pixels whose first outside pixel that
    way is k + 1 steps ahead (the stretch shrunk by k), ``reach - k`` the outside pixels
    whose first mask pixel the other way is k steps behind (grown by k). With ``faces``
    (a mask of outline pixels), only the rays that leave the mask through those pixels:
    the stretch a side of the object faces, not the corners of the sides beside it."""
    dy, dx = direction
    rings = [np.zeros_like(mask)] * (2 * reach + 1)
    alive = mask.copy()
    for k in range(reach + 1):
        further = ahead(mask, (k + 1) * dy, (k + 1) * dx)
        ring = alive & ~further
        if faces is not None:
            ring &= ahead(faces, k * dy, k * dx)
        rings[reach + k] = ring
        alive &= further
    outside = ~mask
    for k in range(1, reach + 1):
        behind = ahead(mask, -k * dy, -k * dx)
        ring = outside & behind
        if faces is not None:
            ring &= ahead(faces, -k * dy, -k * dx)
        rings[reach - k] = ring
        outside &= ~behind
    return rings


def side_profile(rings: list[np.ndarray], strength: np.ndarray) -> np.ndarray:
    """Median edge strength on each of :func:`side_rings`' masks (NaN where one is empty),
    laid out as :func:`edge_profile`'s."""
    return np.array([float(np.median(strength[r])) if r.any() else np.nan for r in rings])


def stretches(
    mask: np.ndarray, reach: int, min_side_px: int, others: np.ndarray | None = None
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Each stretch of ``mask``'s outline at least ``min_side_px`` pixels long that faces
    one of DIRECTIONS, as ``(r, rings)``: :func:`side_rings` with ``r`` steps each way
    (``reach`` scaled to the direction's step length). A stretch whose outside runs off
    the crop (the image's edge) or into another polygon (``others``: where two overlap,
    one holds the pixels, and no outline was drawn there) is left out."""
    faces = facing(mask, max(2, reach // 2))
    for i, d in enumerate(DIRECTIONS):
        r = max(1, int(round(reach / float(np.hypot(*d)))))
        room = ahead(np.ones_like(mask), r * d[0], r * d[1])
        if others is not None:
            room &= ~ahead(others, d[0], d[1])
        rings = side_rings(mask, d, r, (faces == i) & room)
        if int(rings[r].sum()) >= min_side_px:
            yield r, rings


def overdrawn_in(
    mask: np.ndarray,
    strength: np.ndarray,
    reach: int,
    gain: float = EDGE_GAIN,
    no_edge: float = NO_EDGE,
    min_side_px: int = 0,
    side_gain: float = SIDE_GAIN,
    others: np.ndarray | None = None,
) -> np.ndarray:
    """What one polygon (``mask``, its crop; ``strength`` the image's edges there) overdrew:
    the ring outside the edge the polygon as a whole shows inside it (``edge_profile``);
    with ``min_side_px``, instead, each stretch at least that many pixels long gives up
    the strip between it and the edge it faces (``side_rings``, each direction's reach
    scaled to its step length), and the polygon as a whole is judged only when no stretch
    is that long. ``others``: the other polygons' pixels in the crop."""
    sides = np.zeros_like(mask)
    tested = False
    for r, rings in stretches(mask, reach, min_side_px, others) if min_side_px else ():
        tested = True
        k = overdrawn_steps(side_profile(rings, strength), side_gain, no_edge, flank=True)
        for j in range(k):
            sides |= rings[r + j]
    if tested:
        return sides
    k = overdrawn_steps(edge_profile(mask, strength, reach), gain, no_edge)
    return sides | (mask & ~_all_within(mask, k)) if k else sides


def snap_outline(
    mask: np.ndarray,
    strength: np.ndarray,
    reach: int,
    min_side_px: int,
    side_gain: float = SIDE_GAIN,
    no_edge: float = NO_EDGE,
    others: np.ndarray | None = None,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """``mask`` (a polygon's crop) with each stretch of its outline at least
    ``min_side_px`` long moved onto the edge the image shows within ``reach`` (session
    33; ``map-refiner snap-outlines``): a stretch drawn past the object gives up its strip
    (as the stretch rule of :func:`overdrawn_in`), and one drawn inside it gains the
    pixels between it and the edge found outside (the same test on the profile read
    outwards, without the flank rule), never another polygon's (``others``), and with
    ``colours`` (the crop's bands scaled by their spread) only where the strip looks more
    like the object inside the outline than like the ground past that edge."""
    out = mask.copy()
    for r, rings in stretches(mask, reach, min_side_px, others):
        profile = side_profile(rings, strength)
        k = overdrawn_steps(profile, side_gain, no_edge, flank=True)
        for j in range(k):
            out &= ~rings[r + j]
        inward = profile[r + 1 :]
        clear_inside = np.isfinite(inward).any() and np.nanmax(inward) >= side_gain * profile[r]
        if not k and not clear_inside:
            # out: only from an outline that is no edge of its own (no flank rule: a
            # traced outline beside a stronger shadow edge stays) and with no clear edge
            # inside it either (a generous outline near a stronger shadow edge outside
            # has both: it stays as drawn)
            grow = overdrawn_steps(profile[::-1], side_gain, no_edge)
            if grow > 1 and colours is not None and not _like_inside(rings, r, grow, colours):
                grow = 0
            for j in range(1, grow):
                out |= rings[r - j] & (True if others is None else ~others)
    return out


def _like_inside(rings: list[np.ndarray], r: int, grow: int, colours: np.ndarray) -> bool:
    """Whether the strip a stretch would gain (``grow - 1`` rings out) looks more like the
    object just inside the outline (as many rings in) than like the ground beyond the
    edge found (as many rings past it): ``colours`` are the bands scaled by their spread."""

    def mean(ms: list[np.ndarray]) -> np.ndarray | None:
        m = np.logical_or.reduce(ms) if ms else None
        return colours[:, m].mean(axis=1) if m is not None and m.any() else None

    strip = mean(rings[r - grow + 1 : r])
    inside = mean(rings[r : r + grow])
    beyond = mean(rings[max(0, r - 2 * grow) : r - grow])
    if strip is None or inside is None:
        return False
    if beyond is None:
        return True
    return bool(np.linalg.norm(strip - inside) < np.linalg.norm(strip - beyond))


def snap_in_crop(
    mask: np.ndarray, image: np.ndarray, pixel_m: float, others: np.ndarray | None = None
) -> np.ndarray:
    """:func:`snap_outline` of one polygon's crop (``mask``) on the image's crop there
    (``image``, ``(C, h, w)``, ``pixel_m`` metres a pixel): REACH_M and MIN_SIDE_M in its
    pixels, its colour edges, and its bands scaled by their spread for the look test."""
    img = np.asarray(image, dtype=np.float32)
    colours = img / np.maximum(img.reshape(len(img), -1).std(axis=1), 1e-6)[:, None, None]
    min_side = max(1, int(round(MIN_SIDE_M / pixel_m)))
    return snap_outline(
        mask,
        colour_edges(img, pixel_m),
        reach_px(pixel_m),
        min_side,
        others=others,
        colours=colours,
    )


#: Reads the image's bands on rows y0:y1, columns x0:x1 of the labels' grid: (C, h, w).
ImageReader = Callable[[int, int, int, int], np.ndarray]


def overdrawn(
    labels: np.ndarray,
    features: np.ndarray,
    read: ImageReader,
    pixel_m: float,
    reach_m: float = REACH_M,
    gain: float = EDGE_GAIN,
    no_edge: float = NO_EDGE,
    ground: int | None = None,
    min_side_m: float = 0.0,
    side_gain: float = SIDE_GAIN,
) -> np.ndarray:
    """The drawn pixels (``labels`` not IGNORE) between each polygon's outline (``features``:
    its number per pixel, -1 none) and the object's edge the image (``read``, the same
    grid, ``pixel_m`` metres a pixel) shows inside it: True where the hand overdrew.
    Polygons of class ``ground`` (background) outline no object and are kept whole: a
    false object drawn as background need not end on an edge of the image, and the
    strongest edges inside it may be anything (measured on a never-seen Nepal round of
    session 32: a traced false-building region lost 75 % of its cells). With
    ``min_side_m`` (FitParams.outline_side_m; 0, the default: the polygon as a whole,
    session 32's rule) each stretch of outline at least that long is judged on its own."""
    out = np.zeros(labels.shape, dtype=bool)
    reach = reach_px(pixel_m, reach_m)
    min_side_px = max(1, int(round(min_side_m / pixel_m))) if min_side_m > 0 else 0
    drawn = (features >= 0) & (labels != IGNORE)
    for f in np.unique(features[drawn]):
        mine = drawn & (features == f)
        if ground is not None and (labels[mine] == ground).all():
            continue
        ys, xs = np.nonzero(mine)
        pad = reach + 4
        y0, y1 = max(0, ys.min() - pad), min(labels.shape[0], ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(labels.shape[1], xs.max() + 1 + pad)
        m = drawn[y0:y1, x0:x1] & (features[y0:y1, x0:x1] == f)
        strength = colour_edges(read(y0, y1, x0, x1), pixel_m)
        others = drawn[y0:y1, x0:x1] & ~m
        out[y0:y1, x0:x1] |= overdrawn_in(
            m, strength, reach, gain, no_edge, min_side_px, side_gain, others
        )
    return out
