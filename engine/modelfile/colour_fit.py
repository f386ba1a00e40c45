"""An image that looks like none of a model's training imagery, read with its colours
matched to that imagery (session 46).

A model trained with a fixed normalisation reads another sensor's colours, a colour
cast, haze or under-exposure as another input, and its map falls apart: the bundled
general model finds no building on Nepal's drone scene darkened to half (0.0 building
IoU) and 5.7 on Rio's (docs/results_corrections.md "Session 45"). Per-image
normalisation (session 19) takes every image's own colours away and costs the scenes a
model knows; this matches only an image whose *look* (bundled_choice.look_features) lies
farther than ``far`` from every training area's: each band's percentiles (the entry's,
on the look's grid) are fitted by a gain and an offset onto the training areas' pooled
percentiles (least squares). The model's normalisation absorbs them (mean' = (mean -
offset) / gain, std' = std / gain), so the networks, the tiling and every caller of
predict.for_image (refine, fine-tune, training windows, a round's gate parents) read the
image alike, and an image near a training area is read exactly as before (so is imagery
three times the model's grid or coarser, predict.colours_matched, and an image under a
hectare, MIN_MATCH_AREA_M2).

Measured (docs/results_colour_match.md): leaving the scored scene's own area out of the
pooled target, the general model's right halves under eight looks gain on the five main
scenes (Nepal darkened 0.0 -> 64.4) and lose on the two ISPRS crops and LoveDA; the
previous bundled model, which never saw Kampala, Nepal or Rio, reads them 28.8 -> 44.0,
26.5 -> 48.6, 11.5 -> 35.2 and the 26 m Potsdam crop 46.5 -> 21.2.

A model carries what it needs in its configuration (``colour_match``,
engine/modelfile/colour_match.py), so a fine-tuned model saved anywhere matches as its
parent did; a model without it is never matched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..rasters.read import value_scale
from .bundled_choice import (
    TooFewPixels,
    data_area,
    look_distance,
    look_features,
    look_pixels,
)
from .colour_match import ColourMatch, Matched

log = logging.getLogger(__name__)

#: A fitted gain outside this range means an image with (almost) no spread in a band, or
#: one far beyond what a linear stretch can bring back: it is read as it is.
GAIN_RANGE = (0.2, 5.0)

#: Less ground with data than this (m²) is read as it is. The fit takes the image's
#: percentiles for its sensor's, which holds where the image shows a mix of ground like
#: the training areas'; the percentiles of a few roofs and a street describe those roofs.
#: The two ISPRS crops (26 and 46 m across, 2-4 buildings each), matched, lost under
#: every look (the general model's Potsdam under a warm cast 58.3 -> 3.6; the previous
#: model's Potsdam as it is 46.5 -> 21.2); the smallest shared scene that gains, an
#: Austin tile, is 150 m across (2.25 ha). One hectare lies between (session 47,
#: docs/results_colour_match.md section 7).
MIN_MATCH_AREA_M2 = 10_000.0

#: The power curves tried, v' = 255 (v / 255)^p before the gains and offsets, on imagery
#: stored beyond 8 bits (rasters.read.value_scale not 1: 16-bit integers beyond 255,
#: reflectance in 0-1), whose values may be a sensor's linear ones: a display image's
#: values to a power near 2.2, which no gain and offset undo (their look lies 5.7-8.3 from
#: every training area, and matched they read 10-20 points under the display image). The
#: one whose fit onto the pooled percentiles leaves the least mean residual is kept, as
#: session 48 measured it (docs/results_colour_match.md section 10, session 49's rule).
#: 8-bit imagery is display-ready: it gets no curve, and reads exactly as before.
CURVE_POWERS = tuple(round(0.35 + 0.05 * i, 2) for i in range(14))  # 0.35 .. 1.0


def band_percentiles(rgb: np.ndarray, valid: np.ndarray, percentiles: Sequence[int]) -> np.ndarray:
    """Each band's ``percentiles`` over the ``valid`` pixels of ``rgb`` ``(3, n)``."""
    return np.stack([np.percentile(rgb[b][valid], percentiles) for b in range(rgb.shape[0])])


def fit_gains(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the gain and offset taking ``src``'s percentiles onto ``dst``'s (least
    squares; both ``(bands, percentiles)``)."""
    gains, offsets = [], []
    for s, d in zip(src, dst):
        a = np.stack([s, np.ones_like(s)], 1)
        (g, c), *_ = np.linalg.lstsq(a, d, rcond=None)
        gains.append(g)
        offsets.append(c)
    return np.asarray(gains), np.asarray(offsets)


def fit_curve(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The CURVE_POWERS power, and per band the gain and offset, taking ``src``'s
    percentiles (8-bit scale) through the curve onto ``dst``'s with the least mean
    absolute residual."""
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for power in CURVE_POWERS:
        curved = 255.0 * (np.clip(src, 0.0, None) / 255.0) ** power
        gains, offsets = fit_gains(curved, dst)
        residual = float(np.abs(curved * gains[:, None] + offsets[:, None] - dst).mean())
        if best is None or residual < best[0]:
            best = (residual, power, gains, offsets)
    assert best is not None
    return best[1], best[2], best[3]


def beyond_8_bits(ds, bands: Sequence[int]) -> bool:
    """Whether ``bands`` of ``ds`` hold values beyond the 8-bit range (16-bit integers
    beyond 255, floating-point reflectance): the imagery that gets a power curve."""
    return value_scale(ds, bands) != 1.0


def match_image(match: ColourMatch, ds, bands: Sequence[int], pixel_m: float) -> Matched | None:
    """How ``bands`` of ``ds`` (pixel size ``pixel_m``) are matched under ``match``: a
    survey model's fixed match as it is; else None where the image lies within
    ``match.far`` of a training area, has too few pixels to judge, covers less than
    MIN_MATCH_AREA_M2 with data, or would need a gain outside GAIN_RANGE. Imagery stored
    beyond 8 bits is fitted with a power curve too (CURVE_POWERS)."""
    if len(bands) != 3:
        return None
    if match.fixed is not None:
        return match.fixed
    rgb, valid = look_pixels(ds, bands, pixel_m)
    area = data_area(ds, valid, pixel_m, pixel_m)
    return judge(match, rgb, valid, area, curve=beyond_8_bits(ds, bands))


def judge(
    match: ColourMatch, rgb: np.ndarray, valid: np.ndarray, area: float, curve: bool = False
) -> Matched | None:
    """match_image's judgement of the look pixels ``rgb`` (``(3, n)``, 8-bit scale) where
    ``valid``, of an image (or a survey's images) holding ``area`` m² of data; ``curve``:
    fit a power curve as well (imagery stored beyond 8 bits)."""
    if area < MIN_MATCH_AREA_M2:
        log.info("colours not matched: %.0f m² with data is too little ground to judge", area)
        return None
    try:
        look = look_features(rgb[:, :, None], valid[:, None])
    except TooFewPixels:
        return None
    if any(v.shape != look.shape for v in match.homes.values()):
        return None  # looks of another kind than this version measures
    distance, nearest = look_distance(look, match.homes)
    if distance <= match.far:
        return None
    percentiles = band_percentiles(rgb, valid, match.percentiles)
    power = 1.0
    if curve:
        power, gains, offsets = fit_curve(percentiles, match.target)
    else:
        gains, offsets = fit_gains(percentiles, match.target)
    if not (np.isfinite(gains).all() and np.isfinite(offsets).all()):
        return None
    if gains.min() < GAIN_RANGE[0] or gains.max() > GAIN_RANGE[1]:
        log.info("colours not matched: band gains %s lie outside %s", gains, GAIN_RANGE)
        return None
    return Matched(gains, offsets, distance, nearest, power=power)


def matched_normalisation(
    mean: Sequence[float], std: Sequence[float], m: Matched, scale: float = 1.0
) -> tuple[list[float], list[float]]:
    """A fixed normalisation's ``mean``/``std`` (8-bit scale) that reads raw values times
    ``scale`` (rasters.read.value_scale), matched by ``m``, as the original reads the
    matched image: ((g * v * scale + c) - mean) / std = (v - mean') / std'. A match with a
    power curve is given the curved values, already on the 8-bit scale (``scale`` 1;
    ModelConfig.input_curve)."""
    k = m.gains * scale
    new_mean = [(mu - c) / kk for mu, c, kk in zip(mean, m.offsets, k)]
    new_std = [s / kk for s, kk in zip(std, k)]
    return [float(v) for v in new_mean], [float(v) for v in new_std]
