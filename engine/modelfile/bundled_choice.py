"""Which bundled model a refine or a first fine-tune uses when the user names none.

The bundled default model reads imagery like the scenes it was trained on best (Austin's
aerial photos above all); the bundled general model starts higher on imagery unlike
them (other sensors, colours, haze: docs/results_bundled_recipes.md "Session 36").
Without labels the two maps cannot be judged (session 36: their agreement picks no
better than "always general"), but the image's look can be compared with the default
model's training scenes: each scene's *look* is a handful of colour statistics on the
model's grid (LOOK_FEATURES), stored for the default model's training areas in
HOME_LOOKS_PATH (built by ``python -m map_refiner.dev.default_model.home_looks build``);
an image whose look lies within HOME_DISTANCE of one of them gets the model that reads
that area's held-out half better (HELD_OUT_MARGIN; the default unless the general model
is clearly better there), any other image the general model (session 37,
docs/results_bundled_recipes.md). Imagery at SATELLITE_M or coarser gets the general
model too, whatever its look (session 47).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..rasters.read import (
    alpha_band,
    at_declared_nodata,
    check_bands,
    colour_bands,
    ground_resolution,
    open_image,
    raster_info,
    value_scale,
)
from .header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH

#: The default model's training areas' looks (LOOK_FEATURES of each), beside the model.
HOME_LOOKS_PATH = DEFAULT_MODEL_PATH.with_name("default_home.json")
#: An image is near a training area when its look lies within this of the area's
#: (look_distance: the mean absolute difference of the features, in percent of the
#: 8-bit range). Session 37 (docs/results_bundled_recipes.md "Session 37"): the right
#: halves of the default's own scenes, read as they are, lie 0.7-1.9 from the training
#: areas (austin_dev's 1.7 from austin_enh, the whole tile 1.5; its 75 m quarters
#: 1.1-2.1); the ISPRS crops' and LoveDA_0's 2.7-3.4 (other ground than their left
#: halves); the scenes the default's recipe never saw 2.9 and more (LoveDA_1 1.3, next
#: to LoveDA_0, where the default reads it better); every scene under another look
#: (haze, colour casts, dark, bright, flat) 2.3 and more, all but one 2.8 and more.
#: With the areas' preference below, any value from 2.0 to 2.8 picks the same models on
#: session 36's 108 scene/look pairs; 2.4 is the middle (2.2 until a review of Austin's
#: quarters in the same session). Chosen on these scenes: no other labelled imagery was
#: left to check it on.
HOME_DISTANCE = 2.4
#: An image near a training area gets the general model when it reads that area's
#: held-out (right) half better than the default by at least this many points of
#: building IoU (the file's ``held_out`` scores); else the default. Session 37: Rio's
#: satellite strip 43.0 against 33.4, Nepal's drone 64.2 against 60.1 and Potsdam 54.2
#: against 38.2 go to the general model; Austin 66.8 against 59.3, Kampala 62.0 against
#: 60.5, LoveDA 26.9 against 26.2 and Vaihingen's 46 m false-colour crop (5.0 against
#: 3.2: neither model reads it; some of Austin's 75 m quarters lie nearest to it) stay
#: with the default. The held-out halves are the only labelled imagery of those sources
#: that no network trained on, so the rule's own figures on them are not an independent
#: test.
HELD_OUT_MARGIN = 2.0
#: Imagery with pixels this large or larger (metres, on the ground) gets the general model
#: even where its look lies near an area the default reads better. Every image of that
#: kind measured reads better with the general model: Rio's 0.5 m satellite strip by its
#: own area's preference (43.0 against 33.4 building IoU on the held-out half), and the
#: tiles of Xiamen's 0.54 m satellite mosaic whose looks lie 1.4-2.4 from austin_enh, where
#: the rule above gave the default: the general model scores higher against Xiamen's OSM
#: buildings on 18 of 21 (21.9 against 18.7; session 47, docs/results_colour_match.md
#: section 8). The default's own strength is aerial and drone imagery finer than its
#: grid (Austin 0.3 m, Kampala 7.5 cm, LoveDA 0.3 m); between 0.3 and 0.5 m nothing was
#: measured, so the line sits at three quarters of the grid.
SATELLITE_M = 0.45
#: The grid the looks are measured on: the bundled models' own (metres).
LOOK_GRID_M = 0.6
#: Along a side of up to LOOK_WINDOWS x LOOK_SIDE grid pixels the whole side is read (in
#: windows of LOOK_SIDE); along a longer one, SAMPLE_WINDOWS windows of SAMPLE_SIDE spread
#: evenly over it: as many pixels, from many more places. Nine windows of 512 px (the rule
#: until session 48) judged Xiamen's 20 km² mosaic on 4 % of it, 2.78 from the nearest
#: area, where the whole mosaic lies 2.06 away (its 49 tiles' survey model 2.07); 24 x 24
#: windows of 64 px give 2.07 in 0.4 s (docs/results_colour_match.md section 9).
LOOK_SIDE = 512
LOOK_WINDOWS = 3
SAMPLE_SIDE = 64
SAMPLE_WINDOWS = 24
#: Luminance percentiles, then each band minus the luminance at these percentiles.
LUMINANCE_PERCENTILES = (2, 10, 25, 50, 75, 90, 98)
CHROMA_PERCENTILES = (10, 50, 90)
LOOK_FEATURES = len(LUMINANCE_PERCENTILES) + 3 * len(CHROMA_PERCENTILES)


#: Fewer pixels with data than this (on the look's grid) tell too little of an image.
MIN_LOOK_PIXELS = 16


class TooFewPixels(MapRefinerError):
    """The windows a look is read from hold (almost) no data."""


@dataclass(frozen=True)
class ModelChoice:
    """The bundled model chosen for an image, and why."""

    path: Path
    distance: float | None  # to the nearest training area's look (None: not measured)
    nearest: str | None  # that training area
    note: str  # one sentence for the user


def look_features(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The look of ``rgb`` (``(3, h, w)``, 8-bit scale) over its ``valid`` pixels:
    luminance percentiles and each band's offset from the luminance at a few
    percentiles (LOOK_FEATURES values)."""
    n = int(valid.sum())
    if n < MIN_LOOK_PIXELS:
        raise TooFewPixels(f"The image has too few valid pixels ({n}) to judge its look.")
    # Band by band in float64, the luminance summed in the order a mean over the bands
    # sums it (the same values to the bit, without a float64 copy of all three bands: a
    # large image's lattice holds 2.4 M pixels).
    lum = rgb[0][valid].astype(np.float64)
    lum += rgb[1][valid]
    lum += rgb[2][valid]
    lum /= 3
    chroma = []
    for b in range(3):
        off = rgb[b][valid].astype(np.float64)
        off -= lum
        chroma.append(np.percentile(off, CHROMA_PERCENTILES, overwrite_input=True))
    luminance = np.percentile(lum, LUMINANCE_PERCENTILES, overwrite_input=True)
    return np.concatenate([luminance, *chroma])


def look_distance(look: np.ndarray, homes: dict[str, np.ndarray]) -> tuple[float, str]:
    """The distance of ``look`` to the nearest of ``homes`` (the mean absolute difference
    of the features, in percent of the 8-bit range) and that home's name."""
    best = min(
        (float(np.abs(look - np.asarray(v)).mean()) / 255.0 * 100.0, name)
        for name, v in homes.items()
    )
    return round(best[0], 3), best[1]


def _spans(size: int, factor: int) -> list[tuple[int, int]]:
    """Windows (start, length) along a side of ``size`` image pixels, ``factor`` of them to
    a grid pixel: the whole side in windows of LOOK_SIDE grid pixels where LOOK_WINDOWS of
    them cover it, else SAMPLE_WINDOWS of SAMPLE_SIDE spread evenly from end to end."""
    side = LOOK_SIDE * factor
    if size <= side * LOOK_WINDOWS:
        return [(s, min(side, size - s)) for s in range(0, size, side)]
    sample = SAMPLE_SIDE * factor
    step = (size - sample) / (SAMPLE_WINDOWS - 1)
    return [(int(round(i * step)), sample) for i in range(SAMPLE_WINDOWS)]


def look_pixels(
    ds: gdal.Dataset,
    bands: Sequence[int],
    pixel_m: float,
    window: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``bands`` of ``ds`` (pixel size ``pixel_m``) on a grid of about LOOK_GRID_M over
    ``window`` (x0, y0, x1, y1; default: the whole image) or, on a large image, over a
    lattice of windows: ``(3, n)`` values in the 8-bit range and which hold data."""
    if len(bands) != 3:
        raise MapRefinerError("Judging an image's look needs three bands.")
    x0, y0, x1, y1 = window or (0, 0, ds.RasterXSize, ds.RasterYSize)
    factor = max(1, int(round(LOOK_GRID_M / pixel_m)))
    windows = [
        (wx, wy, w, h, max(1, w // factor), max(1, h // factor))
        for wy, h in _spans(y1 - y0, factor)
        for wx, w in _spans(x1 - x0, factor)
    ]
    # filled in place: hundreds of small windows held until one concatenation left
    # their pages on the heap (the streaming test's mosaic: 27 MiB more at the peak)
    rgb = np.empty((3, sum(bw * bh for *_, bw, bh in windows)), dtype=np.float32)
    valid = np.empty(rgb.shape[1], dtype=bool)
    at = 0
    for wx, wy, w, h, bw, bh in windows:
        part, ok = _read_coarse(ds, bands, x0 + wx, y0 + wy, w, h, bw, bh)
        rgb[:, at : at + bw * bh] = part.reshape(3, -1)
        valid[at : at + bw * bh] = ok.reshape(-1)
        at += bw * bh
    rgb *= value_scale(ds, bands)  # in the 8-bit range
    return rgb, valid


def look_bands(ds: gdal.Dataset, bands: Sequence[int] | None) -> list[int]:
    """The bands a look is read from: ``bands`` as given, else the bands the image names
    red, green and blue, else 1, 2, 3."""
    return list(bands) if bands else colour_bands(ds, ("red", "green", "blue")) or [1, 2, 3]


def data_area(ds: gdal.Dataset, valid: np.ndarray, res_x_m: float, res_y_m: float) -> float:
    """The ground (m²) of ``ds`` holding data, estimated from the share of look pixels
    ``valid`` (look_pixels) over the raster's whole extent."""
    share = float(valid.mean()) if valid.size else 0.0
    return share * ds.RasterXSize * ds.RasterYSize * res_x_m * res_y_m


def image_look(
    ds: gdal.Dataset,
    bands: Sequence[int],
    pixel_m: float,
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The look (look_features) of ``bands`` of ``ds`` (pixel size ``pixel_m``) on a grid
    of about LOOK_GRID_M, over ``window`` (x0, y0, x1, y1; default: the whole image) or,
    on a large image, over a lattice of windows (look_pixels)."""
    rgb, valid = look_pixels(ds, bands, pixel_m, window)
    return look_features(rgb[:, :, None], valid[:, None])


def _read_coarse(
    ds: gdal.Dataset, bands: Sequence[int], x: int, y: int, w: int, h: int, bw: int, bh: int
) -> tuple[np.ndarray, np.ndarray]:
    """``bands`` of a window averaged to ``bw`` x ``bh`` pixels, and where they hold data
    (not nodata, not black in every band, not transparent)."""
    data = np.empty((len(bands), bh, bw), dtype=np.float32)
    valid = np.ones((bh, bw), dtype=bool)
    arrays: list[np.ndarray] = []
    for i, b in enumerate(bands):
        band = ds.GetRasterBand(b)
        arr = band.ReadAsArray(
            x,
            y,
            w,
            h,
            buf_xsize=bw,
            buf_ysize=bh,
            buf_type=gdal.GDT_Float32,
            resample_alg=gdal.GRIORA_Average,
        )
        valid &= np.isfinite(arr)
        data[i] = np.nan_to_num(arr)
        arrays.append(arr)
    at_nodata = at_declared_nodata(arrays, [ds.GetRasterBand(b) for b in bands])
    if at_nodata is not None:
        valid &= ~at_nodata
    valid &= (data > 0).any(0)
    alpha = alpha_band(ds)
    if alpha is not None:
        opaque = ds.GetRasterBand(alpha).ReadAsArray(
            x, y, w, h, buf_xsize=bw, buf_ysize=bh, resample_alg=gdal.GRIORA_Average
        )
        valid &= opaque > 127
    return data, valid


def _home_file(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def home_looks(path: Path = HOME_LOOKS_PATH, home: dict | None = None) -> dict[str, np.ndarray]:
    """The default model's training areas' looks, by name ({} when the file is missing;
    ``home``: the file already read)."""
    areas = (_home_file(path) if home is None else home).get("areas", {})
    return {name: np.asarray(v, dtype=np.float64) for name, v in areas.items()}


def held_out_scores(
    path: Path = HOME_LOOKS_PATH, home: dict | None = None
) -> dict[str, dict[str, float]]:
    """Each training area's held-out half's building IoU by bundled model ({"default":
    .., "general": ..}; {} when the file has none; ``home``: the file already read)."""
    return dict((_home_file(path) if home is None else home).get("held_out", {}))


def prefers_general(scores: dict[str, float] | None) -> bool:
    """Whether an area's held-out scores call for the general model (HELD_OUT_MARGIN)."""
    if not scores or "default" not in scores or "general" not in scores:
        return False
    return scores["general"] >= scores["default"] + HELD_OUT_MARGIN


def choose_bundled(
    image: Path,
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    homes: dict[str, np.ndarray] | None = None,
    scores: dict[str, dict[str, float]] | None = None,
) -> ModelChoice:
    """The bundled model for ``image``: where its look is within HOME_DISTANCE of one of
    the default model's training areas', the model that reads that area's held-out half
    better (prefers_general), else the general model. The default where the general
    model or the looks are not installed, or the image has no three bands to judge."""
    home = _home_file(HOME_LOOKS_PATH) if homes is None or scores is None else {}
    homes = home_looks(home=home) if homes is None else homes
    scores = held_out_scores(home=home) if scores is None else scores
    default = ModelChoice(DEFAULT_MODEL_PATH, None, None, "the bundled default model")
    if not GENERAL_MODEL_PATH.exists() or not homes:
        return default
    ds = open_image(image)
    info = raster_info(ds)
    chosen = look_bands(ds, bands)
    if len(chosen) != 3 or info.band_count < 3:
        return default
    check_bands(info, chosen)
    pixel_m = math.sqrt(math.prod(ground_resolution(info, input_resolution_m)))
    try:
        look = image_look(ds, chosen, pixel_m)
    except TooFewPixels:  # a sparse mosaic whose sampled windows hold almost no data
        return replace(default, note="the bundled default model (too little data to judge)")
    return choose_by_look(look, homes, scores, pixel_m=pixel_m)


def choose_by_look(
    look: np.ndarray,
    homes: dict[str, np.ndarray],
    scores: dict[str, dict[str, float]],
    what: str = "this image looks",
    pixel_m: float | None = None,
) -> ModelChoice:
    """choose_bundled's rule for a measured ``look`` (of an image, or of a survey's images
    together: ``what`` names them in the note) of imagery with ``pixel_m`` pixels (None:
    not known)."""
    distance, nearest = look_distance(look, homes)
    if distance > HOME_DISTANCE:
        return ModelChoice(
            GENERAL_MODEL_PATH,
            distance,
            nearest,
            f"the bundled general model: {what} unlike the default model's "
            f"training scenes (the nearest, {nearest}, is {distance:.2f} apart, over "
            f"{HOME_DISTANCE:g}); name the default model to use it instead",
        )
    like = f"{what} like {nearest}, one of the default model's training scenes "
    like += f"({distance:.2f} apart, within {HOME_DISTANCE:g})"
    held = scores.get(nearest)
    if pixel_m is not None and pixel_m >= SATELLITE_M and not prefers_general(held):
        whose = "their" if what.startswith("these") else "its"
        return ModelChoice(
            GENERAL_MODEL_PATH,
            distance,
            nearest,
            f"the bundled general model: {like}, but {whose} {pixel_m:.2f} m pixels are "
            f"satellite-like (at least {SATELLITE_M:g} m), which the general model reads "
            "better; name the default model to use it instead",
        )
    if prefers_general(held):
        assert held is not None
        return ModelChoice(
            GENERAL_MODEL_PATH,
            distance,
            nearest,
            f"the bundled general model: {like}, whose held-out half it reads better "
            f"({held['general']:.1f} building IoU against the default's "
            f"{held['default']:.1f}); name the default model to use it instead",
        )
    return ModelChoice(DEFAULT_MODEL_PATH, distance, nearest, f"the bundled default model: {like}")
