"""Probe (session 46): does matching an image's colours to imagery a model knows help
where the image looks like none of it?

Session 19 standardised every image by its own band statistics at refine time and lost
on every scene the model knew (a scene's colours carry what it shows); session 37 then
learnt to tell, from a handful of colour statistics, whether an image lies near one of the
default model's training areas. This probe asks the question those two leave open: for
an image far from every training area (another sensor, a cast, haze, under-exposure), is
a per-band linear stretch onto a known area's colours a better start?

Each image's per-band percentiles (PERCENTILES, on a 0.6 m grid) are fitted by a
per-band gain and offset (least squares) onto a *home*'s: ``pooled`` (the mean of the
homes' percentiles) or ``nearest`` (the home the fit leaves the smallest residual on);
``exposure``: one gain and offset for every band, the band-mean percentiles onto the
pooled homes'; ``ends`` and ``tails`` (session 48): the pooled fit on the 2nd and 98th
percentiles only, or on the 2nd, 10th, 90th and 98th (SUBSETS).
The matched image is refined by the product's path with the named model (its own
colour matching entry left aside: ``match_colours`` off) and its right half scored
(building IoU) against the reference, beside the image as read and session 19's
per-image normalisation (``moments``); ``--ways product`` adds the model read as the
product reads it, with its entry.

    python -m map_refiner.dev.default_model.colour_match_probe \\
        --model resources/models/general.safetensors \\
        --scenes austin_dev,kampala_drone,nepal_drone,rio_wv2 \\
        --looks "as is,cool cast,dark,haze 0.5" --homes left-out --json out/s46/looks.json

``--figure OUT.jpg`` draws the first scene under the first look, its map as read, its map
with the colours matched and its reference, as outlines on the looked image (a corner of
the right half).

``--guards`` prints, from such a --json file (left-out pool), figures a guard against a
harmful match could read without labels, for each looked image: none separated the
scenes matching costs (Potsdam, LoveDA_1) from those it lifts (session 46).

``--homes left-out``: every scene's left half but the scored scene's own (a look is not
undone by matching onto the very scene it was made from); ``--homes a,b``: those scenes'
left halves (``xiamen``: Xiamen's OSM scene, whole); ``--without a,b`` leaves those areas
out of every pool (session 47: the pool without Vaihingen's false-colour area).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (before GDAL, as every dev module here)
from osgeo import gdal

from ...engine.modelfile.bundled_choice import (
    image_look,
    look_distance,
    look_features,
    look_pixels,
)
from ...engine.modelfile.colour_fit import fit_gains
from ...engine.modelfile.io import load_model, save_model
from ...engine.rasters.read import value_scale
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import ROOT, building_mask, iou
from ..prior.misread import apply_look

gdal.UseExceptions()

PERCENTILES = (2, 10, 25, 50, 75, 90, 98)
GRID_M = 0.6
WAYS = ("as read", "moments", "pooled", "nearest", "exposure")  # and "product" when asked
#: Ways that fit the pooled target on some of its percentiles only (session 48): the
#: darkest and brightest ground (shadows, bright roofs and roads) is set by the sensor and
#: the light more than by what the scene holds, its middle by the land cover.
SUBSETS = {"ends": (2, 98), "tails": (2, 10, 90, 98)}
#: ``gamma`` (session 48): the pooled fit after a power curve, v' = g 255 (v / 255)^gamma
#: + c, gamma (one for all bands) the one of GAMMAS whose fit leaves the least residual:
#: linear sensor values (the ``lin11`` look) are a display image's to the power 2.2.
GAMMAS = tuple(round(0.35 + 0.05 * i, 2) for i in range(20))  # 0.35 .. 1.3


def looked(scene_image: Path, name: str, look: str) -> Path:
    """``name``'s image under ``look`` (dev/prior/misread.py), made once under out/s46/looks
    and reused by every probe of these looks."""
    image = ROOT / "out" / "s46" / "looks" / f"{name}_{look.replace(' ', '')}.tif"
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        if look == "lin11":  # 11-bit linear values, as a satellite's before a display stretch
            src = gdal.Open(str(scene_image))
            a = np.round((src.ReadAsArray()[:3] / 255.0) ** 2.2 * 2047).astype(np.uint16)
            dst = gdal.GetDriverByName("GTiff").Create(
                str(image), src.RasterXSize, src.RasterYSize, 3, gdal.GDT_UInt16
            )
            dst.SetGeoTransform(src.GetGeoTransform())
            dst.SetProjection(src.GetProjection())
            for i in range(3):
                dst.GetRasterBand(i + 1).WriteArray(a[i])
            dst = None
        else:
            apply_look(scene_image, look, image)
    return image


def band_percentiles(image: Path, half: str = "whole") -> np.ndarray:
    """Per-band percentiles ``(3, len(PERCENTILES))`` of ``image``'s first three bands on
    a grid of about GRID_M, over its ``half`` (left / right / whole), pixels with data."""
    ds = gdal.Open(str(image))
    px = abs(ds.GetGeoTransform()[1])
    w, h = ds.RasterXSize, ds.RasterYSize
    x0, x1 = {"left": (0, w // 2), "right": (w // 2, w), "whole": (0, w)}[half]
    f = max(1.0, GRID_M / px)
    bw, bh = max(1, int((x1 - x0) / f)), max(1, int(h / f))
    arr = np.stack(
        [
            ds.GetRasterBand(b).ReadAsArray(
                x0,
                0,
                x1 - x0,
                h,
                buf_xsize=bw,
                buf_ysize=bh,
                buf_type=gdal.GDT_Float32,
                resample_alg=gdal.GRIORA_Average,
            )
            for b in (1, 2, 3)
        ]
    )
    valid = (arr > 0).any(0)
    arr *= value_scale(ds, [1, 2, 3])
    return np.stack([np.percentile(arr[b][valid], PERCENTILES) for b in range(3)])


def look_of(image: Path, half: str = "whole") -> np.ndarray:
    """bundled_choice's look of ``image``'s ``half``, its pixel size the geotransform's
    (the figures' way; home_looks.look_of reads the ground resolution, 0.003 apart here)."""
    ds = gdal.Open(str(image))
    w = ds.RasterXSize
    x0, x1 = {"left": (0, w // 2), "right": (w // 2, w), "whole": (0, w)}[half]
    window = (x0, 0, x1, ds.RasterYSize)
    return image_look(ds, [1, 2, 3], abs(ds.GetGeoTransform()[1]), window)


def fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """colour_fit.fit_gains taking ``src``'s percentiles onto ``dst``'s (``(bands,
    percentiles)``), and the fit's mean absolute residual (8-bit levels)."""
    gains, offsets = fit_gains(src, dst)
    res = np.abs(src * gains[:, None] + offsets[:, None] - dst).mean(axis=1)
    return gains, offsets, float(np.mean(res))


def gamma_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
    """The GAMMAS power and the per-band gains and offsets taking ``src``'s percentiles
    (8-bit range) onto ``dst``'s with the least mean residual."""
    best = None
    for gamma in GAMMAS:
        g, c, r = fit(255.0 * (np.clip(src, 0, None) / 255.0) ** gamma, dst)
        if best is None or r < best[3]:
            best = (gamma, g, c, r)
    assert best is not None
    return best


def matched(
    image: Path, gains: np.ndarray, offsets: np.ndarray, out: Path, gamma: float = 1.0
) -> Path:
    src = gdal.Open(str(image))
    arr = src.ReadAsArray().astype(np.float32)
    arr[:3] *= value_scale(src, [1, 2, 3])
    for b in range(3):
        if gamma != 1.0:
            arr[b] = 255.0 * (np.clip(arr[b], 0, None) / 255.0) ** gamma
        arr[b] = arr[b] * gains[b] + offsets[b]
    dst = gdal.GetDriverByName("GTiff").Create(
        str(out), src.RasterXSize, src.RasterYSize, src.RasterCount, gdal.GDT_Byte
    )
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        dst.GetRasterBand(i + 1).WriteArray(np.clip(np.rint(arr[i]), 0, 255).astype(np.uint8))
    dst = None
    return out


def right_iou(image: Path, reference: Path, model: Path, work: Path, match: bool = False) -> float:
    """Building IoU (%) of ``image``'s right half refined by ``model``; the product's own
    colour matching only with ``match`` (the probe's ways match the image themselves, and
    the bundled models carry the entry since this session)."""
    ref = gdal.Open(str(reference)).ReadAsArray() > 0
    out = work / "map.tif"
    params = RefineParams(image=image, out=out, model_path=model, device="cpu")
    refine_raster(replace(params, match_colours=match))
    pred = building_mask(out)
    out.unlink()
    cols = slice(ref.shape[1] // 2, None)
    return round(100 * iou(pred[:, cols], ref[:, cols]), 2)


def guards(data: Path, names: list[str], looks: list[str], rows: dict) -> None:
    """For each looked image, label-free figures a guard against a harmful match could read
    (the matched image's look distance from the other areas, the spread of the band gains)
    beside the right half's IoU as read and matched (``rows``: a --json file of this probe
    with the left-out pool)."""
    from ...engine.modelfile.bundled_choice import home_looks
    from ...engine.modelfile.colour_fit import band_percentiles as bands_at
    from ...engine.modelfile.colour_match import PERCENTILES as PCT
    from .colour_match import area_percentiles
    from .multiscene import KEPT_OUT, WHOLE

    found = scenes(data, ROOT / "out" / "corrections" / "data")
    areas = {
        n: area_percentiles(s.image, "whole" if n in WHOLE else "left")
        for n, s in found.items()
        if n not in KEPT_OUT
    }
    homes = home_looks()
    print("| image | distance as read | matched | gains' spread | IoU as read | matched |")
    print("|---|---|---|---|---|---|")
    for name in names:
        others = {k: v for k, v in homes.items() if k != name}
        pool = np.mean([v for k, v in areas.items() if k != name], 0)
        for look in looks:
            image = looked(found[name].image, name, look)
            ds = gdal.Open(str(image))
            rgb, valid = look_pixels(ds, [1, 2, 3], abs(ds.GetGeoTransform()[1]))
            g, c = fit_gains(bands_at(rgb, valid, PCT), pool)
            m = np.clip(rgb * g[:, None] + c[:, None], 0, 255).astype(np.float32)
            d0 = look_distance(look_features(rgb[:, :, None], valid[:, None]), others)[0]
            d1 = look_distance(look_features(m[:, :, None], valid[:, None]), others)[0]
            row = rows.get(f"{name}+{look}", {})
            print(
                f"| {name} {look} | {d0:.2f} | {d1:.2f} | {g.max() / g.min():.2f} | "
                f"{row.get('as read', float('nan')):.1f} | {row.get('pooled', float('nan')):.1f} |"
            )


def figure(data: Path, model: Path, name: str, look: str, out: Path, side_m: float = 100) -> None:
    """The looked image of ``name`` with three outlines side by side over the right half's
    top-left ``side_m`` x ``side_m`` metres: the map the model makes of it as read
    (``match_colours`` off), the map with its colours matched, and the reference; each
    panel the looked image as a user sees it."""
    from PIL import Image

    from ...engine.refine.pipeline import RefineParams as Params

    scene = scenes(data, ROOT / "out" / "corrections" / "data")[name]
    image = looked(scene.image, name, look)
    ds = gdal.Open(str(image))
    rgb = ds.ReadAsArray()[:3].transpose(1, 2, 0)
    side = int(side_m / abs(ds.GetGeoTransform()[1]))
    h, w = rgb.shape[:2]
    x0, y0 = w // 2, 0
    win = (slice(y0, min(h, y0 + side)), slice(x0, min(w, x0 + side)))
    masks = []
    with tempfile.TemporaryDirectory(dir=ROOT / "out" / "s46") as d:
        for match in (False, True):
            path = Path(d) / f"m{int(match)}.tif"
            refine_raster(
                Params(image=image, out=path, model_path=model, device="cpu", match_colours=match)
            )
            masks.append(building_mask(path))
    masks.append(gdal.Open(str(scene.reference)).ReadAsArray() > 0)
    panels = []
    for m in masks:
        m = m[win]
        edge = (m ^ np.roll(m, 1, 0)) | (m ^ np.roll(m, 1, 1))
        panel = rgb[win].copy()
        panel[edge] = (255, 0, 255)
        panels.append(panel)
    ph, pw = panels[0].shape[:2]
    both = np.full((ph, 3 * pw + 8, 3), 255, np.uint8)
    for i, panel in enumerate(panels):
        both[:, i * (pw + 4) : i * (pw + 4) + pw] = panel
    img = Image.fromarray(both)
    scale = min(1.0, 1500 / img.size[0])
    img = img.resize((int(img.size[0] * scale), int(img.size[1] * scale)), Image.BILINEAR)
    img.convert("RGB").save(out, quality=85)
    print(out, img.size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--scenes", default="austin_dev,kampala_drone,nepal_drone,rio_wv2")
    ap.add_argument("--looks", default="as is,cool cast,dark,haze 0.5")
    ap.add_argument("--homes", default="left-out")
    ap.add_argument(
        "--without", default="", help="areas left out of every pool (e.g. isprs_vaihingen)"
    )
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument(
        "--austin-enh",
        choices=("whole", "left"),
        default="whole",
        help="austin_enh's part as a home (left: as section 1's figures were made)",
    )
    ap.add_argument(
        "--guards", action="store_true", help="print guard figures from --json's rows instead"
    )
    ap.add_argument("--figure", type=Path, help="write SCENE+LOOK's figure here instead")
    ap.add_argument("--side", type=float, default=100.0, help="the figure's side in metres")
    a = ap.parse_args(argv)
    if a.figure:
        name, look = a.scenes.split(",")[0], a.looks.split(",")[0]
        figure(a.data, a.model, name, look, a.figure, a.side)
        return 0
    if a.guards:
        rows = json.loads(a.json.read_text())
        guards(a.data, a.scenes.split(","), a.looks.split(","), rows)
        return 0
    work = ROOT / "out" / "s46"
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    home_names = list(found) if a.homes == "left-out" else a.homes.split(",")
    homes: dict[str, np.ndarray] = {}
    looks: dict[str, np.ndarray] = {}
    for name in home_names:
        if name in a.without.split(","):
            continue
        if name == "xiamen":
            homes[name] = band_percentiles(a.data / "xiamen/xiamen_rgb.tif")
            looks[name] = look_of(a.data / "xiamen/xiamen_rgb.tif")
        elif name != "austin_dev":  # never a training area
            half = a.austin_enh if name == "austin_enh" else "left"
            homes[name] = band_percentiles(found[name].image, half)
            looks[name] = look_of(found[name].image, half)
    ways = a.ways.split(",")
    cfg = load_model(a.model)[1]
    results = json.loads(a.json.read_text()) if a.json.exists() else {}
    for name in a.scenes.split(","):
        scene = found[name]
        for look in a.looks.split(","):
            key = f"{name}+{look}"
            image = scene.image
            if look != "as is":
                image = looked(scene.image, name, look)
            pct = band_percentiles(image)
            own = {k: v for k, v in homes.items() if not (a.homes == "left-out" and k == name)}
            row: dict[str, object] = {}
            row["distance"], row["nearest look"] = look_distance(look_of(image), looks)
            with tempfile.TemporaryDirectory(dir=work) as d:
                tmp = Path(d)
                for way in ways:
                    if way == "as read":
                        row[way] = right_iou(image, scene.reference, a.model, tmp)
                    elif way == "product":  # the model's own entry, as the product reads it
                        row[way] = right_iou(image, scene.reference, a.model, tmp, True)
                    elif way == "moments":
                        cfg.normalisation = "image"
                        m = tmp / "m.safetensors"
                        net = load_model(a.model)[0]
                        save_model(net, cfg, m, overwrite=True)
                        row[way] = right_iou(image, scene.reference, m, tmp)
                        cfg.normalisation = "model"
                    else:
                        if way in ("pooled", "exposure", "gamma", *SUBSETS):
                            target, home = np.mean(list(own.values()), 0), "pooled"
                        else:
                            fits = {k: fit(pct, v)[2] for k, v in own.items()}
                            home = min(fits, key=fits.__getitem__)
                            target = own[home]
                        g, c, r = fit(pct, target)
                        gamma = 1.0
                        if way == "gamma":
                            gamma, g, c, r = gamma_fit(pct, target)
                            row["gamma"] = gamma
                        if way in SUBSETS:
                            cols = [PERCENTILES.index(p) for p in SUBSETS[way]]
                            g, c, r = fit(pct[:, cols], target[:, cols])
                        if way == "exposure":  # one gain and offset for every band
                            g1, c1, r = fit(pct.mean(0)[None], target.mean(0)[None])
                            g, c = np.repeat(g1, 3), np.repeat(c1, 3)
                        path = matched(image, g, c, tmp / "matched.tif", gamma)
                        row[way] = right_iou(path, scene.reference, a.model, tmp)
                        row[f"{way} home"] = home
                        row[f"{way} gains"] = [round(float(x), 3) for x in g]
                        row[f"{way} offsets"] = [round(float(x), 1) for x in c]
                        row[f"{way} residual"] = round(r, 2)
            results[key] = row
            print(key, json.dumps(row), flush=True)
            a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
