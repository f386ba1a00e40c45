"""Real OpenStreetMap buildings snapped to the image: how far the outlines move.

Xiamen's OSM polygons are imprecise (shifted by metres, stale, incomplete) and the
scene has no accurate reference, so this measures what ``refine --prior`` does to
them and shows it: a crop of the Xiamen mosaic is refined from the OSM layer (the
bundled snap model), and ``compare`` flags every OSM building against the snapped
map and against the bundled model's own map (no prior). The report gives the
statuses, the shifts of the moved buildings, and a figure of a window (OSM outlines
over the image, the snapped map's outlines beside them) for the visual check.

    python -m map_refiner.dev.prior.osm [--data ../shared/data] [--x0 3800 --y0 2600
        --side 2000] -> docs/results_prior_osm.md, docs/figures/prior_osm.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.vectors.compare import STATUSES, CompareParams, compare
from ..provenance import git_state

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]


def crop(src: Path, out: Path, x0: int, y0: int, side: int) -> Path:
    gdal.Translate(str(out), str(src), srcWin=[x0, y0, side, side])
    return out


def flags(path: Path) -> list[dict]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    rows = [
        {"status": f.GetField("status"), "shift": f.GetField("shift_m"), "iou": f.GetField("iou")}
        for f in lyr
    ]
    return rows


def summary(rows: list[dict]) -> dict:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    moved = [r["shift"] for r in rows if r["status"] == "moved" and r["shift"] is not None]
    ious = [r["iou"] for r in rows if r["status"] != "new" and r["iou"] is not None]
    return {
        "counts": counts,
        "moved_median_m": float(np.median(moved)) if moved else None,
        "moved_p90_m": float(np.percentile(moved, 90)) if moved else None,
        "mean_iou": float(np.mean(ious)) if ious else None,
    }


def figure(image: Path, osm_mask: Path, snapped: Path, out: Path, box: tuple) -> Path | None:
    """Image with OSM outlines (yellow) | image with the snapped map's outlines (red)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy import ndimage
    except ImportError:
        return None
    x0, y0, w, h = box
    img = gdal.Open(str(image)).ReadAsArray(x0, y0, w, h)[:3].transpose(1, 2, 0)
    panels = []
    for path, colour in ((osm_mask, (255, 220, 0)), (snapped, (255, 40, 40))):
        m = gdal.Open(str(path)).ReadAsArray(x0, y0, w, h) == 1
        edge = m & ~ndimage.binary_erosion(m)
        p = img.copy()
        p[edge] = colour
        panels.append(p)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2))
    for ax, p, title in zip(
        axes, panels, ("OSM buildings (the prior)", "refine --prior OSM (snap model)")
    ):
        ax.imshow(p)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--x0", type=int, default=3800)
    ap.add_argument("--y0", type=int, default=2600)
    ap.add_argument("--side", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results_prior_osm.md")
    a = ap.parse_args(argv)
    xiamen = a.data / "xiamen"
    osm = xiamen / "xiamen_osm_buildings.gpkg"
    state = git_state(untracked=False)
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        t = Path(tmp)
        image = crop(xiamen / "xiamen_rgb.tif", t / "crop.tif", a.x0, a.y0, a.side)
        osm_mask = crop(xiamen / "xiamen_osm_buildings_mask.tif", t / "osm.tif", a.x0, a.y0, a.side)
        t0 = time.perf_counter()
        snapped = refine_raster(
            RefineParams(image=image, out=t / "snapped.tif", prior=osm, device="cpu")
        )
        seconds = time.perf_counter() - t0
        refine_raster(RefineParams(image=image, out=t / "plain.tif", device="cpu"))
        results = {}
        for name in ("snapped", "plain"):
            compare(osm, t / f"{name}.tif", t / f"{name}_flags.gpkg", CompareParams())
            results[name] = summary(flags(t / f"{name}_flags.gpkg"))
        osm_cov = float((gdal.Open(str(osm_mask)).ReadAsArray() == 1).mean())
        snap_cov = float((gdal.Open(str(t / "snapped.tif")).ReadAsArray() == 1).mean())
        plain_cov = float((gdal.Open(str(t / "plain.tif")).ReadAsArray() == 1).mean())
        agree = float(
            (
                (gdal.Open(str(osm_mask)).ReadAsArray() == 1)
                == (gdal.Open(str(t / "snapped.tif")).ReadAsArray() == 1)
            ).mean()
        )
        fig = figure(
            image,
            osm_mask,
            t / "snapped.tif",
            a.out.parent / "figures" / "prior_osm.png",
            (a.side // 2 - 250, a.side // 2 - 250, 500, 500),
        )
    lines = [
        "# Real OpenStreetMap buildings snapped to the image (Xiamen)",
        "",
        f"Generated by `python -m map_refiner.dev.prior.osm --x0 {a.x0} --y0 {a.y0} --side "
        f"{a.side}` (commit {state['commit']}"
        f"{', with uncommitted changes' if state['dirty'] == 'yes' else ''}; this 2-core CPU).",
        "",
        f"A {a.side} x {a.side} px crop of the Xiamen mosaic (pixels {a.x0}..{a.x0 + a.side}, "
        f"{a.y0}..{a.y0 + a.side}; about 0.54 m on the ground) refined from the real OSM "
        "building layer (`refine --prior xiamen_osm_buildings.gpkg`: the polygons burned on "
        "the model grid, every feature a building; the bundled snap model), in "
        f"{seconds:.0f} s. There is no accurate reference for Xiamen: the numbers say what "
        "the refine did to the OSM outlines, the figure is the visual check. `compare` "
        "flags every OSM building against the map (kept: IoU >= 0.5 in place; moved: the "
        "same shape >= 1 m away; reshaped; not seen: nothing within 4 m; new: a building "
        "of the map no OSM polygon touches).",
        "",
        "| map | " + " | ".join(STATUSES) + " | moved by (median, 90th pct) | mean IoU with OSM |",
        "|---|" + "---|" * len(STATUSES) + "---|---|",
    ]
    for name, label in (("snapped", "refined from OSM"), ("plain", "bundled model, no prior")):
        r = results[name]
        moved = (
            "–"
            if r["moved_median_m"] is None
            else f"{r['moved_median_m']:.1f} m, {r['moved_p90_m']:.1f} m"
        )
        lines.append(
            f"| {label} | "
            + " | ".join(str(r["counts"][s]) for s in STATUSES)
            + f" | {moved} | {r['mean_iou']:.2f} |"
        )
    lines += [
        "",
        f"Building share of the crop: OSM {100 * osm_cov:.1f} %, refined from OSM "
        f"{100 * snap_cov:.1f} %, the bundled model alone {100 * plain_cov:.1f} %; the "
        f"refined-from-OSM map agrees with OSM on {100 * agree:.1f} % of the pixels.",
        "",
        f"Registration (engine/refine/registration.py): the OSM layer {snapped.prior_note}"
        ". A whole layer offset from the imagery shows as most buildings *moved* by about "
        "the same distance; without registration (before session 7) this crop gave 262 "
        "kept, 66 moved (median 1.8 m) and 256 reshaped, with the outlines still partly off "
        "the roofs. The figure is the check that the move is right: the outlines should sit "
        "on the roofs.",
        "",
    ]
    if fig is not None:
        lines += [
            "![OSM outlines and the refined map's outlines on the centre 500 x 500 px]"
            f"({fig.relative_to(a.out.parent).as_posix()})",
            "",
        ]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
