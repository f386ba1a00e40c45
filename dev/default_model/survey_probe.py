"""Probe (session 47): one mosaic's tiles, each refined on its own judgement (the bundled
model its look chooses, its colours matched or not), against the same tiles refined with
one survey model (`map-refiner survey-model`) and the mosaic refined once.

A refine with no model named judges each image alone; the tiles of one survey fall either
side of the thresholds, and a tile read one way agrees little with its neighbour's reading.
This cuts IMAGE into SIDE x SIDE px tiles (VRTs), refines every tile (with at least half
its pixels holding data) through the CLI three ways, and prints per way the building IoU
of the tiles' maps with the mosaic refined once the same way and against a reference mask
(Xiamen's OSM buildings: imprecise, a yardstick not a truth).

    python -m map_refiner.dev.default_model.survey_probe \\
        --image ../shared/data/xiamen/xiamen_rgb.tif \\
        --reference ../shared/data/xiamen/xiamen_osm_buildings_mask.tif \\
        --work out/s47/survey --json out/s47/survey.json --figure docs/figures/survey_seam.jpg

About 12 minutes alone on the 2-core CPU (two mosaic refines, 98 tile refines). Then
``--general-where-default`` refines the tiles judged alone that got the default model as
they are with the general model as they are, and scores both against the reference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

CLI = [sys.executable, "-m", "map_refiner"]


def cli(*args: str) -> str:
    return subprocess.run([*CLI, *args], check=True, capture_output=True, text=True).stdout


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def tiles_of(image: Path, side: int, work: Path) -> list[tuple[int, int, Path]]:
    ds = gdal.Open(str(image))
    out = []
    for y in range(0, ds.RasterYSize - side + 1, side):
        for x in range(0, ds.RasterXSize - side + 1, side):
            path = work / f"t_{x}_{y}.vrt"
            gdal.Translate(str(path), ds, format="VRT", srcWin=[x, y, side, side])
            out.append((x, y, path))
    return out


def way_maps(
    name: str, model: list[str], tiles: list[tuple[int, int, Path]], image: Path, work: Path
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The mosaic refined once and its tiles refined one by one, with ``model``'s args;
    the tiles' maps pasted into one array, and what each tile's refine said."""
    whole = work / f"{name}_whole.tif"
    if not whole.exists():
        cli("refine", str(image), "--out", str(whole), *model)
    mosaic = gdal.Open(str(whole)).ReadAsArray()
    pasted = np.full_like(mosaic, 255)
    said = []
    for x, y, path in tiles:
        out = work / f"{name}_{x}_{y}.tif"
        text = cli("refine", str(path), "--out", str(out), "--overwrite", *model)
        if model:  # a model named: the refine says no choice
            said.append("named" + (" m" if "matched" in text else ""))
        else:
            said.append(("G" if "general" in text else "D") + ("m" if "matched" in text else ""))
        tile = gdal.Open(str(out)).ReadAsArray()
        pasted[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return mosaic, pasted, said


def general_where_default(tiles: list[tuple[int, int, Path]], ref: np.ndarray, work: Path) -> None:
    """The tiles each judged alone that got the default model as they are, refined with
    the general model as they are: both against the reference (after the ways have run)."""
    from ...engine.modelfile.bundled_choice import choose_bundled

    pairs = []
    for x, y, path in tiles:
        each = work / f"each_{x}_{y}.tif"
        if "default" not in choose_bundled(path).path.name or not each.exists():
            continue
        out = work / f"general_{x}_{y}.tif"
        cli("refine", str(path), "--model", "general", "--no-colour-match", "--out", str(out))
        d, g = gdal.Open(str(each)).ReadAsArray(), gdal.Open(str(out)).ReadAsArray()
        r = ref[y : y + d.shape[0], x : x + d.shape[1]]
        valid = (d != 255) & (g != 255)
        if valid.mean() < 0.5:
            continue
        pairs.append((iou((d == 1) & valid, r & valid), iou((g == 1) & valid, r & valid)))
    a = 100 * np.array(pairs)
    print(
        f"{len(a)} tiles given the default: default {a[:, 0].mean():.1f}, general "
        f"{a[:, 1].mean():.1f} against the reference; the general higher on "
        f"{int((a[:, 1] > a[:, 0]).sum())}"
    )


def figure(pasted: dict[str, np.ndarray], image: Path, x: int, y: int, out: Path) -> None:
    """The image around the tile corner (x, y), outlines of each way's buildings, side by
    side, the tile borders drawn dashed."""
    from PIL import Image

    r = 300
    ds = gdal.Open(str(image))
    rgb = ds.ReadAsArray(x - r, y - r, 2 * r, 2 * r)[:3].transpose(1, 2, 0)
    panels = []
    for maps in pasted.values():
        panel = rgb.copy()
        b = maps[y - r : y + r, x - r : x + r] == 1
        edge = (b ^ np.roll(b, 1, 0)) | (b ^ np.roll(b, 1, 1))
        panel[edge] = (255, 40, 40)
        dash = (np.arange(2 * r) // 6) % 2 == 0
        panel[r, dash] = panel[dash, r] = (255, 255, 0)
        panels.append(panel)
    gap = np.full((2 * r, 8, 3), 255, np.uint8)
    row = np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], 1)
    Image.fromarray(row).save(out, quality=88)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--side", type=int, default=1000)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--corner", default="3000,3000", help="the figure's tile corner x,y")
    ap.add_argument(
        "--figure-only", action="store_true", help="draw the figure from --work's tile maps"
    )
    ap.add_argument(
        "--general-where-default",
        action="store_true",
        help="after the ways: the tiles given the default, read by the general model",
    )
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    tiles = tiles_of(a.image, a.side, a.work)
    if a.general_where_default:
        ref = gdal.Open(str(a.reference)).ReadAsArray() > 0
        general_where_default(tiles, ref, a.work)
        return 0
    if a.figure_only:
        ds = gdal.Open(str(a.image))
        shape = (ds.RasterYSize, ds.RasterXSize)
        maps = {}
        for key in ("each", "one"):
            maps[key] = np.full(shape, 255, np.uint8)
            for x, y, _ in tiles:
                tile = gdal.Open(str(a.work / f"{key}_{x}_{y}.tif")).ReadAsArray()
                maps[key][y : y + tile.shape[0], x : x + tile.shape[1]] = tile
        x, y = (int(v) for v in a.corner.split(","))
        figure(maps, a.image, x, y, a.figure)
        return 0
    survey = a.work / "survey.safetensors"
    said = cli("survey-model", *[str(p) for _, _, p in tiles], "--out", str(survey), "--overwrite")
    print(said, flush=True)
    ways = {"each tile judged alone": [], "one survey model": ["--model", str(survey)]}
    ref = gdal.Open(str(a.reference)).ReadAsArray() > 0
    rows: dict[str, dict] = {"survey": said}
    pasted = {}
    for name, model in ways.items():
        key = name.split()[0]
        mosaic, maps, told = way_maps(key, model, tiles, a.image, a.work)
        pasted[name] = maps
        valid = (mosaic != 255) & (maps != 255)
        row = {
            "tiles": {k: told.count(k) for k in sorted(set(told))},
            "tiles against the mosaic read once": round(
                100 * iou((maps == 1) & valid, (mosaic == 1) & valid), 1
            ),
            "tiles against the reference": round(100 * iou((maps == 1) & valid, ref & valid), 1),
            "mosaic against the reference": round(100 * iou((mosaic == 1) & valid, ref & valid), 1),
        }
        rows[name] = row
        print(name, json.dumps(row), flush=True)
        a.json.write_text(json.dumps(rows, indent=1))
    if a.figure:
        x, y = (int(v) for v in a.corner.split(","))
        figure(pasted, a.image, x, y, a.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
