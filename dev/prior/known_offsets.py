"""Registration's regions on a real map with a known answer: a real prior (a vector
layer such as Xiamen's OSM buildings) burned on the image's grid, and the same map with
its east half moved by a known distance. The map's own offsets are not known (a real
OSM layer is off by different amounts in different places), but the *difference*
between the two runs is: each region of the east half should want ``shift`` metres more
west and north, each region of the west half the same as before. How far a region's
own peak misses that difference, against how clear the peak was (how much better than
no shift it fits, the 2 % of registration.CLEAR_PEAK), says whether a stricter rule for
a region's own peak would keep the right ones and drop the wrong ones.

    python -m map_refiner.dev.prior.known_offsets \\
        [--image ../shared/data/xiamen/xiamen_rgb.tif] \\
        [--prior ../shared/data/xiamen/xiamen_osm_buildings.gpkg] \\
        [--model resources/models/snap.safetensors] [--shifts=-2,-1,1] [--search-m 10]
        [--figure docs/figures/prior_xiamen_far_offset.png --region 13]
        # -> a markdown table on stdout; the model's map is made once (about 45 s
        # for the whole Xiamen mosaic on the 2-core CPU, alone)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal, ogr

from ...engine.labels.kept import window_grid
from ...engine.rasters.grid import grid_of
from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ...engine.refine.prior import Prior
from ...engine.refine.registration import (
    CLEAR_PEAK,
    SEARCH_M,
    region_agreements,
    region_peak,
)
from ...engine.refine.tiling import lattice_tiles
from .region_peaks import study_pass
from .shifted import ROOT

gdal.UseExceptions()


@dataclass
class Region:
    """One quarter of a lattice window: where it lies (image pixels), its own peak in
    metres east and south (None: none clear, with why), how much better than no shift
    its best shift fits (a share of the peak), and its best correlation."""

    x0: float
    x1: float
    y: float
    peak: tuple[float, float] | None
    why: str
    gain: float
    correlation: float


def burn(layer: Path, like: gdal.Dataset, out: Path) -> np.ndarray:
    """Every feature of ``layer`` burned as 1 (building) on ``like``'s grid, 0 elsewhere."""
    drv = gdal.GetDriverByName("MEM")
    ds = drv.Create("", like.RasterXSize, like.RasterYSize, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    src = ogr.Open(str(layer))
    gdal.RasterizeLayer(ds, [1], src.GetLayer(0), burn_values=[1])
    arr = ds.GetRasterBand(1).ReadAsArray()
    write(arr, like, out)
    return arr


def write(arr: np.ndarray, like: gdal.Dataset, out: Path) -> None:
    ds = gdal.GetDriverByName("GTiff").Create(
        str(out), arr.shape[1], arr.shape[0], 1, gdal.GDT_Byte, ["COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    ds.GetRasterBand(1).WriteArray(arr)
    ds.FlushCache()


def east_half_moved(arr: np.ndarray, d: int) -> np.ndarray:
    """The map with its east half (columns from the middle on) moved ``d`` pixels east
    and ``d`` south (negative: west and north); what moves past the middle or the edges
    is cut, nothing comes in."""
    out = arr.copy()
    mid = arr.shape[1] // 2
    src = arr[:, mid:]
    h, w = src.shape
    half = np.zeros_like(src)
    a, n = max(0, d), max(0, -d)  # where the kept part lands, and where it comes from
    half[a : h - n, a : w - n] = src[n : h - a, n : w - a]
    out[:, mid:] = half
    return out


def regions(p, cls_of, pixel_m: float, search_m: float = SEARCH_M) -> list[Region]:  # noqa: ANN001
    """Every lattice window's quarters for the prior ``cls_of(tile)`` gives."""
    radius = max(1, int(math.ceil(search_m / pixel_m)))
    out = []
    for tile, probs, valid in p:
        w = tile.x1 - tile.x0
        for y, x, c in region_agreements(cls_of(tile), probs, valid, radius):
            r = (c.shape[0] - 1) // 2
            iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
            top = float(c[iy, ix])
            gain = (top - float(c[r, r])) / abs(top) if top else 0.0
            found = region_peak(c)
            peak = None if isinstance(found, str) else (found[1] * pixel_m, found[0] * pixel_m)
            out.append(
                Region(
                    tile.x0 + x - w / 4,
                    tile.x0 + x + w / 4,
                    tile.y0 + y,
                    peak,
                    found if isinstance(found, str) else "",
                    gain,
                    float(c.max()),
                )
            )
    return out


def figure(
    like: gdal.Dataset, prior: np.ndarray, r: Region, pixel_m: float, out: Path, side: int = 300
) -> None:
    """The image around region ``r``'s centre with the prior's outlines in red: as drawn
    (left) and moved by the region's own peak (right)."""
    from PIL import Image

    x0, y0 = int((r.x0 + r.x1) / 2) - side // 2, int(r.y) - side // 2
    rgb = np.stack(
        [like.GetRasterBand(b).ReadAsArray(x0, y0, side, side) for b in (1, 2, 3)], -1
    ).astype(np.uint8)
    panels = []
    for east, south in ((0.0, 0.0), r.peak or (0.0, 0.0)):
        dx, dy = int(round(east / pixel_m)), int(round(south / pixel_m))
        m = prior[y0 - dy : y0 - dy + side, x0 - dx : x0 - dx + side]  # the prior moved
        panels.append(_outlined(rgb, m == 1))
    Image.fromarray(np.concatenate(panels, 1)).quantize(128).save(out, optimize=True)


def _outlined(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    edge = np.zeros(mask.shape, bool)
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    out = rgb.copy()
    out[edge] = (255, 0, 0)
    return out


def side_by_side(
    image: Path, maps: list[Path], centres: list[tuple[int, int]], out: Path, side: int = 300
) -> None:
    """Per centre (x, y in image pixels), a row: the image with each class map's building
    outlines in red, the maps side by side."""
    from PIL import Image

    like = gdal.Open(str(image))
    opened = [gdal.Open(str(m)) for m in maps]
    rows = []
    for cx, cy in centres:
        x0, y0 = cx - side // 2, cy - side // 2
        rgb = np.stack(
            [like.GetRasterBand(b).ReadAsArray(x0, y0, side, side) for b in (1, 2, 3)], -1
        ).astype(np.uint8)
        rows.append(
            np.concatenate(
                [
                    _outlined(rgb, ds.GetRasterBand(1).ReadAsArray(x0, y0, side, side) == 1)
                    for ds in opened
                ],
                1,
            )
        )
    Image.fromarray(np.concatenate(rows, 0)).quantize(128).save(out, optimize=True)


def halves(a: Path, b: Path, seam: int = 30) -> str:
    """Building IoU (class 1) between two class maps of one image, west and east half
    apart (``seam`` pixels either side of the middle left out): how alike two refines
    from the two priors came out on each half."""
    da, db = gdal.Open(str(a)), gdal.Open(str(b))
    ma, mb = da.GetRasterBand(1).ReadAsArray() == 1, db.GetRasterBand(1).ReadAsArray() == 1
    mid = ma.shape[1] // 2

    def iou(x: np.ndarray, y: np.ndarray) -> float:
        return 100.0 * float((x & y).sum()) / max(1, int((x | y).sum()))

    west = iou(ma[:, : mid - seam], mb[:, : mid - seam])
    east = iou(ma[:, mid + seam :], mb[:, mid + seam :])
    return f"| {a.name} / {b.name} | {west:.1f} | {east:.1f} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=Path("../shared/data/xiamen/xiamen_rgb.tif"))
    ap.add_argument(
        "--prior", type=Path, default=Path("../shared/data/xiamen/xiamen_osm_buildings.gpkg")
    )
    ap.add_argument("--model", type=Path, default=ROOT / "resources/models/snap.safetensors")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument(
        "--shifts",
        default="2",
        help="metres east and south the east half moves (negative: west and north)",
    )
    ap.add_argument("--search-m", type=float, default=SEARCH_M, help="registration's search")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "known_offsets")
    ap.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="also this PNG: the prior as drawn and moved by --region's own peak",
    )
    ap.add_argument("--region", type=int, default=13, help="the figure's region")
    ap.add_argument(
        "--halves",
        type=Path,
        nargs="+",
        default=None,
        help="instead: pairs of class maps (refines from prior_0.tif and a moved prior), "
        "each pair's building IoU on the west and on the east half",
    )
    ap.add_argument(
        "--side-by-side",
        type=Path,
        nargs="+",
        default=None,
        help="instead: class maps of --image to show side by side around --centres, "
        "written to --figure",
    )
    ap.add_argument(
        "--centres", default="3200,7424", help="x,y image pixels; several separated by ';'"
    )
    a = ap.parse_args(argv)
    if a.side_by_side:
        centres = [tuple(int(v) for v in c.split(",")) for c in a.centres.split(";")]
        side_by_side(a.image, a.side_by_side, centres, a.figure)  # type: ignore[arg-type]
        return 0
    if a.halves:
        print("| maps | west half IoU | east half IoU |")
        print("|---|---|---|")
        for x, y in zip(a.halves[::2], a.halves[1::2]):
            print(halves(x, y))
        return 0
    a.out_dir.mkdir(parents=True, exist_ok=True)
    like = gdal.Open(str(a.image))
    # ground metres a pixel (as registration measures: the smaller axis), also for
    # imagery in degrees
    pixel_m = float(min(ground_resolution(raster_info(open_raster(a.image)))))
    base = burn(a.prior, like, a.out_dir / "prior_0.tif")
    paths = {0.0: a.out_dir / "prior_0.tif"}
    moved = {}  # the move in metres the east half really gets (whole pixels)
    for s in (float(v) for v in a.shifts.split(",")):
        paths[s] = a.out_dir / f"prior_east_{s:g}m.tif"
        d = int(round(s / pixel_m))
        moved[s] = d * pixel_m
        write(east_half_moved(base, d), like, paths[s])
    p = study_pass(a, a.image, paths[0.0])
    full = grid_of(p.ds)
    maps = []  # the model's own map per lattice window, made once for every prior
    for tile in lattice_tiles(p.grids, p.iterations):
        res = p.predict(tile, from_prior=False)
        maps.append((tile, torch.softmax(res.logits.float(), dim=0).cpu().numpy(), res.valid))
    mid = like.RasterXSize / 2
    runs = {}
    for s, path in paths.items():
        prior = Prior(path, p.config.num_classes, {0: 0, 1: 1})
        runs[s] = regions(
            maps,
            lambda t, prior=prior: prior.classes_at(window_grid(full, t.x0, t.y0, t.x1, t.y1)),
            pixel_m,
            a.search_m,
        )
    print(
        f"image {a.image.name}, {pixel_m:.2f} m pixels; prior {a.prior.name}; model "
        f"{a.model.name}; {len(maps)} windows, {len(runs[0.0])} regions; CLEAR_PEAK "
        f"{CLEAR_PEAK}; search {a.search_m:g} m"
    )
    print()
    print(
        "| east half moved | region | half | own peak before (m E, S) | gain before | "
        "own peak after | gain after | corr. after | change found (m E, S) | "
        "change expected | missed by (m) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    misses: dict[float, list[tuple[float, float]]] = {s: [] for s in moved}
    for s in moved:
        for i, (r0, r1) in enumerate(zip(runs[0.0], runs[s])):
            half = "east" if r0.x0 >= mid else "west" if r0.x1 <= mid else "both"
            want = (-moved[s], -moved[s]) if half == "east" else (0.0, 0.0)

            def show(r: Region) -> str:
                return f"{r.peak[0]:+.1f}, {r.peak[1]:+.1f}" if r.peak else f"- ({r.why})"

            if r0.peak and r1.peak and half != "both":
                found = (r1.peak[0] - r0.peak[0], r1.peak[1] - r0.peak[1])
                off = math.hypot(found[0] - want[0], found[1] - want[1])
                miss, got = f"{off:.1f}", f"{found[0]:+.1f}, {found[1]:+.1f}"
                if half == "east":
                    misses[s].append((off, min(r0.gain, r1.gain)))
            else:
                got, miss = "-", "-"
            print(
                f"| {s:g} m | {i} | {half} | {show(r0)} | {100 * r0.gain:.0f} % | {show(r1)} | "
                f"{100 * r1.gain:.0f} % | {r1.correlation:.2f} | {got} | "
                f"{want[0]:+.1f}, {want[1]:+.1f} | {miss} |",
                flush=True,
            )
    if a.figure:
        figure(like, base, runs[0.0][a.region], pixel_m, a.figure)
    print()
    for s, got in misses.items():
        east = sum(1 for r in runs[0.0] if r.x0 >= mid)
        if got:
            worst = max(o for o, _ in got)
            weakest = min(g for _, g in got)
            print(
                f"- east half moved {moved[s]:.1f} m east and south: {len(got)} of {east} east "
                f"regions have a clear peak before and after; their change misses the move "
                f"by at most {worst:.1f} m; the weakest of them fits {100 * weakest:.0f} % "
                "better than no shift"
            )
        else:
            print(f"- east half moved {moved[s]:.1f} m: no east region has a peak both times")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
