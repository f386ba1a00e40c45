"""Simplification that keeps shared borders: no gaps or overlaps between neighbours.

Simplifying each polygon on its own moves a border two ways, once for each side. Here
the borders are simplified once: the outlines are cut into arcs at every point where
three or more regions meet (GEOS's noding union of the rings: a border two regions
share becomes one arc), each arc is simplified with its end points fixed, arcs that
would then cross or touch another are simplified again at half the tolerance, down to
a sixteenth, then put back as they were (until none do), and the
faces are rebuilt from the arcs (GEOS polygonize), each given to the region it
overlaps most. Two neighbours therefore meet along the very same simplified line.

Works in memory, on coordinates in metres.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from osgeo import ogr

ogr.UseExceptions()


def simplify_shared(polygons: Sequence[ogr.Geometry], tolerance: float) -> list[ogr.Geometry]:
    """Each polygon, in order, with its borders simplified once for both sides (an empty
    polygon where one vanished)."""
    arcs = _arcs(polygons)
    ends = {_key(p) for arc in arcs for p in _ends(arc)}
    simple = [arc.SimplifyPreserveTopology(tolerance) for arc in arcs]
    level = [tolerance] * len(arcs)
    back: set[int] = set()  # arcs put back as they were (the original arcs never cross)
    while True:  # each round halves a tolerance or puts an arc back: it ends
        bad = _crossing(simple, ends) - back
        if not bad:
            faces = _faces(simple, polygons)
            bad = _arcs_of_lost(faces, polygons, arcs) - back
            if not bad:
                return faces
            level = [0.0 if i in bad else t for i, t in enumerate(level)]
        for i in bad:
            level[i] /= 2
            if level[i] < tolerance / 16:
                simple[i] = arcs[i].Clone()
                back.add(i)
            else:
                simple[i] = arcs[i].SimplifyPreserveTopology(level[i])


def _arcs_of_lost(
    faces: list[ogr.Geometry], polygons: Sequence[ogr.Geometry], arcs: list[ogr.Geometry]
) -> set[int]:
    """The arcs around a polygon that got no face (a safeguard: the checks above should
    leave none)."""
    bad: set[int] = set()
    for face, poly in zip(faces, polygons):
        if face.IsEmpty() and not poly.IsEmpty():
            outline = poly.Boundary()
            bad.update(i for i, arc in enumerate(arcs) if arc.Distance(outline) < 1e-6)
    return bad


def _arcs(polygons: Sequence[ogr.Geometry]) -> list[ogr.Geometry]:
    """The rings' lines noded and dissolved: every shared border once, cut where
    regions meet."""
    lines = ogr.Geometry(ogr.wkbMultiLineString)
    for poly in polygons:
        for r in range(poly.GetGeometryCount()):
            lines.AddGeometry(ogr.ForceToLineString(poly.GetGeometryRef(r)))
    if lines.GetGeometryCount() == 0:
        return []
    noded = lines.Union(lines.GetGeometryRef(0))  # a union with a part of itself nodes all
    parts = [noded.GetGeometryRef(i).GetPoints() for i in range(noded.GetGeometryCount())]
    return [_line(points) for points in _merged([[p[:2] for p in q] for q in parts])]


def _merged(parts: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    """The noded pieces joined into the longest lines whose inner points meet no third
    piece (GEOS's union leaves them cut at every vertex of a dissolved border)."""
    at: dict[tuple[float, float], list[int]] = {}
    for i, part in enumerate(parts):
        for end in (part[0], part[-1]):
            at.setdefault(_key(end), []).append(i)
    used = [False] * len(parts)
    out = []

    def walk(i: int, start: tuple[float, float]) -> list[tuple[float, float]]:
        line: list[tuple[float, float]] = []
        point = start
        while True:
            used[i] = True
            part = parts[i] if _key(parts[i][0]) == _key(point) else parts[i][::-1]
            line += part if not line else part[1:]
            point = part[-1]
            nxt = [j for j in at[_key(point)] if not used[j]]
            if len(at[_key(point)]) != 2 or not nxt:
                return line
            i = nxt[0]

    for node, pieces in at.items():  # lines from every node (not a point of two pieces)
        if len(pieces) != 2:
            for i in pieces:
                if not used[i]:
                    out.append(walk(i, parts[i][0] if _key(parts[i][0]) == node else parts[i][-1]))
    for i in range(len(parts)):  # closed lines with no node: islands
        if not used[i]:
            out.append(walk(i, parts[i][0]))
    return out


def _line(points: list[tuple[float, float]]) -> ogr.Geometry:
    line = ogr.Geometry(ogr.wkbLineString)
    for x, y in points:
        line.AddPoint_2D(x, y)
    return line


def _ends(arc: ogr.Geometry) -> tuple[tuple[float, float], tuple[float, float]]:
    return arc.GetPoint_2D(0), arc.GetPoint_2D(arc.GetPointCount() - 1)


def _key(point: tuple[float, float]) -> tuple[float, float]:
    return (round(point[0], 6), round(point[1], 6))


def _crossing(arcs: list[ogr.Geometry], ends: set[tuple[float, float]]) -> set[int]:
    """The arcs that meet another (or themselves) anywhere but at the arcs' ends: noding
    them all makes a node (a point where other than two pieces end) that is no arc's end;
    and arcs that became the same line as another (two borders between the same two
    points, both simplified to the straight line: the face between them would vanish)."""
    bad = _same_lines(arcs)
    lines = ogr.Geometry(ogr.wkbMultiLineString)
    for arc in arcs:
        lines.AddGeometry(arc)
    noded = lines.Union(lines.GetGeometryRef(0))
    degree: dict[tuple[float, float], int] = {}
    for i in range(noded.GetGeometryCount()):
        for p in _ends(noded.GetGeometryRef(i)):
            degree[_key(p)] = degree.get(_key(p), 0) + 1
    new = [p for p, d in degree.items() if d != 2 and p not in ends]
    if not new:
        return bad
    boxes = np.array([arc.GetEnvelope() for arc in arcs])  # minx, maxx, miny, maxy
    for x, y in new:
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(x, y)
        near = np.nonzero(
            (boxes[:, 0] <= x + 1e-6)
            & (boxes[:, 1] >= x - 1e-6)
            & (boxes[:, 2] <= y + 1e-6)
            & (boxes[:, 3] >= y - 1e-6)
        )[0]
        bad.update(int(i) for i in near if arcs[i].Distance(point) < 1e-5)
    return bad


def _same_lines(arcs: list[ogr.Geometry]) -> set[int]:
    seen: dict[tuple, int] = {}
    same: set[int] = set()
    for i, arc in enumerate(arcs):
        points = [_key(p) for p in arc.GetPoints()]
        key = tuple(min(points, points[::-1]))
        if key in seen:
            same.update((i, seen[key]))
        seen[key] = i
    return same


def _faces(arcs: list[ogr.Geometry], polygons: Sequence[ogr.Geometry]) -> list[ogr.Geometry]:
    """The faces the arcs enclose, each given to the polygon it overlaps most (a face no
    polygon overlaps, e.g. a hole of a class left out, to none); per polygon, the union
    of its faces."""
    lines = ogr.Geometry(ogr.wkbMultiLineString)
    for arc in arcs:
        lines.AddGeometry(arc)
    faces = lines.Polygonize() if arcs else None
    out = [ogr.Geometry(ogr.wkbPolygon) for _ in polygons]
    if faces is None:
        return out
    boxes = np.array([p.GetEnvelope() for p in polygons])
    for i in range(faces.GetGeometryCount()):
        face = faces.GetGeometryRef(i)
        x0, x1, y0, y1 = face.GetEnvelope()
        near = np.nonzero(
            (boxes[:, 0] <= x1) & (boxes[:, 1] >= x0) & (boxes[:, 2] <= y1) & (boxes[:, 3] >= y0)
        )[0]
        best, best_area = -1, 0.0
        for j in near:
            inter = face.Intersection(polygons[j])
            area = inter.GetArea() if inter is not None and inter.GetDimension() == 2 else 0.0
            if area > best_area:
                best, best_area = int(j), area
        if best >= 0 and best_area > 0.5 * face.GetArea():
            out[best] = face.Clone() if out[best].IsEmpty() else out[best].Union(face)
    return out
