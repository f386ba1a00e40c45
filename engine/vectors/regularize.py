"""Building outlines with right angles and parallel edges where they are nearly so.

The approach of the MIT-licensed ``buildingregulariser`` package (after
RS-building-regularization), written here on numpy and OGR: simplify the ring
(Douglas-Peucker), find the building's main direction, turn each edge within
``max_turn_deg`` of that direction or its perpendicular onto it (when its ends move by
no more than the tolerance), and rebuild the
ring from the edges' lines: consecutive edges meet at their lines' intersection,
parallel neighbours closer than the tolerance merge into one edge, farther ones are
joined by a short perpendicular step. Differences from the package: the main
direction is the length-weighted mean of all edges modulo 90 degrees (not the longest
edge alone), an edge's line is placed through the mean of the pixel boundary it
replaces (a staircase's outer and inner corners average out, so area and position
stay close), edges far from both axes are kept as they are (no 45-degree snapping),
and an outline that comes out invalid, overlaps its source by less than ``min_iou`` or
has a corner more than 1.5 tolerances from the source's outline falls back to the
plain simplified one.

Coordinates are in metres (the caller works in a metric CRS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import ogr

ogr.UseExceptions()
_STEP_SIN = math.sin(math.radians(20.0))  # lines closer in angle meet through a step


@dataclass(frozen=True)
class Regularizer:
    """How outlines are regularised: ``tolerance_m`` is the Douglas-Peucker tolerance and
    the distance under which parallel neighbouring edges merge. ``every_edge`` turns
    every edge onto the nearer main axis, however far (buildingregulariser's way): all
    corners right angles, and only an invalid outline falls back."""

    tolerance_m: float = 1.0
    max_turn_deg: float = 15.0
    min_iou: float = 0.75
    every_edge: bool = False

    def polygon(
        self, geom: ogr.Geometry, border: Sequence[np.ndarray] | None = None
    ) -> ogr.Geometry:
        """The regularised polygon (holes with the outline's main direction), or the
        simplified one where regularising fails its checks. ``border``: per ring, which
        of its points lie on the map's edge; edges along it stay where they are (a
        building the map cuts keeps its cut)."""
        rings = [_ring_xy(geom.GetGeometryRef(i)) for i in range(geom.GetGeometryCount())]
        if not rings or len(rings[0]) < 4:
            return geom.Clone()
        edges = [None] * len(rings) if border is None else [b[:-1] for b in border]
        pts = rings[0][:-1]
        theta = main_direction(pts, simplify_ring(pts, self.tolerance_m), edges[0])
        out = [self.ring(xy, theta, on_edge) for xy, on_edge in zip(rings, edges)]
        fallback = geom.SimplifyPreserveTopology(self.tolerance_m)
        if out[0] is None:
            return fallback
        poly = _polygon([r for r in out if r is not None])
        if not poly.IsValid():
            return fallback
        if self.every_edge:
            return poly
        if _iou(poly, geom) < self.min_iou or _farthest_corner(poly, geom) > 1.5 * self.tolerance_m:
            return fallback  # not "nearly so"
        return poly

    def ring(
        self, xy: np.ndarray, theta: float, on_edge: np.ndarray | None = None
    ) -> np.ndarray | None:
        """One closed ring (``(n, 2)``, last point = first) regularised along ``theta``
        (radians), or None when too little is left; ``on_edge``: which of its points
        (but the closing one) lie on the map's edge."""
        pts = xy[:-1]
        keep = simplify_ring(pts, self.tolerance_m)
        if len(keep) < 3:
            return None
        turn = (math.radians(self.max_turn_deg), self.tolerance_m)
        if self.every_edge:
            turn = (math.pi / 4 + 1e-9, math.inf)
        lines = _edge_lines(pts, keep, theta, turn, on_edge)
        lines = _drop_short(_merge_parallel(lines, self.tolerance_m), self.tolerance_m)
        lines = _merge_parallel(lines, self.tolerance_m)
        if len(lines) < 3:
            return None
        corners = _corners(lines)
        if len(corners) < 3:
            return None
        return np.vstack([corners, corners[:1]])


def main_direction(pts: np.ndarray, keep: list[int], on_edge: np.ndarray | None = None) -> float:
    """The outline's main direction modulo 90 degrees (radians): the length-weighted
    mean of its simplified edges' directions, each fitted to the boundary it replaces
    (a pixel staircase's own segments all run along the grid; its centre line does
    not), averaged on the quadrupled angle so that an edge and its perpendicular agree.
    Edges along the map's edge (``on_edge``) say nothing of the building: left out."""
    n = len(pts)
    s = c = 0.0
    for a, b in zip(keep, keep[1:] + [keep[0] + n]):
        if _along_edge(on_edge, a, b) is not None:
            continue
        angle, _, length = _span_fit(pts, a, b)
        s += length * math.sin(4 * angle)
        c += length * math.cos(4 * angle)
    return math.atan2(s, c) / 4


def _span_fit(pts: np.ndarray, a: int, b: int) -> tuple[float, np.ndarray, float]:
    """The direction (radians) and centre of the boundary from point ``a`` to ``b``
    (cyclic positions), fitted by total least squares to its segments taken as lines
    of uniform weight, and the chord's length."""
    n = len(pts)
    run = pts[np.arange(a, b + 1) % n]
    seg = np.diff(run, axis=0)
    w = np.hypot(seg[:, 0], seg[:, 1])
    mids = (run[1:] + run[:-1]) / 2
    centre = (mids * w[:, None]).sum(0) / max(float(w.sum()), 1e-12)
    d = mids - centre
    cov = (d * w[:, None]).T @ d + (seg * (w / 12)[:, None]).T @ seg  # of the segments, whole
    chord = run[-1] - run[0]
    angle = 0.5 * math.atan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
    if math.cos(angle - math.atan2(chord[1], chord[0])) < 0:  # along the ring's way
        angle += math.pi
    return angle, centre, float(np.hypot(*chord))


def simplify_ring(pts: np.ndarray, tolerance: float) -> list[int]:
    """Douglas-Peucker on a closed ring of ``n`` distinct points: the kept indices in
    ring order, as positions in ``[start, start + n)`` (take them modulo ``n``), from
    the point farthest from the centroid and the one farthest from it."""
    n = len(pts)
    start = int(np.argmax(((pts - pts.mean(0)) ** 2).sum(1)))
    far = int(np.argmax(((pts - pts[start]) ** 2).sum(1)))
    mid = start + (far - start) % n
    keep = {start, mid}
    stack = [(start, mid), (mid, start + n)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        inner = np.arange(a + 1, b)
        d = _segment_distance(pts[inner % n], pts[a % n], pts[b % n])
        k = int(np.argmax(d))
        if d[k] > tolerance:
            keep.add(int(inner[k]))
            stack += [(a, int(inner[k])), (int(inner[k]), b)]
    return sorted(keep)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.hypot(*(p - (a + t[:, None] * ab)).T)


@dataclass
class _Line:
    """The line ``{p: normal . p = offset}`` of an edge, the edge's length, and the
    point where it ends on the source outline (where a step to a parallel next line
    goes through)."""

    angle: float
    offset: float
    length: float
    end: np.ndarray
    turned: bool = False  # onto a main axis
    fixed: bool = False  # along the map's edge: kept in place

    @property
    def normal(self) -> np.ndarray:
        return np.array([-math.sin(self.angle), math.cos(self.angle)])


def _edge_lines(
    pts: np.ndarray,
    keep: list[int],
    theta: float,
    turn: tuple[float, float],
    on_edge: np.ndarray | None = None,
) -> list[_Line]:
    """Each simplified edge's line, fitted to the boundary it replaces, through the
    boundary's centre: turned onto the main axes when within ``turn`` = (the most angle,
    the most its ends may move) of one; an edge mostly along the map's edge stays on it."""
    n = len(pts)
    lines = []
    for a, b in zip(keep, keep[1:] + [keep[0] + n]):
        along = _along_edge(on_edge, a, b)
        if along is not None:
            run = pts[along]
            chord = run[-1] - run[0]
            angle = math.atan2(chord[1], chord[0])
            normal = np.array([-math.sin(angle), math.cos(angle)])
            length = float(np.hypot(*(pts[b % n] - pts[a % n])))
            lines.append(_Line(angle, float(run[0] @ normal), length, pts[b % n], fixed=True))
            continue
        angle, centre, length = _span_fit(pts, a, b)
        dev = (angle - theta + math.pi / 4) % (math.pi / 2) - math.pi / 4
        turned = abs(dev) <= turn[0] and length / 2 * abs(math.sin(dev)) <= turn[1]
        if turned:
            angle -= dev
        normal = np.array([-math.sin(angle), math.cos(angle)])
        lines.append(_Line(angle, float(centre @ normal), length, pts[b % n], turned))
    return lines


def _along_edge(on_edge: np.ndarray | None, a: int, b: int) -> np.ndarray | None:
    """The indices of the points from ``a`` to ``b`` on the map's edge, when most of
    them are (and at least two), else None."""
    if on_edge is None:
        return None
    idx = np.arange(a, b + 1) % len(on_edge)
    hits = idx[on_edge[idx]]
    return hits if len(hits) >= 2 and len(hits) * 2 >= len(idx) else None


def _merge_parallel(lines: list[_Line], tolerance: float) -> list[_Line]:
    """Neighbouring lines of one direction less than ``tolerance`` apart become one
    (offset weighted by length), until none are left."""
    merged = True
    while merged and len(lines) > 3:
        merged = False
        for i in range(len(lines)):
            a, b = lines[i], lines[(i + 1) % len(lines)]
            same = abs(math.sin(a.angle - b.angle)) < 1e-9 and math.cos(a.angle - b.angle) > 0
            if same and abs(a.offset - b.offset) < tolerance:
                total = a.length + b.length
                offset = (a.offset * a.length + b.offset * b.length) / total
                if a.fixed or b.fixed:  # the map's edge stays
                    offset = a.offset if a.fixed else b.offset
                lines[i] = _Line(a.angle, offset, total, b.end, a.turned, a.fixed or b.fixed)
                del lines[(i + 1) % len(lines)]
                merged = True
                break
    return lines


def _drop_short(lines: list[_Line], tolerance: float) -> list[_Line]:
    """Edges removed, shortest first: a corner the simplification cut (a slanted edge
    whose neighbours meet within ``tolerance`` of it) goes, so that they meet; an edge
    shorter than twice ``tolerance`` too (a step between parallel edges comes back
    through its middle)."""
    while len(lines) > 3:
        count = len(lines)
        gone = [
            i
            for i in range(count)
            if not lines[i].fixed
            and lines[i].length < 2 * tolerance
            or _cuts_corner(lines[i - 1], lines[i], lines[(i + 1) % count], tolerance)
        ]
        if not gone:
            break
        i = min(gone, key=lambda k: lines[k].length)
        before = lines[i - 1]
        end = (before.end + lines[i].end) / 2
        lines[i - 1] = _Line(
            before.angle, before.offset, before.length, end, before.turned, before.fixed
        )
        del lines[i]
    return lines


def _cuts_corner(before: _Line, line: _Line, after: _Line, tolerance: float) -> bool:
    if line.turned or line.fixed or not (before.turned or before.fixed):
        return False
    if not (after.turned or after.fixed):
        return False
    corner = _meet(before, after)
    return corner is not None and abs(corner @ line.normal - line.offset) <= 1.5 * tolerance


def _meet(a: _Line, b: _Line) -> np.ndarray | None:
    """Where two lines cross, None when they are (nearly) parallel."""
    na, nb = a.normal, b.normal
    if abs(na[0] * nb[1] - na[1] * nb[0]) <= _STEP_SIN:
        return None
    return np.linalg.solve(np.array([na, nb]), np.array([a.offset, b.offset]))


def _corners(lines: list[_Line]) -> np.ndarray:
    """The ring's vertices: where each line meets the next, or, for (nearly) parallel
    neighbours, a step through the outline's point between them."""
    out: list[np.ndarray] = []
    for i, a in enumerate(lines):
        b = lines[(i + 1) % len(lines)]
        corner = _meet(a, b)
        if corner is not None:
            out.append(corner)
            continue
        for line in (a, b):
            point = a.end - (a.end @ line.normal - line.offset) * line.normal
            if not out or np.hypot(*(point - out[-1])) > 1e-9:
                out.append(point)
    ring = np.array(out)
    if len(ring) > 1 and np.hypot(*(ring[0] - ring[-1])) < 1e-9:
        ring = ring[:-1]
    return ring


def _ring_xy(ring: ogr.Geometry) -> np.ndarray:
    return np.array(ring.GetPoints(), dtype=np.float64)[:, :2]


def _polygon(rings: list[np.ndarray]) -> ogr.Geometry:
    poly = ogr.Geometry(ogr.wkbPolygon)
    for xy in rings:
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in xy:
            ring.AddPoint_2D(float(x), float(y))
        poly.AddGeometry(ring)
    return poly


def _farthest_corner(poly: ogr.Geometry, source: ogr.Geometry) -> float:
    """How far the corner of ``poly`` farthest from the outline of ``source`` is."""
    outline = source.Boundary()
    point = ogr.Geometry(ogr.wkbPoint)
    far = 0.0
    for r in range(poly.GetGeometryCount()):
        for x, y in poly.GetGeometryRef(r).GetPoints():
            point.SetPoint_2D(0, x, y)
            far = max(far, point.Distance(outline))
    return far


def _iou(a: ogr.Geometry, b: ogr.Geometry) -> float:
    inter = a.Intersection(b)
    union = a.Union(b)
    area = union.GetArea() if union is not None else 0.0
    shared = inter.GetArea() if inter is not None and inter.GetDimension() == 2 else 0.0
    return shared / area if area > 0 else 0.0
