"""Regularised building outlines against accurate references: IoU and boundary F-score.

Each scene is refined once with the bundled model; its buildings are vectorised raw
(the map's pixel outlines), simplified (Douglas-Peucker, ``--simplify``) and
regularised (``--regularize`` at several tolerances), all with the same minimum area;
each set is scored against the scene's reference polygons in ground metres: area IoU
of the union of the polygons, and a boundary F-score (the share of each outline's
length within ``--boundary`` metres of the other's, precision and recall).

    python -m map_refiner.dev.prior.regularize_eval [--data ../shared/data]
        [--scenes austin_dev,kampala_drone,nepal_drone,rio_wv2] [--tolerances 0.5,1,2]
        -> docs/results_prior.md, section "Regularised outlines"
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from ...engine.rasters.grid import grid_of, is_metric, local_metric_srs
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.vectors.vectorize import vectorize
from ..provenance import git_state
from .regularize_figure import outlines_figure
from .sections import write_section

gdal.UseExceptions()
ogr.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]
HEADING = "Regularised outlines"
SCENES = {  # image, reference polygons, the same as a 0/255 mask on the image grid
    "austin_dev": (
        "austin/austin_dev_rgb.tif",
        "austin/austin_dev_buildings.gpkg",
        "austin/austin_dev_gt.tif",
    ),
    "kampala_drone": (
        "kampala_drone/kampala_rgb.tif",
        "kampala_drone/kampala_buildings.gpkg",
        "kampala_drone/kampala_buildings_mask.tif",
    ),
    "nepal_drone": (
        "nepal_drone/nepal_rgb.tif",
        "nepal_drone/nepal_buildings.gpkg",
        "nepal_drone/nepal_buildings_mask.tif",
    ),
    "rio_wv2": (
        "rio_wv2/rio_rgb.tif",
        "rio_wv2/rio_buildings.gpkg",
        "rio_wv2/rio_buildings_mask.tif",
    ),
}
CODE = ("engine/vectors", "engine/refine", "engine/networks", "dev/prior", "resources/models")


def union_in(path: Path, metric: osr.SpatialReference) -> tuple[ogr.Geometry, int, int]:
    """The union of a layer's polygons in ``metric``, with the feature and vertex counts."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    src = lyr.GetSpatialRef().Clone()
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, metric)
    parts = ogr.Geometry(ogr.wkbMultiPolygon)
    count = vertices = 0
    for feat in lyr:
        geom = feat.GetGeometryRef().Clone()
        geom.Transform(ct)
        geom = ogr.ForceToMultiPolygon(geom if geom.IsValid() else geom.MakeValid())
        for i in range(geom.GetGeometryCount()):
            poly = geom.GetGeometryRef(i)
            parts.AddGeometry(poly)
            vertices += sum(
                poly.GetGeometryRef(r).GetPointCount() - 1 for r in range(poly.GetGeometryCount())
            )
        count += 1
    return parts.UnionCascaded(), count, vertices


def scores(pred: ogr.Geometry, ref: ogr.Geometry, tol_m: float) -> dict[str, float]:
    """Area IoU and the boundary precision, recall and F-score at ``tol_m``."""
    inter = pred.Intersection(ref).GetArea()
    iou = inter / max(pred.Union(ref).GetArea(), 1e-9)
    pb, rb = pred.Boundary(), ref.Boundary()
    precision = pb.Intersection(rb.Buffer(tol_m, 4)).Length() / max(pb.Length(), 1e-9)
    recall = rb.Intersection(pb.Buffer(tol_m, 4)).Length() / max(rb.Length(), 1e-9)
    f = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"iou": iou, "precision": precision, "recall": recall, "f": f}


def variants(tolerances: list[float]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = [("raw (pixel outlines)", {})]
    out.append(("simplified 1 m (`--simplify 1`)", {"simplify_m": 1.0}))
    for t in tolerances:
        out.append(
            (
                f"regularised {t:g} m (`--regularize --regularize-tolerance {t:g}`)",
                {"regularize": ["building"], "regularize_m": t},
            )
        )
    out.append(
        (
            "every edge turned, 1 m (`--regularize --regularize-every-edge`)",
            {"regularize": ["building"], "regularize_m": 1.0, "regularize_every_edge": True},
        )
    )
    return out


def right_angled(path: Path, metric: osr.SpatialReference) -> float:
    """The share of the outlines' corners (outer rings) within 1 degree of a right angle."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    src = lyr.GetSpatialRef().Clone()
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, metric)
    right = corners = 0
    for feat in lyr:
        geom = feat.GetGeometryRef().Clone()
        geom.Transform(ct)
        xy = np.array(geom.GetGeometryRef(0).GetPoints())[:-1, :2]
        edges = np.roll(xy, -1, axis=0) - xy
        following = np.roll(edges, -1, axis=0)
        cos = (edges * following).sum(1) / (
            np.linalg.norm(edges, axis=1) * np.linalg.norm(following, axis=1)
        )
        right += int((np.abs(cos) < math.sin(math.radians(1.0))).sum())
        corners += len(xy)
    return right / max(corners, 1)


def mask_as_classmap(mask: Path, out: Path) -> Path:
    """A 0/255 building mask as a background/building class map (a map that is right)."""
    src = gdal.Open(str(mask))
    ds = gdal.GetDriverByName("GTiff").Create(str(out), src.RasterXSize, src.RasterYSize, 1)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    band = ds.GetRasterBand(1)
    band.WriteArray((src.ReadAsArray() > 0).astype("uint8"))
    band.SetCategoryNames(["background", "building"])
    ds = None
    return out


def coverage_rows(name: str, classmap: Path, metric: osr.SpatialReference) -> list[dict]:
    """Every class of the map simplified at 1 m, each polygon on its own and with shared
    borders: the area the polygons leave uncovered and the area they cover twice."""
    raw, _, _ = union_in(vectorize(classmap, classmap.with_name(f"{name}_all.gpkg")).path, metric)
    rows = []
    for label, kw in (
        ("each polygon on its own (`--simplify 1`)", {}),
        ("shared borders (`--simplify 1 --shared-borders`)", {"shared_borders": True}),
    ):
        out = classmap.with_name(f"{name}_all_{len(rows)}.gpkg")
        t0 = time.perf_counter()
        vectorize(classmap, out, simplify_m=1.0, **kw)
        seconds = time.perf_counter() - t0
        union, count, vertices = union_in(out, metric)
        total = sum_of_areas(out, metric)
        rows.append(
            {
                "scene": name,
                "variant": label,
                "polygons": count,
                "vertices": vertices,
                "gap": max(raw.GetArea() - union.GetArea(), 0.0),  # below 0: rounding
                "overlap": max(total - union.GetArea(), 0.0),
                "seconds": seconds,
            }
        )
    return rows


def sum_of_areas(path: Path, metric: osr.SpatialReference) -> float:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    src = lyr.GetSpatialRef().Clone()
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, metric)
    total = 0.0
    for feat in lyr:
        geom = feat.GetGeometryRef().Clone()
        geom.Transform(ct)
        total += geom.GetArea()
    return total


def run_scene(name: str, a: argparse.Namespace, work: Path, source: str) -> list[dict]:
    """The variants' rows for the scene's refined map (``source`` "refined") or its
    reference mask taken as the map ("reference mask")."""
    image_rel, ref_rel, mask_rel = SCENES[name]
    image, reference = a.data / image_rel, a.data / ref_rel
    classmap = work / f"{name}_{source.split()[0]}.tif"
    t0 = time.perf_counter()
    if source == "refined":
        refine_raster(RefineParams(image=image, out=classmap, device="cpu"))
    else:
        mask_as_classmap(a.data / mask_rel, classmap)
    refine_s = time.perf_counter() - t0
    grid = grid_of(gdal.Open(str(classmap)))
    metric = grid.srs() if is_metric(grid) else local_metric_srs(grid)
    metric.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ref, ref_count, _ = union_in(reference, metric)
    rows = []
    for label, kw in variants(a.tolerances):
        out = work / f"{classmap.stem}_{len(rows)}.gpkg"
        t0 = time.perf_counter()
        vectorize(classmap, out, classes=["building"], min_area_m2=a.min_area, **kw)
        seconds = time.perf_counter() - t0
        pred, count, vertices = union_in(out, metric)
        row = {"scene": name, "map": source, "variant": label, "polygons": count}
        row["seconds"] = seconds
        row.update(scores(pred, ref, a.boundary))
        row.update(vertices=vertices / max(count, 1), refine_s=refine_s, ref_count=ref_count)
        row["right"] = right_angled(out, metric)
        rows.append(row)
        print(
            f"{name:14s} {source:14s} {label:60s} IoU {100 * row['iou']:5.1f}  "
            f"BF {100 * row['f']:5.1f} ({count} polygons, {row['vertices']:.1f} vertices "
            f"each, {seconds:.2f} s)",
            flush=True,
        )
    if source == "refined":
        a.coverage += coverage_rows(name, classmap, metric)
        if name == a.figure_scene and 1.0 in a.tolerances:
            regular = work / f"{classmap.stem}_{2 + a.tolerances.index(1.0)}.gpkg"
            every = work / f"{classmap.stem}_{2 + len(a.tolerances)}.gpkg"
            panels = [
                ("raw outlines of the refined map", work / f"{classmap.stem}_0.gpkg"),
                ("regularised, 1 m (--regularize)", regular),
                ("every edge turned (--regularize-every-edge)", every),
            ]
            a.figure_made = outlines_figure(image, reference, panels, a.figure, a.figure_window)
    return rows


def report(rows: list[dict], a: argparse.Namespace, command: str, state: dict) -> str:
    dirty = ", with uncommitted changes" if state["dirty"] == "yes" else ""
    lines = [
        f"Generated by `{command}` (commit {state['commit']}{dirty}; a 2-core CPU shared "
        "with a long torch experiment, one torch thread: the seconds are those of a loaded "
        "machine).",
        "",
        "Each scene is refined once with the bundled model (no prior); its buildings are "
        f"vectorised with a minimum area of {a.min_area:g} m² in every variant and scored "
        "against the scene's reference polygons in ground metres: **IoU** of the union of "
        "the polygons (area), and the **boundary F-score** at "
        f"{a.boundary:g} m (precision: the share of the outlines' length within "
        f"{a.boundary:g} m of the reference outlines; recall: the converse). Vertices: per "
        "polygon, holes included.",
        "",
        "*refined*: the bundled model's map, what a user vectorises. *reference mask*: the "
        "reference burned on the image grid and taken as the map, a map that is right: "
        "there the raw outlines are the reference's own pixels, and what regularising "
        "does to a right staircase shows alone. The kampala and nepal references are "
        "hand-traced polygons (their masks are burned from them); the austin and rio "
        "references were themselves polygonised from masks, so they are staircases, "
        "which the raw outlines of their masks match exactly. Right angles: the share of "
        "the outlines' corners within 1° of 90° (a pixel staircase has nothing else).",
        "",
        "| scene | map | outlines | polygons | vertices | right angles % | IoU % "
        "| boundary P % | boundary R % | boundary F % | vectorize s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {r['map']} | {r['variant']} | {r['polygons']} "
            f"| {r['vertices']:.1f} | {100 * r['right']:.0f} "
            f"| {100 * r['iou']:.1f} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} "
            f"| {100 * r['f']:.1f} | {r['seconds']:.2f} |"
        )
    lines += ["", "Change from the raw outlines (points):", ""]
    by_scene: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_scene.setdefault((r["scene"], r["map"]), []).append(r)
    for (scene, source), rs in by_scene.items():
        raw = rs[0]
        changes = ", ".join(
            f"{r['variant'].split(' (')[0]}: IoU {100 * (r['iou'] - raw['iou']):+.1f}, "
            f"F {100 * (r['f'] - raw['f']):+.1f}"
            for r in rs[1:]
        )
        made = f"refine {raw['refine_s']:.0f} s, " if source == "refined" else ""
        lines.append(
            f"- {scene}, {source} ({made}{raw['ref_count']} reference polygons): {changes}."
        )
    lines += [
        "",
        "Shared borders: every class of each refined map vectorised and simplified at 1 m, "
        "each polygon on its own or with `--shared-borders` (each border simplified once "
        "for both sides). Gaps: map area no polygon covers; overlaps: area two polygons "
        "cover (m², in ground metres).",
        "",
        "| scene | simplification | polygons | vertices | gaps m² | overlaps m² | vectorize s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in a.coverage:
        lines.append(
            f"| {r['scene']} | {r['variant']} | {r['polygons']} | {r['vertices']} "
            f"| {r['gap']:.2f} | {r['overlap']:.2f} | {r['seconds']:.2f} |"
        )
    if a.figure_made is not None:
        rel = a.figure_made.relative_to(a.report.parent)
        lines += [
            "",
            f"![{a.figure_scene}: reference outlines in cyan; in red, the refined map's raw "
            f"outlines, regularised at 1 m, and with every edge turned]({rel})",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--tolerances", default="0.5,1,2")
    ap.add_argument("--min-area", type=float, default=2.0)
    ap.add_argument("--boundary", type=float, default=1.0, help="boundary tolerance (m)")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "results_prior.md")
    ap.add_argument("--figure-scene", default="kampala_drone")
    ap.add_argument(
        "--figure-window",
        type=lambda t: tuple(int(v) for v in t.split(",")),
        default=(0, 1024, 1024, 1024),
        help="x0,y0,width,height in the image's pixels (default: Kampala's lower left quarter)",
    )
    ap.add_argument(
        "--figure", type=Path, default=ROOT / "docs" / "figures" / "regularized_outlines.png"
    )
    a = ap.parse_args(argv)
    a.tolerances = [float(t) for t in a.tolerances.split(",")]
    a.coverage = []
    a.figure_made = None
    command = "python -m map_refiner.dev.prior.regularize_eval" + (
        " " + " ".join(argv) if argv else ""
    )
    state = git_state(paths=CODE, untracked=False)
    (ROOT / "out").mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        for source in ("refined", "reference mask"):
            for name in a.scenes.split(","):
                rows += run_scene(name, a, Path(tmp), source)
    write_section(a.report, HEADING, report(rows, a, command, state))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
