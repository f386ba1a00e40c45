"""How far the bundled RNN snaps a wrong map onto the image: the accurate reference of
each georeferenced shared scene, made wrong the way real coarse maps are (shifted by
1, 2 and 4 m; 20 % of the buildings removed), given as ``refine --prior``, scored
against the reference. The model is what ``refine --prior`` uses (the bundled snap
model) unless ``--model`` names another (docs/results_prior.md: the default model).

    python -m map_refiner.dev.prior.shifted [--strengths 1,3] [--iterations 5]
        [--also-unregistered] [--figure docs/figures/prior_shifted.png]
        [--kinds shift:0,shift:2,warp:1,warp:2 --also-one-shift --section "Per-region shifts"]
        # -> docs/results_prior.md, out/prior/rows.json; about 2 min a strength, alone
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from ...engine.rasters.grid import grid_of, metres_per_unit
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import Scene, scenes
from ..corrections.study import iou
from ..provenance import commit_label
from .generalise import disc, merged, simplified
from .regularize_eval import HEADING as REGULARISED
from .sections import kept_sections, session_headings, write_section

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]
GEOREFERENCED = ("austin_dev", "austin_enh", "kampala_drone", "nepal_drone", "rio_wv2")
#: The wrong priors of the report's table.
KINDS = ("shift:0", "shift:1", "shift:2", "shift:4", "drop:20")


def wrong_map(ref: np.ndarray, like: gdal.Dataset, kind: str, out: Path, seed: int = 0) -> Path:
    """The reference made wrong: ``shift:N`` moves it N metres east and N south (the
    geotransform's origin, so the prior's own grid stays aligned to its pixels);
    ``drop:P`` removes P % of its buildings; ``dilate:N`` grows every building by N
    metres (a generalised, too-large outline); ``warp:N`` moves the left half N metres
    east and N south and the right half N west and N north (a map traced from two
    imageries registered differently; to the image's pixel); ``ramp:N`` moves each
    column east and south by N metres at the left edge, less towards the middle, and
    west and north beyond it, N at the right edge (an offset varying smoothly across the
    image); ``scatter:N`` moves each
    building on its own by N metres in a random direction (errors no single shift can
    fix); ``merge:N`` joins buildings less than N metres apart into blocks and
    ``simplify:N`` simplifies every outline by N metres (generalise.py: a generalised
    map's blocks and a coarse tracing's outlines); ``soft:N`` is ``shift:N`` as another
    tool's probabilities: two float bands (background, building), the outline blurred over
    about a metre and never fully sure (0.05-0.95)."""
    gt = list(like.GetGeoTransform())
    mask = ref.copy()
    per_x, per_y = metres_per_unit(grid_of(like))  # 1 on a metric grid
    pixel = abs(gt[1]) * per_x
    if kind.startswith(("shift:", "soft:")):
        metres = float(kind.split(":")[1])
        gt[0] += metres / per_x
        gt[3] -= metres / per_y
    elif kind.startswith("drop:"):
        labels, n = ndimage.label(mask)
        rng = np.random.default_rng(seed)
        count = int(round(n * float(kind[5:]) / 100))
        gone = rng.choice(np.arange(1, n + 1), size=count, replace=False)  # P %, each once
        mask[np.isin(labels, gone)] = False
    elif kind.startswith("dilate:"):
        r = max(1, int(round(float(kind[7:]) / pixel)))
        mask = ndimage.binary_dilation(mask, structure=disc(r))
    elif kind.startswith("warp:"):
        d = int(round(float(kind[5:]) / pixel))
        half = mask.shape[1] // 2
        east_south, west_north = moved(mask, d, d), moved(mask, -d, -d)
        mask = np.concatenate([east_south[:, :half], west_north[:, half:]], axis=1)
    elif kind.startswith("ramp:"):
        h, w = mask.shape
        d = np.rint(float(kind[5:]) * (1 - 2 * (np.arange(w) + 0.5) / w) / pixel).astype(int)
        rows, cols = np.arange(h)[:, None] - d[None, :], np.arange(w)[None, :] - d[None, :]
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        mask = mask[np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)] & inside
    elif kind.startswith("merge:"):
        mask = merged(mask, float(kind[6:]) / pixel)
    elif kind.startswith("simplify:"):
        mask = simplified(mask, float(kind[9:]) / pixel)
    elif kind.startswith("scatter:"):
        d = float(kind[8:]) / pixel
        labels, n = ndimage.label(mask)
        rng = np.random.default_rng(seed)
        mask = np.zeros_like(mask)
        for i, angle in enumerate(rng.uniform(0, 2 * np.pi, size=n), start=1):
            ys, xs = np.nonzero(labels == i)
            ys = ys + int(round(d * np.sin(angle)))
            xs = xs + int(round(d * np.cos(angle)))
            inside = (ys >= 0) & (ys < mask.shape[0]) & (xs >= 0) & (xs < mask.shape[1])
            mask[ys[inside], xs[inside]] = True
    if kind.startswith("soft:"):
        p = 0.05 + 0.9 * ndimage.gaussian_filter(mask.astype(np.float32), 1.0 / pixel)
        bands = [1 - p, p]
        ds = gdal.GetDriverByName("GTiff").Create(
            str(out), mask.shape[1], mask.shape[0], 2, gdal.GDT_Float32
        )
    else:
        bands = [mask.astype(np.uint8)]
        ds = gdal.GetDriverByName("GTiff").Create(str(out), mask.shape[1], mask.shape[0], 1)
    ds.SetGeoTransform(gt)
    ds.SetProjection(like.GetProjection())
    for i, band in enumerate(bands, start=1):
        ds.GetRasterBand(i).WriteArray(band)
    ds = None
    return out


def coarsened(s: Scene, pixel_m: float, out_dir: Path, degrees: bool = False) -> Scene:
    """``s`` resampled to ``pixel_m`` ground metres (coarse imagery with a known answer):
    the image averaged, the reference a building where at least half of the fine pixels
    were; both on the same grid, kept in ``out_dir`` and reused. With ``degrees``,
    ``pixel_m`` is in degrees of longitude and latitude on EPSG:4326 (as Swellendam's
    orthophotos: 0.000025 degrees)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image, reference = out_dir / f"{s.name}_rgb.tif", out_dir / f"{s.name}_gt.tif"
    if not (image.exists() and reference.exists()):
        gdal.Warp(
            str(image),
            str(s.image),
            xRes=pixel_m,
            yRes=pixel_m,
            dstSRS="EPSG:4326" if degrees else None,
            resampleAlg="average",
        )
        like = gdal.Open(str(image))
        gt = like.GetGeoTransform()
        w, h = like.RasterXSize, like.RasterYSize
        fine = gdal.Open(str(s.reference))
        share = gdal.Warp(
            "",
            gdal.Translate(
                "", fine, format="MEM", outputType=gdal.GDT_Float32, scaleParams=[[0, 255, 0, 1]]
            )
            if fine.GetRasterBand(1).ReadAsArray().max() > 1
            else fine,
            format="MEM",
            outputBounds=(gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]),
            width=w,
            height=h,
            dstSRS=like.GetProjection(),
            outputType=gdal.GDT_Float32,
            resampleAlg="average",
        ).ReadAsArray()
        ds = gdal.GetDriverByName("GTiff").Create(str(reference), w, h, 1)
        ds.SetGeoTransform(gt)
        ds.SetProjection(like.GetProjection())
        ds.GetRasterBand(1).WriteArray(np.where(share >= 0.5, 255, 0).astype(np.uint8))
        ds = None
    return Scene(s.name, s.kind, image, reference)


def moved(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved ``dy`` pixels down and ``dx`` right, empty where nothing comes in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = mask[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


def prior_on_image(prior: Path, like: gdal.Dataset) -> np.ndarray:
    """The prior warped onto the image's grid (what the prior itself scores)."""
    gt = like.GetGeoTransform()
    w, h = like.RasterXSize, like.RasterYSize
    out = gdal.Warp(
        "",
        str(prior),
        format="MEM",
        outputBounds=(gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]),
        width=w,
        height=h,
        dstSRS=like.GetProjection(),
        resampleAlg="near",
        dstNodata=0,
    )
    arr = out.ReadAsArray()
    return arr[1] > arr[0] if arr.ndim == 3 else arr == 1  # probabilities: most probable


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "prior")
    ap.add_argument(
        "--strengths",
        default="calibrated,1,3",
        help="prior strengths to compare (calibrated: the default)",
    )
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="default: what refine --prior uses (the bundled snap model)",
    )
    ap.add_argument(
        "--right-half",
        action="store_true",
        help="score the right halves only (what dev/default_model/snap.py never trains on)",
    )
    ap.add_argument(
        "--also-unregistered",
        action="store_true",
        help="also each strength as before session 7: no shift found, no pixel of the "
        "prior kept (--no-prior-shift --prior-keep 0)",
    )
    ap.add_argument(
        "--also-one-shift",
        action="store_true",
        help="also each strength with the prior moved by one shift at most, never by a "
        "field varying across the image (--one-prior-shift)",
    )
    ap.add_argument(
        "--section",
        default=None,
        help="write the table as this section of the report (## heading), leaving the "
        "rest of it as it is (default: the report's top, keeping its other sections)",
    )
    ap.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="the wrong priors (shift:N, drop:P, dilate:N, scatter:N, warp:N, ramp:N, "
        "merge:N, simplify:N; default: "
        "%(default)s)",
    )
    ap.add_argument(
        "--prior-search", type=float, default=None, help="refine --prior-search (default 10 m)"
    )
    ap.add_argument(
        "--pixel-m",
        type=float,
        default=None,
        help="first resample each scene to this many ground metres a pixel (image "
        "averaged, reference by majority): coarse imagery with a known answer",
    )
    ap.add_argument(
        "--degrees",
        action="store_true",
        help="--pixel-m is in degrees: each scene is resampled onto EPSG:4326",
    )
    ap.add_argument(
        "--scenes",
        default=",".join(GEOREFERENCED),
        help="the scenes (default: the georeferenced ones, %(default)s; the ISPRS and "
        "LoveDA tiles are PNGs the study gives a made-up UTM grid, the same for image and "
        "reference)",
    )
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "results_prior.md")
    ap.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="also a before/after figure there: per scene, the 2 m-shifted prior, it "
        "snapped without and with registration, and the right prior snapped (the first "
        "strength; with --also-unregistered)",
    )
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    if a.pixel_m:
        unit = "deg" if a.degrees else "m"
        coarse = a.out_dir / f"coarse_{a.pixel_m:g}{unit}"
        sc = {n: coarsened(sc[n], a.pixel_m, coarse, a.degrees) for n in a.scenes.split(",")}
    rows = []
    crops: dict = {}  # the figure's windows, of the first strength only
    for i, strength in enumerate(a.strengths.split(",")):
        value = None if strength == "calibrated" else float(strength)
        keep = crops if i == 0 and a.figure else None
        rows += run_strength(a, sc, value, crops=keep)
        if a.also_one_shift:
            rows += run_strength(a, sc, value, regions=False)
        if a.also_unregistered:
            rows += run_strength(a, sc, value, registered=False, crops=keep)
    (a.out_dir / "rows.json").write_text(json.dumps(rows, indent=1))
    if a.figure and crops and shifted_figure(crops, a.figure) is None:
        a.figure = None  # no matplotlib: the report says nothing of a figure
    write_report(rows, a, a.report)
    return 0


#: The figure's panels: (prior, registered) and their titles.
PANELS = (
    (("shift:2", None), "prior shifted 2 m"),
    (("shift:2", False), "snapped, unregistered, keep 0"),
    (("shift:2", True), "snapped (today's default)"),
    (("shift:0", True), "right prior, snapped"),
)


#: The figure's windows, in ground metres.
FIGURE_METRES = 75.0

#: The section of the report written by hand, which a rerun keeps.
READING = "Reading"
#: The per-region study's sections (``--section``), which a rerun of the top keeps.
REGIONS = ("Per-region shifts", "Per-region shifts: reading")
#: Other hand-written or ``--section`` parts of the report, which a rerun of the top keeps.
OTHERS = (
    "Priors further off than the search",
    "Coarse imagery (2.4 m)",
    "Coarse imagery (0.000025 degrees)",
    "Coarse imagery: reading",
    "A map that means nothing",
    "A map that means nothing: reading",
    "Every scene with an accurate reference",
    "Every scene with an accurate reference: reading",
    "The image's edges as a second opinion",
    "A second misreading: bands in the wrong order",
    "A second misreading: reading",
    "A third misreading: haze, colour balance, exposure",
    "A third misreading: reading",
)


def figure_window(ref: np.ndarray, pixel_m: float, metres: float = FIGURE_METRES) -> tuple:
    """The square window about ``metres`` wide (or the whole image where smaller) with
    the most reference building pixels, as numpy slices."""
    size = min(int(round(metres / pixel_m)), *ref.shape)
    step = max(1, size // 4)
    best, at = -1, (0, 0)
    for y in range(0, ref.shape[0] - size + 1, step):
        for x in range(0, ref.shape[1] - size + 1, step):
            n = int(ref[y : y + size, x : x + size].sum())
            if n > best:
                best, at = n, (y, x)
    return np.s_[at[0] : at[0] + size, at[1] : at[1] + size]


def shifted_figure(crops: dict, out: Path) -> Path | None:
    """One row per scene, one panel per ``PANELS`` entry: the image window, the
    reference outlines in cyan and the panel's map in red. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(dict.fromkeys(name for name, _ in crops))
    fig, axes = plt.subplots(len(names), len(PANELS), figsize=(3.2 * len(PANELS), 3.3 * len(names)))
    axes = np.atleast_2d(axes)
    for row, name in enumerate(names):
        image, ref = crops[name, "image"], crops[name, "reference"]
        for ax, (key, title) in zip(axes[row], PANELS):
            ax.imshow(image)
            ax.contour(ref.astype(float), [0.5], colors="cyan", linewidths=0.8)
            shown = crops.get((name, key))
            if shown is not None:
                ax.contour(shown.astype(float), [0.5], colors="red", linewidths=1.0)
            ax.set_title(f"{name}: {title}" if ax is axes[row][0] else title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


def image_window(like: gdal.Dataset, window: tuple, x0: int = 0) -> np.ndarray:
    """The image's first three bands over ``window`` (of its columns from ``x0`` on),
    stretched to 0..1 for display."""
    rgb = like.ReadAsArray()[:3, :, x0:][(slice(None), *window)]
    rgb = rgb.transpose(1, 2, 0).astype(np.float32)
    lo, hi = np.percentile(rgb, (1, 99))
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def short_note(note: str) -> str:
    """What registration did, for the table: ``moved 2.0 m west and 2.0 m north``,
    ``in place (0.3 m found)`` (a shift under the threshold), ``in place (edges: 1.8 m
    west and 0.0 m north at 0.43)`` (a move the image's edges undid: registration.edge_ratio),
    ``moved 1.8 m west and 1.8 m north by the edges (1.51; model: 0.4 m east and 3.9 m north
    at 0.79)`` (such a move replaced by the image's edges' own, session 40) or
    ``in place``; with `` + kept (reshape 0.89)`` or `` + kept (support 1.68)`` when the
    prior's classes were kept as drawn because the model's map would reshape it onto weaker
    edges, or could not place it while the image's edges follow it (RefineResult.
    prior_reshape_ratio, prior_edge_support)."""
    kept = ""
    for pattern, word in (
        (r"reshape it onto weaker edges of the image \(([\d.]+) times", "reshape"),
        (r"the image's edges follow its outlines \(([\d.]+) times", "support"),
    ):
        found = re.search(pattern, note)
        if found:
            kept = f" + kept ({word} {found.group(1)})"
    note = note.split("; the model's map would reshape")[0].split("; but the image's edges")[0]
    return _placed(note) + kept


def _placed(note: str) -> str:
    """short_note's part for registration alone."""
    by_edges = re.match(
        r"moved (.+) onto the image's edges \(([\d.]+) times.*the model's map would move it "
        r"(.+), but that lays .*\(([\d.]+) times",
        note,
    )
    if by_edges:  # session 40: the model's move undone, the image's edges placed it
        a, gain, b, ratio = by_edges.groups()
        return f"moved {a} by the edges ({gain}; model: {b} at {ratio})"
    if note.startswith("moved "):
        return note.removesuffix(" to fit the image")
    found = re.match(r"left in place: its ([\d.]+) m offset", note)
    if found:
        return f"in place ({found.group(1)} m found)"
    edges = re.match(
        r"left in place: the model's map would move it (.+), but that lays .*\(([\d.]+) times",
        note,
    )
    if edges:
        return f"in place (edges: {edges.group(1)} at {edges.group(2)})"
    return "in place" if note else ""


def run_strength(
    a: argparse.Namespace,
    sc: dict,
    strength: float | None,
    registered: bool = True,
    crops: dict | None = None,
    regions: bool = True,
) -> list[dict]:
    """Each scene's wrong priors refined and scored; with ``crops``, the figure's
    windows of what ``PANELS`` shows are kept there."""
    rows = []
    for name in a.scenes.split(","):
        if a.right_half and name == "austin_enh":  # the snap model trains on all of it
            continue
        s = sc[name]
        like = gdal.Open(str(s.image))
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        for kind in a.kinds.split(","):
            prior = wrong_map(ref, like, kind, a.out_dir / f"{name}_{kind.replace(':', '')}.tif")
            one = "" if regions else "_one_shift"  # kept beside the per-region one
            out = a.out_dir / f"{name}_{kind.replace(':', '')}{one}_snapped.tif"
            result = refine_raster(
                RefineParams(
                    image=s.image,
                    out=out,
                    device="cpu",
                    model_path=a.model,
                    iterations=a.iterations,
                    prior=prior,
                    prior_value_map=None if kind.startswith("soft:") else {0: 0, 1: 1},
                    prior_strength=strength,
                    prior_register=registered,
                    prior_regions=regions,
                    prior_search_m=a.prior_search,
                    prior_keep=None if registered else 0.0,
                    overwrite=True,
                )
            )
            snapped = gdal.Open(str(out)).ReadAsArray() == 1
            before = prior_on_image(prior, like)
            if a.right_half:
                half = ref.shape[1] // 2
                snapped, before, scored = snapped[:, half:], before[:, half:], ref[:, half:]
            else:
                scored = ref
            if crops is not None:
                if (name, "window") not in crops:
                    window = figure_window(scored, like.GetGeoTransform()[1])
                    crops[name, "window"] = window
                    x0 = ref.shape[1] // 2 if a.right_half else 0
                    crops[name, "image"] = image_window(like, window, x0)
                    crops[name, "reference"] = scored[window]
                window = crops[name, "window"]
                if (kind, None) in [k for k, _ in PANELS]:
                    crops[name, (kind, None)] = before[window]
                if (kind, registered) in [k for k, _ in PANELS]:
                    crops[name, (kind, registered)] = snapped[window]
            row = {
                "strength": ("calibrated" if strength is None else str(strength))
                + ("" if registered else " (unregistered, keep 0)")
                + ("" if regions else " (one shift)"),
                "scene": name,
                "prior": kind,
                "prior_iou": round(100 * iou(before, scored), 1),
                "snapped_iou": round(100 * iou(snapped, scored), 1),
                "registration": short_note(result.prior_note) if registered else "",
                "edge_ratio": result.prior_edge_ratio,
                "reshape_ratio": result.prior_reshape_ratio,
                "edge_support": result.prior_edge_support,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def model_name(path: Path | None) -> str:
    from ...engine.modelfile.header import SNAP_MODEL_PATH, read_model_config

    chosen = path or SNAP_MODEL_PATH
    return f"{read_model_config(chosen).name} (`{chosen.name}`)"


def write_report(rows: list[dict], a: argparse.Namespace, path: Path) -> None:
    kinds, section = getattr(a, "kinds", ",".join(KINDS)), getattr(a, "section", None)
    chosen = getattr(a, "scenes", ",".join(GEOREFERENCED))
    own = chosen == ",".join(GEOREFERENCED)  # the georeferenced scenes, the default
    lines = [
        "# Refining a map you already have: "
        + ("right halves, " if a.right_half else "")
        + model_name(a.model),
        "",
        f"Generated by `python -m map_refiner.dev.prior.shifted --strengths {a.strengths} "
        f"--iterations {a.iterations}"
        + (f" --model {a.model}" if a.model else "")
        + (" --right-half" if a.right_half else "")
        + (f" --pixel-m {a.pixel_m:g}" if getattr(a, "pixel_m", None) else "")
        + (" --degrees" if getattr(a, "degrees", False) else "")
        + ("" if own else f" --scenes {chosen}")
        + (" --also-unregistered" if a.also_unregistered else "")
        + (f" --kinds {kinds}" if kinds != ",".join(KINDS) else "")
        + (" --also-one-shift" if getattr(a, "also_one_shift", False) else "")
        + (f' --section "{section}"' if section else "")
        + (f" --figure {a.figure}" if a.figure else "")
        + f"` ({commit_label()}; this 2-core CPU).",
        "",
        "Each "
        + ("georeferenced shared scene's" if own else f"scene's ({chosen.replace(',', ', ')})")
        + " accurate building reference is made wrong the "
        "way coarse maps are (shifted east and south by 1, 2, 4 m; 20 % of the buildings "
        "removed; `shift:0` is the reference itself), given to `map-refiner refine IMAGE "
        "--prior PRIOR --prior-strength S`, and the result is scored against "
        "the reference (building IoU %)"
        + (
            " on the right halves only (the snap model never trains on them; austin_enh, "
            "which it trains on whole, is left out)"
            if a.right_half
            else ""
        )
        + f". Model: {model_name(a.model)}.",
        "",
        "| strength | scene | prior | prior's IoU | snapped IoU | change | registration |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strength']} | {r['scene']} | {r['prior']} | {r['prior_iou']:.1f} | "
            f"{r['snapped_iou']:.1f} | {r['snapped_iou'] - r['prior_iou']:+.1f} | "
            f"{r.get('registration') or '-'} |"
        )
    lines.append("")
    for strength in dict.fromkeys(r["strength"] for r in rows):
        for kind in dict.fromkeys(r["prior"] for r in rows):
            rs = [r for r in rows if r["prior"] == kind and r["strength"] == strength]
            if rs:
                mean = sum(r["snapped_iou"] - r["prior_iou"] for r in rs) / len(rs)
                lines.append(
                    f"- strength {strength}, {kind}: mean change {mean:+.1f} points over "
                    f"{len(rs)} scenes."
                )
    if section:  # the table and its means, without the report's title
        lines = lines[2:] + [
            "",
            "`warp:N`: the left half of the reference moved N m east and N m south, the right "
            "half N m west and N m north (a map traced from two imageries registered "
            "differently); `ramp:N`: each column moved N m east and south at the left edge, "
            "by less towards the middle and the other way beyond it, N m west and north at "
            "the right edge (an offset varying smoothly). *(one shift)* rows: the same "
            "refine moved by one shift at most (`--one-prior-shift`), as before per-region "
            "shifts.",
        ]
        write_section(path, section, "\n".join(lines))
        return
    lines += [
        "",
        "Targets of the issue: +10 points over a 2 m-shifted prior, and never more than 1 "
        "point worse than a prior that is already right (`shift:0`).",
        "",
        "*calibrated* (the default) starts each prior class from the coarse CNN's own mean "
        "heat vector for that class on the image (engine/refine/prior.py); a number is a "
        "fixed logit for the prior's class.",
        "",
        "Since session 7 a refine from a prior first finds the shift (up to 5 m; 10 m since "
        "session 15) that lays "
        "the prior best over the model's own refined map on a lattice of windows, and "
        "moves the prior by it when it is clear and longer than 0.75 m "
        "(engine/refine/registration.py); then, on the image's own pixels, the prior's "
        "class stays wherever the refined map gives it at least 0.1 probability "
        "(prior.keep_prior), so a right outline keeps its detail instead of being rounded "
        "to the model's 0.6 m grid. *unregistered, keep 0* rows are the same refine "
        "without either (`--no-prior-shift --prior-keep 0`), as it was before. "
        "*registration*: what it did with that prior (moved by how far, or left in place).",
    ]
    if a.figure:
        lines += [
            "",
            f"![Per scene ({FIGURE_METRES:.0f} m windows with the most reference buildings"
            + (" of the right half" if a.right_half else "")
            + "): reference outlines in cyan; in red, the 2 m-shifted prior, it snapped "
            "without registration or kept pixels, it snapped with today's defaults, and "
            "the right prior snapped](" + os.path.relpath(a.figure, path.parent) + ")",
        ]
    # the hand-written reading and other studies' sections of this file stay
    kept = kept_sections(path, [READING, REGULARISED, *REGIONS, *OTHERS, *session_headings(path)])
    path.write_text("\n".join(lines) + "\n" + (f"\n{kept}\n" if kept else ""))


if __name__ == "__main__":
    raise SystemExit(main())
